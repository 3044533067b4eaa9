"""AuditSink -> a JetStream stream and one durable consumer per sink; owns nothing in Kubernetes.

The stream and consumer specs, `ensure_audit_stream`, lag and `delete_stream`
come from `llm_infra.audit` (shared with the standalone control plane); this
module adds the Kubernetes side: conditions, status, deletion policy.
Delivering to the sinks is the control plane's audit writer's job, so lag is
reported in status, never as a failure.

Conditions: StreamReady (False: StreamUnreachable, retried; StreamRejected,
the server refused a setting; StreamMismatch, an immutable field differs from
the existing stream, which is left alone; StreamConflict, the stream belongs
to another AuditSink (its ``llm-infra.io/owner`` metadata) or the name is
another's default, left alone, with a Warning event), ConsumersReady (consumers of sinks
removed from `spec.sinks` are deleted, only those with our durable prefix),
then Ready.

Deletion: with `deletionPolicy: Delete` a finalizer deletes the stream, but
not while a sink's consumer still has undelivered records (Ready=False,
DeletionBlocked, retried) unless `spec.deleteUndelivered` is true, which drops
them (the spec can still change while the object waits for its finalizer).
With Retain the stream stays. A stream that is not this AuditSink's is never
deleted: the finalizer says so and lets the object go.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext

from llm_infra import audit, errors, mq
from llm_infra.api.v1alpha1 import AuditSink
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec, AuditSinkStatus, SinkStatus
from llm_infra.mq import jetstream
from llm_infra_operator.conditions import Event, StatusConditions
from llm_infra_operator.engine import Outcome, Reconciler

"""Set to "true" to let a Delete-policy AuditSink's stream go with its undelivered records."""

# Stream fields JetStream cannot change in place (mq.decide_stream's mismatches) -> manifest field.
_IMMUTABLE_FIELDS = {
    "storage": "spec.stream.storage",
    "deny_delete": "spec.stream.denyDelete",
    "deny_purge": "spec.stream.denyPurge",
}
_SPEC_FIELDS = {
    "replicas": "replicas",
    "max_age": "maxAge",
    "max_bytes": "maxBytes",
    "max_msgs": "maxMsgs",
    "duplicate_window": "duplicateWindow",
    "deny_delete": "denyDelete",
    "deny_purge": "denyPurge",
}
_STREAM_ACTIONS = {
    mq.Action.CREATE: "Created",
    mq.Action.UPDATE: "Updated",
    mq.Action.NONE: "UpToDate",
}


# -- decide (pure) ---------------------------------------------------------------------------


def decide_immutable_changes(
    wanted: mq.StreamSpec, observed: mq.StreamSpec | None, recorded_name: str | None
) -> list[str]:
    """What the spec asks to change that the existing stream cannot: one phrase per field."""
    changed = []
    if recorded_name is not None and recorded_name != wanted.name:
        changed.append(
            f"spec.stream.name (the stream is {recorded_name}, the spec asks for {wanted.name})"
        )
    if observed is not None:
        for mismatch in mq.decide_stream(wanted, observed).mismatches:
            field = _IMMUTABLE_FIELDS.get(mismatch.field, mismatch.field)
            changed.append(
                f"{field} (the stream has {mismatch.actual}, the spec asks for {mismatch.expected})"
            )
    return changed


def decide_stale_consumers(existing: Iterable[str], spec: AuditSinkSpec) -> list[str]:
    """Our durables (by prefix) whose sink left `spec.sinks`; other consumers are not ours."""
    wanted = {audit.sink_durable(sink.name) for sink in spec.sinks}
    return sorted(
        name for name in existing if name.startswith(audit.DURABLE_PREFIX) and name not in wanted
    )


def decide_status(
    previous: AuditSinkStatus,
    stream: str,
    state: audit.StreamState,
    lags: Mapping[str, audit.ConsumerLag],
) -> AuditSinkStatus:
    """Status from the stream's counters and each sink's lag, in `lags`' (the spec's) order.

    What the audit writer records per sink (lastError, lastDeliveryTime) is kept.
    """
    before = {sink.name: sink for sink in previous.sinks}
    sinks = []
    for name, lag in lags.items():
        kept = before.get(name)
        sinks.append(
            SinkStatus(
                name=name,
                consumer=audit.sink_durable(name),
                lag=lag.undelivered,
                # The consumer's filter covers the whole stream: every sequence it no longer
                # waits for was delivered (and acknowledged) to the sink.
                delivered=max(0, state.last_seq - lag.undelivered),
                last_error=kept.last_error if kept else None,
                last_delivery_time=kept.last_delivery_time if kept else None,
            )
        )
    return previous.model_copy(
        update={
            "stream_name": stream,
            "messages": state.messages,
            "bytes": state.bytes,
            "first_sequence": state.first_seq,
            "last_sequence": state.last_seq,
            "sinks": sinks,
        }
    )


def decide_ready_message(
    stream: str, state: audit.StreamState, lags: Mapping[str, audit.ConsumerLag]
) -> str:
    """``stream AUDIT_X: 12 events, sinks in sync``, or which sinks are behind and by how much."""
    behind = [f"{name} {lag.undelivered}" for name, lag in lags.items() if lag.undelivered]
    head = f"stream {stream}: {state.messages} events"
    if not behind:
        return f"{head}, sinks in sync"
    return f"{head}; not yet delivered: {', '.join(behind)}"


def describe_stream_plan(plan: mq.StreamPlan) -> str:
    """``stream S created``, ``stream S updated (maxAge, discard)`` or ``... matches the spec``."""
    if plan.action is mq.Action.CREATE:
        return f"stream {plan.spec.name} created"
    if plan.action is mq.Action.UPDATE:
        fields = ", ".join(_SPEC_FIELDS.get(c, c) for c in plan.changes)
        return f"stream {plan.spec.name} updated ({fields})"
    return f"stream {plan.spec.name} matches the spec"


# -- apply -----------------------------------------------------------------------------------


class AuditSinkReconciler(Reconciler[AuditSink]):
    model = AuditSink
    status_model = AuditSinkStatus

    @classmethod
    def needs_finalizer(cls, spec: Mapping[str, Any]) -> bool:
        return spec.get("deletionPolicy") == "Delete"  # the stream lives outside Kubernetes

    async def reconcile(
        self, obj: AuditSink, body: Mapping[str, Any], conditions: StatusConditions
    ) -> Outcome:
        namespace, name = obj.metadata.namespace or "", obj.metadata.name or ""
        previous = obj.status or AuditSinkStatus()
        wanted = audit.stream_spec(namespace, name, obj.spec)
        try:
            js = await self.ctx.jetstream()
            # The default name changed (it is injective now): a stream made under the old one
            # keeps serving this AuditSink, when it provably is this AuditSink's.
            stream = await audit.resolve_stream_name(js, namespace, name, obj.spec)
            wanted = audit.stream_spec(namespace, name, obj.spec, stream=stream)
            with errors.translate(errors.from_nats):
                observed = await jetstream.observe_stream(js, wanted.name)
            conflict = audit.reserved_name_conflict(
                namespace, name, obj.spec
            ) or audit.stream_conflict(observed, namespace, name)
            if conflict is not None:
                exc = audit.conflict_error(conflict, namespace, name, wanted.name)
                return self._conflict(exc, conditions, previous)
            if changed := decide_immutable_changes(wanted, observed, previous.stream_name):
                conditions.set(
                    "StreamReady",
                    False,
                    "StreamMismatch",
                    f"cannot change {'; '.join(changed)} in place; the stream and its records"
                    " were left alone: restore the field, or create a new AuditSink (a new"
                    " stream) and move the producers to it",
                )
                conditions.ready("StreamReady")
                return Outcome(previous.model_copy())
            plan = await audit.ensure_audit_stream(js, namespace, name, obj.spec)
        except errors.Conflict as exc:  # claimed by another AuditSink since we looked
            return self._conflict(exc, conditions, previous)
        except errors.InfraError as exc:
            return self._failed(exc, wanted.name, conditions, previous)
        conditions.set(
            "StreamReady",
            True,
            _STREAM_ACTIONS[plan.stream.action],
            describe_stream_plan(plan.stream),
        )
        try:
            removed = await self._remove_stale_consumers(js, wanted.name, obj.spec)
            state = await audit.stream_state(js, wanted.name)
            lags = {
                sink.name: await audit.consumer_lag(js, wanted.name, audit.sink_durable(sink.name))
                for sink in obj.spec.sinks
            }
        except errors.InfraError as exc:
            return self._failed(exc, wanted.name, conditions, previous)
        durables = ", ".join(audit.sink_durable(sink.name) for sink in obj.spec.sinks)
        message = f"durable consumers {durables} ensured"
        events = []
        if removed:
            gone = ", ".join(removed)
            message += f"; removed {gone} (sinks no longer in spec.sinks)"
            events.append(Event("Normal", "ConsumersRemoved", f"removed consumers {gone}"))
        conditions.set("ConsumersReady", True, "Ensured", message)
        conditions.ready("StreamReady", decide_ready_message(wanted.name, state, lags))
        return Outcome(decide_status(previous, wanted.name, state, lags), events=events)

    async def _remove_stale_consumers(
        self, js: JetStreamContext, stream: str, spec: AuditSinkSpec
    ) -> list[str]:
        with errors.translate(errors.from_nats):
            existing = [info.name for info in await js.consumers_info(stream)]
            stale = decide_stale_consumers(existing, spec)
            for durable in stale:
                with contextlib.suppress(nats.js.errors.NotFoundError):  # gone already: fine
                    await js.delete_consumer(stream, durable)
        return stale

    def _conflict(
        self, exc: errors.Conflict, conditions: StatusConditions, previous: AuditSinkStatus
    ) -> Outcome:
        """The stream is another AuditSink's: touch nothing, say whose and what to change."""
        conditions.set("StreamReady", False, "StreamConflict", exc.message)
        conditions.ready("StreamReady")
        # No retry: only a change of this AuditSink (or the other's removal) can fix it.
        return Outcome(
            previous.model_copy(), events=[Event("Warning", "StreamConflict", exc.message)]
        )

    def _failed(
        self,
        exc: errors.InfraError,
        stream: str,
        conditions: StatusConditions,
        previous: AuditSinkStatus,
    ) -> Outcome:
        """Report a NATS failure on the condition it belongs to; retry only what time can fix."""
        if exc.is_retryable():
            url = errors.redact(self.ctx.settings.nats_url)
            conditions.set(
                "StreamReady",
                False,
                "StreamUnreachable",
                f"NATS at {url} did not answer ({exc.message}): check that NATS runs there with"
                " JetStream enabled, or point the operator's natsUrl setting at it; retrying",
            )
            conditions.ready("StreamReady")
            return Outcome(previous.model_copy(), retry=True)
        if isinstance(exc, errors.MessageQueueNotFound):
            # Deleted outside the operator between our calls: the next reconcile recreates it.
            conditions.set(
                "StreamReady",
                False,
                "StreamMissing",
                f"stream {stream} or one of its consumers vanished during the reconcile (deleted"
                " outside the operator?): recreating it",
            )
            conditions.ready("StreamReady")
            return Outcome(previous.model_copy(), retry=True)
        if not isinstance(exc, errors.MessageQueueRejected):
            raise exc
        if exc.destination and exc.destination.startswith(f"{stream}/"):
            # ensure_audit_stream names a consumer `<stream>/<durable>`: the stream itself is fine.
            conditions.set("StreamReady", True, "UpToDate", f"stream {stream} matches the spec")
            conditions.set(
                "ConsumersReady",
                False,
                "ConsumerRejected",
                f"JetStream refused consumer {exc.destination}: {exc.message}; delete that"
                " consumer if something else created it, the operator recreates it",
            )
        else:
            conditions.set(
                "StreamReady",
                False,
                "StreamRejected",
                f"JetStream refused stream {stream}: {exc.message}",
            )
        conditions.ready("StreamReady")
        return Outcome(previous.model_copy())

    async def finalize(self, obj: AuditSink, body: Mapping[str, Any]) -> str:
        namespace, name = obj.metadata.namespace or "", obj.metadata.name or ""
        # The stream that exists is the one status recorded (spec.stream.name may have changed).
        recorded = obj.status.stream_name if obj.status else None
        stream = recorded or audit.stream_name(namespace, name, obj.spec)
        if obj.spec.deletion_policy != "Delete":
            return f"stream {stream} retained (deletionPolicy Retain)"
        force = obj.spec.delete_undelivered
        durables = [audit.sink_durable(sink.name) for sink in obj.spec.sinks]
        js = await self.ctx.jetstream()
        try:
            deleted = await audit.delete_stream(
                js, stream, force=force, durables=durables, owner=(namespace, name)
            )
        except errors.Conflict as exc:
            return f"stream {stream} not deleted: {exc.message}"
        except errors.MessageQueueRejected as exc:
            if exc.status_code != 409:  # not the undelivered-records refusal
                raise
            raise errors.MessageQueueRejected(
                f"{exc.message}: wait for the sinks to catch up, or set"
                " spec.deleteUndelivered: true to delete them with the stream",
                destination=stream,
                operation=errors.MqOperation.REQUEST,
                status_code=409,
            ) from None
        state = "deleted" if deleted else "was already gone"
        forced = ", deleteUndelivered" if force else ""
        return f"stream {stream} {state} (deletionPolicy Delete{forced})"
