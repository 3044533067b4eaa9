"""The span-and-histogram timer every SDK module wraps its engine calls in.

Cheap on the hot path: the span comes from the OpenTelemetry API (a no-op
until the application installs an SDK) and is not made current (an engine call
has no child spans, and attaching a context costs more than the rest);
attributes are only built for a recording span; the histogram's labelled
children are cached, since `.labels()` costs more than `.observe()`. A module
subclasses `Operation` with its span name, kind, labels and attributes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, ClassVar

from opentelemetry import trace
from prometheus_client import Histogram

from llm_infra import errors

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
    1,
    5,
    30,
)


class Telemetry:
    """A module's tracer and its latency histogram, labelled (backend, operation)."""

    def __init__(self, scope: str, metric: str, documentation: str) -> None:
        self.tracer = trace.get_tracer(scope)
        self.latency = Histogram(
            metric, documentation, ("backend", "operation"), buckets=LATENCY_BUCKETS
        )
        self._children: dict[tuple[str, str], Any] = {}

    def observe(self, labels: tuple[str, str], seconds: float) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.latency.labels(*labels)
        child.observe(seconds)


class Operation(ABC):
    """`with SomeOperation(...):` times and traces one operation, recording errors on its span."""

    __slots__ = ("_span", "_start")
    telemetry: ClassVar[Telemetry]

    @abstractmethod
    def span_name(self) -> str: ...

    @abstractmethod
    def labels(self) -> tuple[str, str]:
        """(backend, operation) of the latency histogram."""

    @abstractmethod
    def attributes(self) -> dict[str, Any]:
        """Span attributes; only called when the span records."""

    def kind(self) -> trace.SpanKind:
        return trace.SpanKind.CLIENT

    def __enter__(self) -> None:
        self._span = span = self.telemetry.tracer.start_span(self.span_name(), kind=self.kind())
        if span.is_recording():
            span.set_attributes(self.attributes())
        self._start = time.perf_counter()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.telemetry.observe(self.labels(), time.perf_counter() - self._start)
        span = self._span
        if ev is not None and span.is_recording():
            if isinstance(ev, errors.InfraError):
                ev.record_to_span(span)
            else:
                span.record_exception(ev)
                span.set_status(trace.StatusCode.ERROR, type(ev).__name__)
        span.end()
