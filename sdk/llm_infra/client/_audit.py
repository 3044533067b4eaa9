"""The audit API of the control plane: its wire models and the client half (`AuditClientMixin`).

An AuditSink's records are appended through the control plane, which applies
the sink's policy, chains them (`llm_infra.audit.AuditLog`) into the JetStream
stream and delivers them to the sinks. The models here are the wire contract of
both sides, in camelCase; a record itself travels as `llm_infra.audit.AuditRecord`
dumps it, since its ``hash`` covers exactly those keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from pydantic import ConfigDict, Field

from llm_infra import http
from llm_infra.audit import AuditEvent, AuditRecord
from llm_infra.client._transport import Sender
from llm_infra.client._wire import Wire

APPEND_RETRY = http.RetryPolicy(attempts=20, wait_initial=0.2, wait_max=5.0, total_timeout=60.0)
"""How long `append_audit_events` retries while the control plane or its NATS is unavailable."""


class AppendAuditEventsRequest(Wire):
    """Body of POST /v1/namespaces/{namespace}/auditsinks/{name}/events.

    Give each event its `id` (AuditEvent does by default): a retried batch is then
    stored once, since the id is the JetStream message id.
    """

    model_config = ConfigDict(extra="forbid")

    events: list[AuditEvent] = Field(min_length=1, max_length=10_000)


class AppendedRecord(Wire):
    """Where one event landed in the chain."""

    id: str
    seq: int
    hash: str


class AppendAuditEventsResponse(Wire):
    """The records appended, in order, and the ids of events the policy recorded nothing of."""

    records: list[AppendedRecord]
    dropped: list[str] = Field(default_factory=list)


class AuditEventsPage(Wire):
    """One page of a query; follow `next_cursor` until it is None (a page may be short)."""

    records: list[AuditRecord]
    next_cursor: str | None = None


class AuditVerification(Wire):
    """`llm_infra.audit.VerifyResult` over the records the stream holds, plus checkpoints seen."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str | None = None
    first_seq: int | None = None
    """The first chain seq the stream still holds (older ones aged out by stream limits)."""
    checkpoints: int = 0


class SinkDelivery(Wire):
    """How far one sink's writer is: the consumer's lag and the writer's own counters."""

    name: str
    consumer: str
    lag: int = 0
    """Records not confirmed by the sink: pending plus awaiting ack."""
    pending: int = 0
    ack_pending: int = 0
    delivered: int = 0
    """Messages delivered by this process since it started."""
    failed: int = 0
    """Messages given up on after maxRetries (they stay in the stream)."""
    last_error: str | None = None
    last_delivery_time: dt.datetime | None = None


class AuditStatus(Wire):
    """The stream an AuditSink keeps and each sink's delivery state."""

    stream_name: str
    messages: int
    bytes: int
    first_sequence: int
    last_sequence: int
    chain_seq: int
    chain_head: str
    sinks: list[SinkDelivery] = Field(default_factory=list)


class AuditClientMixin(Sender):
    """The audit methods of `ControlPlaneClient`."""

    async def append_audit_events(
        self,
        namespace: str,
        name: str,
        events: Sequence[AuditEvent | Mapping[str, Any]],
        *,
        retry: http.RetryPolicy = APPEND_RETRY,
    ) -> AppendAuditEventsResponse:
        """Append `events` to AuditSink `namespace/name`; returns once JetStream stored them.

        A retryable failure (503 while NATS is down, with its Retry-After; the
        control plane unreachable) is retried within `retry`'s bounds, with the
        same event ids, so nothing is stored twice and nothing acknowledged is lost.
        """
        # Ids are fixed here, before the first attempt: they are what makes a retry safe.
        body = AppendAuditEventsRequest(
            events=[
                e if isinstance(e, AuditEvent) else AuditEvent.model_validate(e) for e in events
            ]
        ).model_dump(mode="json", by_alias=True)
        path = _path(namespace, name, "events")
        response = await self._send("POST", path, json=body, retry=retry)
        return AppendAuditEventsResponse.model_validate_json(response.content)

    async def query_audit_events(
        self,
        namespace: str,
        name: str,
        *,
        actor: str | None = None,
        action: str | None = None,
        resource: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 100,
    ) -> AsyncIterator[AuditEventsPage]:
        """The pages of matching records, oldest first: ``async for page in cp.query_audit_events``.

        `action` and `resource` are fnmatch patterns (`resource` over
        ``kind/namespace/name``); `since` is inclusive, `until` exclusive.
        """
        filters = {"actor": actor, "action": action, "resource": resource}
        moments = {"since": since, "until": until}
        params = {"limit": str(limit)} | {k: v for k, v in filters.items() if v is not None}
        params |= {k: v.isoformat() for k, v in moments.items() if v is not None}
        while True:
            response = await self._send("GET", _path(namespace, name, "events"), params=params)
            page = AuditEventsPage.model_validate_json(response.content)
            yield page
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor

    async def verify_audit(self, namespace: str, name: str) -> AuditVerification:
        """Verify the hash chain (and signed checkpoints) of the records the stream holds."""
        response = await self._send("GET", _path(namespace, name, "verify"))
        return AuditVerification.model_validate_json(response.content)

    async def audit_status(self, namespace: str, name: str) -> AuditStatus:
        """The stream's counters and each sink's lag, delivered count and last error."""
        response = await self._send("GET", _path(namespace, name, "status"))
        return AuditStatus.model_validate_json(response.content)


def _path(namespace: str, name: str, leaf: str) -> str:
    return f"/v1/namespaces/{quote(namespace, safe='')}/auditsinks/{quote(name, safe='')}/{leaf}"
