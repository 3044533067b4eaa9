"""An AuditSink's JetStream side: the stream and per-sink consumers it needs, their lag, deletion.

Decide (pure): `audit_subject`, `stream_name`, `stream_spec` and
`consumer_spec` turn an `AuditSinkSpec` into `llm_infra.mq` specs. Apply and
observe (nats-py JetStream): `ensure_audit_stream` runs `mq.ensure_stream` /
`mq.ensure_consumer` and names the manifest field when the server refuses one
(the writer's side: the operator, or standalone mode); `require_audit_stream`
waits for them without writing (the control plane's side in a cluster);
`stream_state`, `consumer_lag` and `undelivered` read what the operator writes
into status; `delete_stream` refuses to drop records a sink has not received
yet unless forced. The operator and the standalone control plane both call
these; `_chain` (the hash chain and `AuditLog`) publishes into the stream.

Subjects: `AuditLog` publishes ``<audit subject>.records`` and
``<audit subject>.checkpoints``, so the stream holds ``<audit subject>.>`` and
each sink's consumer filters on the same, receiving records and checkpoints.

Ownership: names must never let one AuditSink reach another's stream. The
default stream name and the subject are injective in (namespace, name), and
every stream carries its AuditSink in its JetStream metadata (``OWNER_LABEL``:
``<namespace>/<name>``). `ensure_audit_stream`, `require_audit_stream` and
`delete_stream` refuse a stream another AuditSink owns (`errors.Conflict`,
naming the owner and the fix); a stream made before streams carried the label
is adopted only when its subjects are exactly this AuditSink's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass

import nats.js.errors
from nats.js import JetStreamContext

from llm_infra import errors, mq
from llm_infra.api.v1alpha1._common import duration_seconds
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec, Sink
from llm_infra.mq import jetstream

SUBJECT_PREFIX = "llm-infra.audit"
DURABLE_PREFIX = "sink-"
OWNER_LABEL = "llm-infra.io/owner"
"""The stream metadata key naming the AuditSink (``<namespace>/<name>``) that owns the stream."""
MAX_STREAM_NAME = 255
"""nats-server refuses longer stream names (JSMaxNameLen)."""
_DEFAULT_SHAPE = re.compile(r"audit_[a-z0-9]([-a-z0-9]*[a-z0-9])?_[-_a-z0-9]+")

# JetStream refusals a manifest field causes: error code -> (field, fix).
_FIELD_REFUSALS: dict[int, tuple[str, str]] = {
    10074: (  # replicas > 1 not supported in non-clustered mode
        "spec.stream.replicas",
        "this NATS server is not clustered: set spec.stream.replicas to 1, or run a NATS "
        "cluster of at least {spec.replicas} JetStream servers",
    ),
    10047: (  # insufficient storage resources available
        "spec.stream.maxBytes",
        "the server cannot reserve {spec.max_bytes} bytes of {spec.storage} storage: lower "
        "spec.stream.maxBytes or raise the server's JetStream max_file_store/max_memory_store",
    ),
}


# -- decide ----------------------------------------------------------------------------------


def audit_subject(namespace: str, name: str) -> str:
    """``llm-infra.audit.<namespace>.<name>``: the subject prefix of one AuditSink's events.

    A ``.`` in the name (Kubernetes allows it) becomes ``_`` so the name stays
    one subject token and two AuditSinks never capture each other's subjects.
    """
    return f"{SUBJECT_PREFIX}.{namespace}.{name.replace('.', '_')}"


def default_stream_name(namespace: str, name: str) -> str:
    """``AUDIT_<namespace>_<name>``, each ``.`` of the name turned into ``_``; injective.

    A namespace is a DNS label (no ``_``, no ``.``) and a name a DNS subdomain (no
    ``_``), both lowercase: the first ``_`` after ``AUDIT_`` ends the namespace and
    every later ``_`` was a ``.``, so two AuditSinks never share a default name
    (``team``/``a-x`` is ``AUDIT_team_a-x``, ``team-a``/``x`` is ``AUDIT_team-a_x``).
    Nothing changes case, so case-insensitive file systems see distinct names too.
    Past `MAX_STREAM_NAME` the name is ``AUDIT-<namespace>_<start of name>_<sha256>``
    (``AUDIT-``, never ``AUDIT_``: the two forms cannot meet), the digest over
    ``<namespace>/<name>``.
    """
    plain = f"AUDIT_{namespace}_{name.replace('.', '_')}"
    if len(plain) <= MAX_STREAM_NAME:
        return plain
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()
    head = f"AUDIT-{namespace}_"
    room = MAX_STREAM_NAME - len(head) - len(digest) - 1
    return f"{head}{name[:room].replace('.', '_')}_{digest}"


def legacy_stream_name(namespace: str, name: str) -> str:
    """The default stream name before it became injective: ``AUDIT_<NS>_<NAME>``, ``-.`` as ``_``.

    Only `resolve_stream_name` uses it: a stream made under it keeps serving its AuditSink.
    """
    return re.sub(r"[^A-Za-z0-9_]", "_", f"AUDIT_{namespace}_{name}").upper()


async def resolve_stream_name(
    js: JetStreamContext, namespace: str, name: str, spec: AuditSinkSpec
) -> str:
    """The stream the AuditSink uses: `stream_name`, or the legacy default stream it already has.

    A stream made under `legacy_stream_name` (which two AuditSinks could share)
    is kept only while the default one does not exist and it is provably this
    AuditSink's (`stream_conflict`: its label, or exactly its subjects).
    """
    wanted = stream_name(namespace, name, spec)
    legacy = legacy_stream_name(namespace, name)
    if spec.stream.name is not None or legacy == wanted:
        return wanted
    with errors.translate(errors.from_nats):
        if await jetstream.observe_stream(js, wanted) is not None:
            return wanted
        observed = await jetstream.observe_stream(js, legacy)
    if observed is not None and stream_conflict(observed, namespace, name) is None:
        return legacy
    return wanted


def sink_owner(namespace: str, name: str) -> str:
    """``<namespace>/<name>``: the `OWNER_LABEL` value of the AuditSink's stream."""
    return f"{namespace}/{name}"


def stream_conflict(observed: mq.StreamSpec | None, namespace: str, name: str) -> str | None:
    """Why the existing stream `observed` is not AuditSink namespace/name's; None if it is.

    Absent, labelled with this AuditSink, or unlabelled with exactly this
    AuditSink's subjects (made before streams carried the label): ours.
    """
    if observed is None:
        return None
    owner = observed.metadata.get(OWNER_LABEL)
    if owner == sink_owner(namespace, name):
        return None
    if owner is None and tuple(observed.subjects) == (f"{audit_subject(namespace, name)}.>",):
        return None
    held = (
        f"AuditSink {owner}"
        if owner is not None
        else f"no AuditSink (subjects {', '.join(observed.subjects) or 'none'}, no {OWNER_LABEL})"
    )
    return f"stream {observed.name} belongs to {held}"


def reserved_name_conflict(namespace: str, name: str, spec: AuditSinkSpec) -> str | None:
    """Why `spec.stream.name` may not be used, or None: default-shaped names are reserved.

    ``AUDIT_<label>_<rest>`` and ``AUDIT-...`` (in any case: file stores may
    ignore it) are the default forms; taken explicitly such a name could squat
    the stream of an AuditSink not yet created, so only the AuditSink it is
    the default of may use it. ``AUDIT_PLATFORM`` (no second ``_``) is no default.
    """
    explicit = spec.stream.name
    if explicit is None or explicit == default_stream_name(namespace, name):
        return None
    if explicit.upper().startswith("AUDIT-") or _DEFAULT_SHAPE.fullmatch(explicit.lower()):
        return (
            f"spec.stream.name {explicit} has the form of default stream names (AUDIT_<namespace>"
            "_<name>), which are reserved for the AuditSinks they name"
        )
    return None


def conflict_error(reason: str, namespace: str, name: str, stream: str) -> errors.Conflict:
    """The `errors.Conflict` (409) for `stream_conflict`'s reason, with the fix."""
    return errors.Conflict(
        f"AuditSink {namespace}/{name}: {reason}, and is left alone: set spec.stream.name to"
        f" a stream of its own, or unset it for the default {default_stream_name(namespace, name)}",
        service="nats",
    )


def stream_name(namespace: str, name: str, spec: AuditSinkSpec) -> str:
    """`spec.stream.name` when set, else `default_stream_name`."""
    return spec.stream.name or default_stream_name(namespace, name)


def stream_spec(
    namespace: str, name: str, spec: AuditSinkSpec, *, stream: str | None = None
) -> mq.StreamSpec:
    """The stream an AuditSink wants, every `spec.stream` field mapped, durations in seconds.

    `stream` overrides the name (`resolve_stream_name`'s answer).
    """
    wanted = spec.stream
    return mq.StreamSpec(
        name=stream or stream_name(namespace, name, spec),
        subjects=(f"{audit_subject(namespace, name)}.>",),
        storage=mq.Storage(wanted.storage),
        replicas=wanted.replicas,
        max_age=duration_seconds(wanted.max_age) if wanted.max_age else 0.0,
        max_bytes=wanted.max_bytes,
        max_msgs=wanted.max_msgs,
        duplicate_window=duration_seconds(wanted.duplicate_window),
        deny_delete=wanted.deny_delete,
        deny_purge=wanted.deny_purge,
        discard=wanted.discard,
        compression=wanted.compression,
        metadata={OWNER_LABEL: sink_owner(namespace, name)},
    )


def sink_durable(sink_name: str) -> str:
    """``sink-<name>``: sink names are DNS labels, so the durable name is JetStream-safe."""
    return f"{DURABLE_PREFIX}{sink_name}"


def consumer_spec(namespace: str, name: str, sink: Sink) -> mq.ConsumerSpec:
    """The durable pull consumer (explicit acks) the audit writer delivers `sink` from.

    One batch in flight (`max_ack_pending` = batchSize) keeps a sink's events in
    order; a batch is delivered at most maxRetries + 1 times.
    """
    return mq.ConsumerSpec(
        durable=sink_durable(sink.name),
        filter_subject=f"{audit_subject(namespace, name)}.>",
        max_deliver=sink.max_retries + 1,
        max_ack_pending=sink.batch_size,
    )


# -- apply -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditStreamPlan:
    """What `ensure_audit_stream` did: the stream's plan and each sink's consumer plan."""

    stream: mq.StreamPlan
    consumers: dict[str, mq.ConsumerPlan]


async def ensure_audit_stream(
    js: JetStreamContext, namespace: str, name: str, spec: AuditSinkSpec
) -> AuditStreamPlan:
    """Ensure the stream and one consumer per sink; idempotent. Errors are `errors` MQ errors.

    A server that cannot hold `stream.replicas` copies or reserve `stream.maxBytes`
    raises MessageQueueRejected naming that manifest field and the fix. A stream
    another AuditSink owns raises `errors.Conflict` and is not touched.
    """
    stream = await resolve_stream_name(js, namespace, name, spec)
    wanted = stream_spec(namespace, name, spec, stream=stream)
    if (reason := reserved_name_conflict(namespace, name, spec)) is not None:
        raise conflict_error(reason, namespace, name, wanted.name)
    with errors.translate(errors.from_nats):
        observed = await jetstream.observe_stream(js, wanted.name)
    if (reason := stream_conflict(observed, namespace, name)) is not None:
        raise conflict_error(reason, namespace, name, wanted.name)
    try:
        stream_plan = await mq.ensure_stream(js, wanted)
    except errors.MessageQueueError as exc:
        refusal = _FIELD_REFUSALS.get(exc.error_code or 0)
        if refusal is None:
            raise
        field, fix = refusal
        raise errors.MessageQueueRejected(
            f"{field}: {exc.message}; {fix.format(spec=wanted)}",
            destination=wanted.name,
            operation=errors.MqOperation.REQUEST,
            error_code=exc.error_code,
            status_code=exc.status_code,
        ) from None
    consumers = {
        sink.name: await mq.ensure_consumer(js, wanted.name, consumer_spec(namespace, name, sink))
        for sink in spec.sinks
    }
    return AuditStreamPlan(stream_plan, consumers)


async def require_audit_stream(
    js: JetStreamContext, namespace: str, name: str, spec: AuditSinkSpec
) -> str:
    """The stream's name, once it and every sink's consumer exist; never creates either.

    The reading side of an AuditSink in a cluster (the control plane) calls
    this: the operator is the one writer of streams and consumers. Raises a
    retryable MessageQueueError naming what is missing while the operator has
    not created it yet, and `errors.Conflict` when another AuditSink owns it.
    """
    wanted = await resolve_stream_name(js, namespace, name, spec)
    if (reason := reserved_name_conflict(namespace, name, spec)) is not None:
        raise conflict_error(reason, namespace, name, wanted)
    with errors.translate(errors.from_nats):
        observed = await jetstream.observe_stream(js, wanted)
        existing = None if observed is None else set(await _consumer_names(js, wanted))
    if (reason := stream_conflict(observed, namespace, name)) is not None:
        raise conflict_error(reason, namespace, name, wanted)
    missing = (
        [f"stream {wanted}"]
        if existing is None
        else [f"consumer {wanted}/{sink_durable(s.name)}" for s in spec.sinks
              if sink_durable(s.name) not in existing]
    )  # fmt: skip
    if missing:
        raise errors.MessageQueueError(
            f"{', '.join(missing)} of AuditSink {namespace}/{name} does not exist yet: the"
            " operator creates it (see the AuditSink's StreamReady condition)",
            destination=wanted,
            operation=errors.MqOperation.REQUEST,
        )
    return wanted


# -- observe ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamState:
    """What the stream holds now."""

    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    consumer_count: int


@dataclass(frozen=True, slots=True)
class ConsumerLag:
    """How far a sink's consumer is behind: not yet delivered, delivered but not acked."""

    num_pending: int
    num_ack_pending: int
    delivered_stream_seq: int

    @property
    def undelivered(self) -> int:
        """Records the sink has not confirmed: pending plus awaiting ack."""
        return self.num_pending + self.num_ack_pending


async def stream_state(js: JetStreamContext, stream_name: str) -> StreamState:
    """The stream's counters; MessageQueueNotFound when it does not exist."""
    with errors.translate(errors.from_nats):
        state = (await js.stream_info(stream_name)).state
    return StreamState(
        messages=state.messages,
        bytes=state.bytes,
        first_seq=state.first_seq,
        last_seq=state.last_seq,
        consumer_count=state.consumer_count,
    )


async def consumer_lag(js: JetStreamContext, stream_name: str, durable: str) -> ConsumerLag:
    """The consumer's lag; MessageQueueNotFound when the stream or the consumer does not exist."""
    with errors.translate(errors.from_nats):
        info = await js.consumer_info(stream_name, durable)
    return ConsumerLag(
        num_pending=info.num_pending or 0,
        num_ack_pending=info.num_ack_pending or 0,
        delivered_stream_seq=info.delivered.stream_seq if info.delivered else 0,
    )


async def undelivered(js: JetStreamContext, stream_name: str, durables: Collection[str]) -> int:
    """Most records any of the `durables` has not confirmed; 0 when the stream is gone.

    A missing consumer has delivered nothing, so it counts every record in the stream.
    """
    try:
        messages = (await stream_state(js, stream_name)).messages
    except errors.MessageQueueNotFound:
        return 0
    worst = 0
    for durable in durables:
        try:
            lag = (await consumer_lag(js, stream_name, durable)).undelivered
        except errors.MessageQueueNotFound:
            lag = messages
        worst = max(worst, lag)
    return worst


async def delete_stream(
    js: JetStreamContext,
    stream_name: str,
    *,
    force: bool,
    durables: Collection[str] | None = None,
    owner: tuple[str, str] | None = None,
) -> bool:
    """Delete the stream; True if it existed. Idempotent: a missing stream is fine.

    With `owner` (the AuditSink's namespace and name) a stream that is not that
    AuditSink's (`stream_conflict`) is never deleted: `errors.Conflict`. Unless
    `force`, refuses with MessageQueueRejected (409) while a consumer still has
    undelivered records: the sinks' `durables`, or every consumer on the stream
    when None.
    """
    if owner is not None:
        with errors.translate(errors.from_nats):
            observed = await jetstream.observe_stream(js, stream_name)
        if (reason := stream_conflict(observed, *owner)) is not None:
            raise conflict_error(reason, *owner, stream_name)
    if not force:
        if durables is None:
            durables = await _consumer_names(js, stream_name)
        pending = await undelivered(js, stream_name, durables)
        if pending:
            raise errors.MessageQueueRejected(
                f"stream still holds {pending} audit records not delivered to every sink: let "
                "the sinks catch up (status.sinks[].lag), or delete with force to drop them",
                destination=stream_name,
                operation=errors.MqOperation.REQUEST,
                status_code=409,
            )
    with errors.translate(errors.from_nats):
        try:
            return await js.delete_stream(stream_name)
        except nats.js.errors.NotFoundError:
            return False


async def _consumer_names(js: JetStreamContext, stream_name: str) -> list[str]:
    with errors.translate(errors.from_nats):
        try:
            infos = await js.consumers_info(stream_name)
        except nats.js.errors.NotFoundError:
            return []
    return [info.name for info in infos]
