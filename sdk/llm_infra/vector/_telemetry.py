"""A span and a latency histogram per vector operation, cheap enough for the search path.

Spans come from the OpenTelemetry API (no-op until the application installs an
SDK); attributes are only computed for a recording span. The Prometheus
histogram's labelled children are cached, since `.labels()` costs more than
`.observe()`. bench/vector_bench.py measures what this adds to a search.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from prometheus_client import Histogram

from llm_infra import errors

if TYPE_CHECKING:
    from llm_infra.vector._base import VectorStore

_tracer = trace.get_tracer("llm_infra.vector")

LATENCY = Histogram(
    "llm_infra_vector_operation_seconds",
    "Latency of llm_infra.vector operations",
    ("backend", "operation"),
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30),
)
_children: dict[tuple[str, str], Any] = {}


class operation:  # noqa: N801 - used like a function: `with operation("search", store):`
    """Times and traces one operation of `store`.

    The span is not made current: an engine call has no child spans, and
    attaching a context costs more than the rest of this together.
    """

    __slots__ = ("_attributes", "_name", "_span", "_start", "_store")

    def __init__(
        self, name: str, store: VectorStore, **attributes: str | int | float | bool
    ) -> None:
        self._name = name
        self._store = store
        self._attributes = attributes

    def __enter__(self) -> None:
        self._span = span = _tracer.start_span(f"vector.{self._name}")
        if span.is_recording():
            store = self._store
            span.set_attributes(
                {
                    "db.system.name": "qdrant",
                    "db.operation.name": self._name,
                    "db.collection.name": store.name,
                    "llm_infra.vector.backend": store.backend,
                    "llm_infra.vector.dimensions": store.config.dimensions,
                    **{f"llm_infra.vector.{k}": v for k, v in self._attributes.items()},
                }
            )
        self._start = time.perf_counter()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        elapsed = time.perf_counter() - self._start
        key = (self._store.backend, self._name)
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
