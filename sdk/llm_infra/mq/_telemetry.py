"""A span and a latency histogram per publish / fetch / ensure (see llm_infra._telemetry)."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from llm_infra._telemetry import Operation, Telemetry

TELEMETRY = Telemetry(
    "llm_infra.mq", "llm_infra_mq_operation_seconds", "Latency of llm_infra.mq operations"
)


class operation(Operation):  # noqa: N801 - used like a function: `with operation("publish", ...):`
    """Times and traces one operation on `destination` (a subject or stream)."""

    __slots__ = ("_attributes", "_backend", "_destination", "_name")
    telemetry = TELEMETRY

    def __init__(
        self, name: str, backend: str, destination: str, **attributes: str | int | float | bool
    ) -> None:
        self._name = name
        self._backend = backend
        self._destination = destination
        self._attributes = attributes

    def span_name(self) -> str:
        return f"mq.{self._name}"

    def kind(self) -> trace.SpanKind:
        return (
            trace.SpanKind.PRODUCER if self._name.startswith("publish") else trace.SpanKind.CONSUMER
        )

    def labels(self) -> tuple[str, str]:
        return (self._backend, self._name)

    def attributes(self) -> dict[str, Any]:
        return {
            "messaging.system": "nats" if self._backend == "jetstream" else self._backend,
            "messaging.operation.name": self._name,
            "messaging.destination.name": self._destination,
            "llm_infra.mq.backend": self._backend,
            **{f"llm_infra.mq.{k}": v for k, v in self._attributes.items()},
        }
