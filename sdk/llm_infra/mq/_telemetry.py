"""A span and a latency histogram per publish / fetch / ensure, as cheap as vector's.

Spans come from the OpenTelemetry API (no-op until an SDK is installed);
attributes are only computed for a recording span; histogram children are cached.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from opentelemetry import trace
from prometheus_client import Histogram

from llm_infra import errors

_tracer = trace.get_tracer("llm_infra.mq")

LATENCY = Histogram(
    "llm_infra_mq_operation_seconds",
    "Latency of llm_infra.mq operations",
    ("backend", "operation"),
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30),
)
_children: dict[tuple[str, str], Any] = {}


class operation:  # noqa: N801 - used like a function: `with operation("publish", ...):`
    """Times and traces one operation; the span is not made current (no child spans)."""

    __slots__ = ("_attributes", "_backend", "_destination", "_name", "_span", "_start")

    def __init__(
        self, name: str, backend: str, destination: str, **attributes: str | int | float | bool
    ) -> None:
        self._name = name
        self._backend = backend
        self._destination = destination
        self._attributes = attributes

    def __enter__(self) -> None:
        self._span = span = _tracer.start_span(
            f"mq.{self._name}",
            kind=trace.SpanKind.PRODUCER
            if self._name.startswith("publish")
            else trace.SpanKind.CONSUMER,
        )
        if span.is_recording():
            span.set_attributes(
                {
                    "messaging.system": "nats" if self._backend == "jetstream" else self._backend,
                    "messaging.operation.name": self._name,
                    "messaging.destination.name": self._destination,
                    "llm_infra.mq.backend": self._backend,
                    **{f"llm_infra.mq.{k}": v for k, v in self._attributes.items()},
                }
            )
        self._start = time.perf_counter()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        elapsed = time.perf_counter() - self._start
        key = (self._backend, self._name)
        child = _children.get(key)
        if child is None:
            child = _children[key] = LATENCY.labels(*key)
        child.observe(elapsed)
        span = self._span
        if ev is not None and span.is_recording():
            if isinstance(ev, errors.InfraError):
                ev.record_to_span(span)
            else:
                span.record_exception(ev)
                span.set_status(trace.StatusCode.ERROR, type(ev).__name__)
        span.end()
