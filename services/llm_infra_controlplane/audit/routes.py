"""The audit API of an AuditSink: append events, query and verify its records, read its status.

The work is `AuditService`'s (`audit.service`): policy, hash chain, JetStream
and the per-sink writers. An unknown AuditSink answers 404; NATS down answers
503 with Retry-After, and an event is acknowledged only once JetStream stored
its record. Errors answer as problems (`web.problems`).

The append route records the authenticated principal as each event's actor
(the connection's address as its ip) and the server's clock as its time; the
actor and time a client sends are kept as ``asserted`` claims
(`service.attest`), so no client can be recorded as someone else, nor pick the
policy level of someone else.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request

from llm_infra import audit
from llm_infra.client import (
    AppendAuditEventsRequest,
    AppendAuditEventsResponse,
    AppendedRecord,
    AuditEventsPage,
    AuditStatus,
    AuditVerification,
)
from llm_infra_controlplane.audit.service import AuditService
from llm_infra_controlplane.web import deps, links, problems
from llm_infra_controlplane.web.auth import CheckedRoute, require
from llm_infra_controlplane.web.params import Name, Namespace

# Callers are checked from the headers, before the body is read (web.auth.CheckedRoute).
router = APIRouter(
    prefix="/v1/namespaces/{namespace}/auditsinks/{name}",
    tags=["audit"],
    route_class=CheckedRoute,
    dependencies=[require("auditsinks")],
)
AuditDep = Annotated[AuditService, deps.state("audit")]


@router.post(
    "/events",
    response_model=AppendAuditEventsResponse,
    response_model_by_alias=True,
    summary="Append a batch of audit events (acknowledged once stored in JetStream)",
    # Beyond the router's statuses: an event id appended before with another body, or an
    # AuditSink whose stream belongs to another AuditSink.
    responses={
        200: links.response(links.to("query_events", "verify_audit", "audit_status")),
        **problems.responses(409),
    },
)
async def append_events(
    namespace: Namespace,
    name: Name,
    body: AppendAuditEventsRequest,
    service: AuditDep,
    principal: deps.PrincipalDep,
    request: Request,
) -> AppendAuditEventsResponse:
    caller = audit.Actor(
        id=principal.subject,
        kind=principal.kind,
        ip=request.client.host if request.client is not None else None,
    )
    records = await service.append(namespace, name, body.events, caller=caller)
    kept = {record.id for record in records}
    return AppendAuditEventsResponse(
        records=[AppendedRecord(id=r.id, seq=r.seq, hash=r.hash) for r in records],
        dropped=[event.id for event in body.events if event.id not in kept],
    )


@router.get(
    "/events",
    response_model=AuditEventsPage,
    response_model_by_alias=True,
    summary="Query the records by actor, action, resource and time range, a page at a time",
)
async def query_events(
    namespace: Namespace,
    name: Name,
    service: AuditDep,
    actor: Annotated[str | None, Query(max_length=253, description="an actor id")] = None,
    action: Annotated[
        str | None, Query(max_length=128, description="fnmatch pattern over the action")
    ] = None,
    resource: Annotated[
        str | None,
        Query(max_length=512, description="fnmatch pattern over kind/namespace/name"),
    ] = None,
    since: Annotated[
        dt.datetime | None, Query(description="inclusive, RFC 3339 with offset")
    ] = None,
    until: Annotated[
        dt.datetime | None, Query(description="exclusive, RFC 3339 with offset")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="most records per page")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=64, description="nextCursor of the previous page")
    ] = None,
) -> AuditEventsPage:
    return await service.query(
        namespace,
        name,
        actor=actor,
        action=action,
        resource=resource,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/verify",
    response_model=AuditVerification,
    response_model_by_alias=True,
    summary="Verify the hash chain and signed checkpoints of the records the stream holds",
    # A stream another AuditSink owns; a stream that is gone answers 404.
    responses=problems.responses(409),
)
async def verify_audit(namespace: Namespace, name: Name, service: AuditDep) -> AuditVerification:
    return await service.verify(namespace, name)


@router.get(
    "/status",
    response_model=AuditStatus,
    response_model_by_alias=True,
    summary="The stream's counters and each sink's lag, deliveries and last error",
)
async def audit_status(namespace: Namespace, name: Name, service: AuditDep) -> AuditStatus:
    return await service.status(namespace, name)
