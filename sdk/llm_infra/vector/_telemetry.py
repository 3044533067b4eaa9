"""A span and a latency histogram per vector operation (see llm_infra._telemetry for the costs).

bench/vector_bench.py measures what this adds to a search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llm_infra._telemetry import Operation, Telemetry

if TYPE_CHECKING:
    from llm_infra.vector._base import VectorStore

TELEMETRY = Telemetry(
    "llm_infra.vector",
    "llm_infra_vector_operation_seconds",
    "Latency of llm_infra.vector operations",
)


class operation(Operation):  # noqa: N801 - used like a function: `with operation("search", store):`
    """Times and traces one operation of `store`."""

    __slots__ = ("_attributes", "_name", "_store")
    telemetry = TELEMETRY

    def __init__(
        self, name: str, store: VectorStore, **attributes: str | int | float | bool
    ) -> None:
        self._name = name
        self._store = store
        self._attributes = attributes

    def span_name(self) -> str:
        return f"vector.{self._name}"

    def labels(self) -> tuple[str, str]:
        return (self._store.backend, self._name)

    def attributes(self) -> dict[str, Any]:
        store = self._store
        return {
            "db.system.name": "qdrant",
            "db.operation.name": self._name,
            "db.collection.name": store.name,
            "llm_infra.vector.backend": store.backend,
            "llm_infra.vector.dimensions": store.config.dimensions,
            **{f"llm_infra.vector.{k}": v for k, v in self._attributes.items()},
        }
