"""AuditService: the control plane's side of AuditSinks: ingest, query, verify, and the writers.

For each AuditSink (namespace, name) that `ensure_sink` was given, the service
holds the JetStream stream, an
`llm_infra.audit.AuditLog` that chains events into ``<subject>.records``
(resumed from the stream's last record, so a restart continues the chain), and
one `writer.SinkWriter` per sink. Standalone mode (`standalone.applier`) and,
in a cluster, the feeds (`feeds.feeds`) call `ensure_sink`/`remove_sink`; the
routes (`audit.routes`) call the rest.

Who writes the stream and its consumers depends on `owns_streams`: standalone
mode (True) creates them (`llm_infra.audit.ensure_audit_stream`) and, with
deletionPolicy Delete, deletes the stream when the AuditSink goes. In a cluster
(False) the operator is their one writer: the service waits until they exist
(`llm_infra.audit.require_audit_stream`, a retryable 503 meanwhile) and never
creates or deletes one; it appends, consumes and reports.

Ingest applies the sink's policy first (`apply_policy`, pure): a rule or the
default level decides how much is kept; level None records nothing. Bodies
travel in ``metadata.request`` and ``metadata.response``: Metadata drops both,
Request keeps the request, RequestResponse both. Each `policy.redact` pointer
applies inside both bodies and replaces the value with ``sha256:<hex>`` of its
canonical JSON, listing the pointer in ``redacted``.

Who and when: the route hands `append` the authenticated caller; `attest` makes
it the record's ``actor`` (its address as ``actor.ip``) and this server's clock
its ``time``, and keeps what the client claimed in ``asserted``. Policy runs
after, so rules (``users``) match the caller, never a claim.

Replays: each event id is remembered per stream in a JetStream KV bucket
(`SEEN_IDS_BUCKET`, the control plane's own, entries expire after
`replay_window` seconds) with the SHA-256 of what was submitted (the event as
sent, and the caller). The same id and body again answers the record stored
(a retry, inside JetStream's duplicateWindow or long after it); the same id
with another body is a Conflict (409), never a silent drop nor a second record.

An event counts as appended only once JetStream acknowledged its record. NATS
down (or not configured) answers `errors.MessageQueueError`, a 503 whose
problem carries Retry-After. A publish that failed may still have been stored
(the ack was lost), so the chain is re-read from the stream before the next
append, and a retried event (same id: JetStream deduplicates it within the
stream's duplicateWindow) answers the record already stored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import fnmatch
import hashlib
import logging
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
import pydantic
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from llm_infra import audit, crypto, errors, ids, jsondoc, mq
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec, Policy, RuleLevel
from llm_infra.client import AuditEventsPage, AuditStatus, AuditVerification, SinkDelivery
from llm_infra.mq import jetstream
from llm_infra_controlplane.audit import writer as audit_writer

_logger = logging.getLogger("llm_infra_controlplane.audit")

SEEN_IDS_BUCKET = "llm-infra-audit-ids"
"""KV bucket of the event ids appended per stream (key ``<stream>.<sha256 of id>``)."""
REPLAY_WINDOW = 30 * 24 * 3600.0
"""Default seconds an appended event id is remembered: a replay within it answers 200 or 409."""
DIGEST_HEADER = "Audit-Digest"

PUBLISH_TIMEOUT = 5.0
FIRST_CONNECT_TIMEOUT = 3.0
"""Seconds the first connection to NATS may take before the call answers 503."""
MAX_SCAN = 10_000
"""Most records one query page reads; a page may be short (even empty) with a nextCursor."""
DEDUPE_LOOKBACK = 1_000
"""How far back from the tail a deduplicated event's stored record is looked for."""
_SCAN_BATCH = 500
_CURSOR_PREFIX = "v1:"
_BODIES: dict[str, tuple[str, ...]] = {
    "Metadata": (),
    "Request": ("request",),
    "RequestResponse": ("request", "response"),
}

# -- policy (pure) ------------------------------------------------------------------------------


def _resource_matches(pattern: str, event: audit.AuditEvent) -> bool:
    # Rules name resources like Kubernetes does: plural kind, maybe "/name".
    kind = event.resource.kind.lower()
    plural = kind if kind.endswith("s") else f"{kind}s"
    candidates = (plural, f"{plural}/{event.resource.name}")
    return any(fnmatch.fnmatchcase(c, pattern.lower()) for c in candidates)


def event_level(policy: Policy, event: audit.AuditEvent) -> RuleLevel:
    """The level of the first rule whose actions, resources and users all match; else the default.

    Each list is fnmatch patterns, empty matching all; resources are ``<plural kind>``
    or ``<plural kind>/<name>`` (``vectorcollections/support-docs``), case-insensitive.
    """
    for rule in policy.audit_rules:
        if rule.actions and not any(fnmatch.fnmatchcase(event.action, a) for a in rule.actions):
            continue
        if rule.resources and not any(_resource_matches(r, event) for r in rule.resources):
            continue
        if rule.users and not any(fnmatch.fnmatchcase(event.actor.id, u) for u in rule.users):
            continue
        return rule.level
    return policy.level


def apply_policy(policy: Policy, event: audit.AuditEvent) -> audit.AuditEvent | None:
    """What is recorded of `event`: None at level None, bodies kept per level, redact hashed."""
    level = event_level(policy, event)
    if level == "None":
        return None
    kept = _BODIES[level]
    body = event.model_dump(mode="json")
    metadata = {
        k: v for k, v in body["metadata"].items() if k not in ("request", "response") or k in kept
    }
    body["metadata"] = metadata
    redacted = set(body["redacted"])
    for part in kept:
        for pointer in policy.redact:
            target = f"/metadata/{part}{pointer}"
            try:
                value = jsondoc.pointer_get(body, target)
            except errors.ValidationError:
                continue  # this event has nothing there
            body = jsondoc.pointer_set(body, target, f"sha256:{jsondoc.canonical_sha256(value)}")
            redacted.add(target)
    body["redacted"] = sorted(redacted)
    return audit.AuditEvent.model_validate(body)


def attest(event: audit.AuditEvent, caller: audit.Actor, now: dt.datetime) -> audit.AuditEvent:
    """`event` as recorded: `caller` as actor, `now` as time; the client's claims in `asserted`."""
    claimed = audit.Asserted(actor=event.actor, time=event.time)
    return event.model_copy(update={"actor": caller, "time": now, "asserted": claimed})


def submitted_digest(event: audit.AuditEvent, caller: audit.Actor | None) -> str:
    """SHA-256 of what was submitted under an event id: the event as sent, and who sent it."""
    body = {"event": event.model_dump(mode="json"), "caller": caller.id if caller else None}
    return hashlib.sha256(audit.canonical_record_bytes(body)).hexdigest()


def seen_key(stream: str, event_id: str) -> str:
    """The `SEEN_IDS_BUCKET` key of `event_id` in `stream` (ids may hold what keys may not)."""
    return f"{stream}.{hashlib.sha256(event_id.encode()).hexdigest()}"


# -- cursors ------------------------------------------------------------------------------------


def encode_cursor(stream_seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{stream_seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The stream sequence a cursor resumes at; ValidationError naming `cursor` if it is not one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith(_CURSOR_PREFIX) and (seq := int(text[len(_CURSOR_PREFIX) :])) >= 1:
            return seq
    except (ValueError, UnicodeDecodeError):
        pass
    raise errors.ValidationError(
        "cursor: not a cursor of this API: pass the nextCursor of the previous page, or none",
        field="cursor",
    )


# -- the service --------------------------------------------------------------------------------


class _Duplicate(Exception):  # noqa: N818  not an error: JetStream already holds the record
    """JetStream deduplicated a record by id: the event was stored before."""


class _Publisher:
    """AuditLog's publisher: fails fast while NATS is away, and reports deduplicated records."""

    def __init__(self, service: AuditService) -> None:
        self._service = service

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
    ) -> mq.PublishAck:
        queue = await self._service._queue()
        with _unavailable_on_timeout(subject, errors.MqOperation.PUBLISH):
            ack = await queue.publish(subject, data, headers=headers, msg_id=msg_id)
        if ack.duplicate and subject.endswith(".records"):
            raise _Duplicate(msg_id)
        return ack


class _Replay(Exception):  # noqa: N818  not an error: the id was appended before
    """The event id is in `SEEN_IDS_BUCKET` with the same digest, stored at `seq` (None: unsure)."""

    def __init__(self, seq: int | None) -> None:
        self.seq = seq


@dataclass
class _AuditSink:
    namespace: str
    name: str
    spec: AuditSinkSpec
    stream: str
    subject: str
    log: audit.AuditLog
    lock: asyncio.Lock
    writers: dict[str, audit_writer.SinkWriter] = field(default_factory=dict)
    public_key: crypto.VerifyKey | None = None
    resync: bool = True  # read the chain's head from the stream before the next append
    created: dt.datetime | None = None  # the stream's creation time when we started serving it

    @property
    def records_subject(self) -> str:
        return f"{self.subject}.records"

    @property
    def checkpoints_subject(self) -> str:
        return f"{self.subject}.checkpoints"


class AuditService:
    """The AuditSinks this control plane serves. `start()` in lifespan, `close()` at its end.

    Without `nats_url` every call answers MessageQueueError (503); a NATS that
    is down at start is connected to on the next call.
    """

    def __init__(
        self,
        nats_url: str | None,
        *,
        owns_streams: bool,
        token: pydantic.SecretStr | None = None,
        replay_window: float = REPLAY_WINDOW,
    ) -> None:
        self.nats_url = nats_url
        self._token = token
        self.owns_streams = owns_streams
        self.replay_window = replay_window
        """Seconds an appended event id is remembered (`SEEN_IDS_BUCKET`'s TTL)."""
        self._nc: NatsClient | None = None
        self._mq: mq.JetStreamQueue | None = None
        self._seen: KeyValue | None = None
        self._connecting = asyncio.Lock()
        self._sinks: dict[tuple[str, str], _AuditSink] = {}
        self._conflicts: dict[tuple[str, str], errors.Conflict] = {}
        """AuditSinks refused because their stream is another's: their API answers this 409."""

    async def start(self) -> None:
        if self.nats_url is None:
            _logger.warning("audit: no NATS configured (nats_url); the audit API answers 503")
            return
        try:
            await self._jetstream()
        except errors.MessageQueueError as exc:
            _logger.warning("audit: NATS not reachable yet (%s); connecting on first use", exc)

    async def close(self) -> None:
        """Stop every writer after its batch in hand, then close the NATS connection."""
        for state in list(self._sinks.values()):
            await self._stop_writers(state)
        self._sinks.clear()
        nc, self._nc, self._mq, self._seen = self._nc, None, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def ready(self) -> str | None:
        """None when audit can take events now, else why not (for /readyz)."""
        if self.nats_url is None:
            return None  # audit is off in this deployment: nothing to wait for
        try:
            await self._queue()
        except errors.MessageQueueError as exc:
            return exc.message
        return None

    # -- connection -------------------------------------------------------------------------

    async def _jetstream(self) -> JetStreamContext:
        return await (await self._queue()).jetstream()

    async def _queue(self) -> mq.JetStreamQueue:
        if self.nats_url is None:
            raise errors.MessageQueueError(
                "no NATS configured for audit: set the control plane's nats_url",
                operation=errors.MqOperation.CONNECT,
            )
        async with self._connecting:
            if self._nc is None:
                with errors.translate(errors.from_nats):
                    # Reconnects forever once connected; calls fail fast (503) meanwhile.
                    # Bounded: nats-py retries a refused *first* connect forever.
                    connecting = nats.connect(
                        self.nats_url,
                        token=self._token.get_secret_value() if self._token else None,
                        connect_timeout=2,
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=0.2,
                        error_cb=_quiet,
                    )
                    try:
                        self._nc = await asyncio.wait_for(connecting, FIRST_CONNECT_TIMEOUT)
                    except TimeoutError:
                        raise errors.MessageQueueError(
                            f"NATS at {self.nats_url} did not answer within"
                            f" {FIRST_CONNECT_TIMEOUT:.0f}s: check that it runs and is reachable",
                            operation=errors.MqOperation.CONNECT,
                        ) from None
                self._mq = mq.JetStreamQueue(self._nc, timeout=PUBLISH_TIMEOUT)
        assert self._mq is not None
        assert self._nc is not None
        if not self._nc.is_connected:
            raise errors.MessageQueueError(
                "NATS is unreachable (reconnecting): retry after the Retry-After delay",
                operation=errors.MqOperation.CONNECT,
            )
        return self._mq

    # -- sinks ------------------------------------------------------------------------------

    async def ensure_sink(
        self,
        namespace: str,
        name: str,
        spec: AuditSinkSpec,
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        file_root: Path | None = None,
    ) -> None:
        """Serve AuditSink `namespace/name`: stream and consumers ensured, writers started.

        Idempotent; a changed spec restarts the writers. `secrets` maps Secret
        name -> key -> value in the AuditSink's namespace (webhook HMAC and CA,
        object store credentials, the signing key). `file_root` re-roots file
        sink paths (standalone: ``<data>/audit-sinks``; see `audit_writer.rerooted`).
        """
        secrets = secrets or {}
        deliveries = {
            sink.name: audit_writer.build_delivery(
                sink, index=i, secrets=secrets, file_root=file_root
            )
            for i, sink in enumerate(spec.sinks)
        }
        signing_key = _signing_key(spec, secrets)
        js = await self._jetstream()
        try:
            if self.owns_streams:
                plan = await audit.ensure_audit_stream(js, namespace, name, spec)
                stream = plan.stream.spec.name
            else:  # the operator's: wait for them, never create one
                stream = await audit.require_audit_stream(js, namespace, name, spec)
        except errors.Conflict as exc:
            # Another AuditSink's stream: stop serving this one, and say why on its API.
            previous = self._sinks.pop((namespace, name), None)
            if previous is not None:
                async with previous.lock:
                    await self._stop_writers(previous)
            self._conflicts[(namespace, name)] = exc
            raise
        self._conflicts.pop((namespace, name), None)
        with errors.translate(errors.from_nats):
            created = (await js.stream_info(stream)).created
        subject = audit.audit_subject(namespace, name)
        previous = self._sinks.get((namespace, name))
        lock = previous.lock if previous is not None else asyncio.Lock()
        async with lock:
            if previous is not None:
                await self._stop_writers(previous)
            te = spec.tamper_evidence
            log = audit.AuditLog(
                _Publisher(self),
                subject,
                checkpoint_every=te.checkpoint_every if signing_key is not None else None,
                signing_key=signing_key,
            )
            state = _AuditSink(
                namespace=namespace,
                name=name,
                spec=spec,
                stream=stream,
                subject=subject,
                log=log,
                lock=lock,
                public_key=signing_key.verify_key if signing_key is not None else None,
                created=created,
            )
            for sink in spec.sinks:
                writer = audit_writer.SinkWriter(
                    js,
                    state.stream,
                    audit.sink_durable(sink.name),
                    sink,
                    deliveries[sink.name],
                    spec.throttle,
                )
                writer.start()
                state.writers[sink.name] = writer
            self._sinks[(namespace, name)] = state

    async def remove_sink(self, namespace: str, name: str) -> str:
        """Stop serving the AuditSink; what became of its stream, as a phrase for the log.

        When this service owns the streams (standalone) and the deletionPolicy
        is Delete, its stream goes too, unless a sink has not received every
        record yet (MessageQueueRejected, 409) and deleteUndelivered is off. A
        stream that is not this AuditSink's (`audit.stream_conflict`) is never
        deleted.
        """
        conflict = self._conflicts.pop((namespace, name), None)
        state = self._sinks.pop((namespace, name), None)
        if state is None:
            if conflict is not None:
                return f"was not served, its stream untouched: {conflict.message}"
            return "was not served, no stream touched"
        async with state.lock:
            await self._stop_writers(state)
        if not self.owns_streams:
            return f"stream {state.stream} left to the operator"
        if state.spec.deletion_policy != "Delete":
            return f"stream {state.stream} kept (deletionPolicy Retain)"
        durables = [audit.sink_durable(s.name) for s in state.spec.sinks]
        try:
            deleted = await audit.delete_stream(
                await self._jetstream(),
                state.stream,
                force=state.spec.delete_undelivered,
                durables=durables,
                owner=(namespace, name),
            )
        except errors.Conflict as exc:
            return f"stream {state.stream} not deleted: {exc.message}"
        gone = "deleted" if deleted else "was already gone"
        return f"stream {state.stream} {gone} (deletionPolicy Delete)"

    async def _stop_writers(self, state: _AuditSink) -> None:
        await asyncio.gather(*(writer.stop() for writer in state.writers.values()))
        state.writers.clear()

    def _sink(self, namespace: str, name: str) -> _AuditSink:
        state = self._sinks.get((namespace, name))
        if state is None and (conflict := self._conflicts.get((namespace, name))) is not None:
            raise conflict
        if state is None:
            raise errors.NotFound(
                f"no AuditSink {namespace}/{name} is served here: apply the AuditSink, or check"
                " the namespace and name in the path",
                service="audit",
            )
        return state

    # -- ingest -----------------------------------------------------------------------------

    async def append(
        self,
        namespace: str,
        name: str,
        events: Iterable[audit.AuditEvent],
        *,
        caller: audit.Actor | None = None,
    ) -> list[audit.AuditRecord]:
        """Record `events` per the policy, in order; returns once JetStream acked every record.

        With `caller` (the authenticated principal, as the route passes it) each
        record's actor and time are the caller's and this server's (`attest`).
        Events the policy records nothing of have no record in the answer. An id
        appended before answers its stored record when the submission is the
        same, Conflict (409) when it differs.
        """
        state = self._sink(namespace, name)
        records: list[audit.AuditRecord] = []
        async with state.lock:
            try:
                if state.resync:
                    await self._resync(state)
                kept: list[tuple[audit.AuditEvent, str]] = []
                for event in events:
                    digest = submitted_digest(event, caller)
                    if caller is not None:
                        event = attest(event, caller, dt.datetime.now(dt.UTC))
                    if (recorded := apply_policy(state.spec.policy, event)) is not None:
                        kept.append((recorded, digest))
                # Every id of the batch is claimed at once (one round trip for the batch,
                # not one per record), before anything is published: a conflicting id
                # fails the batch before any of it is stored.
                seen = await self._seen_ids()
                claims = await asyncio.gather(
                    *(self._claim(seen, state, event, digest) for event, digest in kept),
                    return_exceptions=True,
                )
                if refused := next((c for c in claims if isinstance(c, BaseException)), None):
                    raise refused
                stored_seqs = [c for c in claims if not isinstance(c, BaseException)]
                remembering: list[asyncio.Task[int]] = []
                try:
                    for (event, digest), stored_seq in zip(kept, stored_seqs, strict=True):
                        records.append(
                            await self._append_one(
                                seen, state, event, digest, stored_seq, remembering
                            )
                        )
                finally:
                    # Each record's seq goes to the seen-ids bucket while the next one is
                    # published (one round trip less per record); all land before the answer.
                    done = await asyncio.gather(*remembering, return_exceptions=True)
                failed = next((r for r in done if isinstance(r, BaseException)), None)
                if failed is not None:
                    with (
                        _unavailable_on_timeout(SEEN_IDS_BUCKET),
                        errors.translate(errors.from_nats),
                    ):
                        raise failed
            except BaseException:
                # A failed publish may have been stored all the same: re-read the head first.
                state.resync = True
                raise
        return records

    async def _claim(
        self, seen: KeyValue, state: _AuditSink, event: audit.AuditEvent, digest: str
    ) -> int | None:
        """The seq `event.id` was stored at if it was appended before (same body), else None.

        None also when the id was claimed before but whether it was stored is unknown:
        JetStream's dedupe decides then. Conflict (409) when it was claimed with another body.
        """
        try:
            await self._first_sight(seen, seen_key(state.stream, event.id), event.id, digest)
        except _Replay as replay:
            return replay.seq
        return None

    async def _append_one(
        self,
        seen: KeyValue,
        state: _AuditSink,
        event: audit.AuditEvent,
        digest: str,
        stored_seq: int | None,
        remembering: list[asyncio.Task[int]],
    ) -> audit.AuditRecord:
        if stored_seq is not None:
            return await self._stored_at(state, event.id, stored_seq)
        try:
            record = await state.log.append(event, headers={DIGEST_HEADER: digest})
        except _Duplicate:
            record = await self._stored(state, event.id, digest)
        key = seen_key(state.stream, event.id)
        remembering.append(asyncio.create_task(seen.put(key, f"{digest} {record.seq}".encode())))
        return record

    async def _seen_ids(self) -> KeyValue:
        await self._queue()  # NATS away: 503 now, not a KV timeout later
        if self._seen is None:
            js = await self._jetstream()
            with errors.translate(errors.from_nats):
                try:
                    self._seen = await js.key_value(SEEN_IDS_BUCKET)
                except nats.js.errors.BucketNotFoundError:
                    self._seen = await js.create_key_value(
                        api.KeyValueConfig(
                            bucket=SEEN_IDS_BUCKET,
                            description="llm-infra audit: event ids appended, per stream",
                            ttl=self.replay_window,
                            storage=api.StorageType.FILE,
                        )
                    )
        return self._seen

    @staticmethod
    async def _first_sight(seen: KeyValue, key: str, event_id: str, digest: str) -> None:
        """Claim `key` for `digest`; _Replay if it was claimed with the same, Conflict if not."""
        with _unavailable_on_timeout(SEEN_IDS_BUCKET), errors.translate(errors.from_nats):
            try:
                await seen.create(key, digest.encode())
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                entry = await seen.get(key)
        stored_digest, _, seq = (entry.value or b"").decode().partition(" ")
        if stored_digest != digest:
            raise _different_body(event_id)
        raise _Replay(int(seq) if seq else None)

    async def _stored_at(self, state: _AuditSink, event_id: str, seq: int) -> audit.AuditRecord:
        """The record `event_id` was appended as, at chain seq `seq`: a binary search of the stream.

        Chain seqs grow with stream seqs (checkpoints sit between records), so
        ``next_by_subj`` lookups halve the range each time: ~log2(messages) reads.
        """
        js = await self._jetstream()
        with errors.translate(errors.from_nats):
            low, high = 1, (await js.stream_info(state.stream)).state.last_seq
            while low <= high:
                middle = (low + high) // 2
                try:
                    msg = await js.get_msg(
                        state.stream, middle, subject=state.records_subject, next=True
                    )
                except nats.js.errors.NotFoundError:
                    high = middle - 1
                    continue
                assert msg.data is not None
                assert msg.seq is not None
                record = audit.AuditRecord.model_validate_json(msg.data)
                if record.seq == seq and record.id == event_id:
                    return record
                if record.seq == seq:
                    break  # another record holds that seq: this stream is not the one it went to
                if record.seq < seq:
                    low = msg.seq + 1
                else:
                    high = middle - 1
        raise errors.Conflict(
            f"event id {event_id} was appended before as seq {seq}, which stream {state.stream}"
            " no longer holds (aged out, or the stream was replaced): give each new event a new id",
            service="audit",
        )

    async def _resync(self, state: _AuditSink) -> None:
        js = await self._jetstream()
        try:
            with errors.translate(errors.from_nats):
                last = await js.get_last_msg(state.stream, state.records_subject)
        except errors.MessageQueueNotFound:
            state.log.chain.seq, state.log.chain.head = 0, audit.GENESIS_HASH
        else:
            assert last.data is not None
            record = orjson.loads(last.data)
            state.log.chain.seq, state.log.chain.head = record["seq"], record["hash"]
        state.resync = False

    async def _stored(self, state: _AuditSink, event_id: str, digest: str) -> audit.AuditRecord:
        """The record JetStream already holds for `event_id`: looked for back from the tail.

        One stored from another submission (its `DIGEST_HEADER` differs) is a Conflict.
        """
        js = await self._jetstream()
        with errors.translate(errors.from_nats):
            seq = (await js.stream_info(state.stream)).state.last_seq
            for stream_seq in range(seq, max(0, seq - DEDUPE_LOOKBACK), -1):
                try:
                    msg = await js.get_msg(state.stream, stream_seq)
                except nats.js.errors.NotFoundError:
                    continue
                if msg.subject == state.records_subject and msg.data is not None:
                    record = audit.AuditRecord.model_validate_json(msg.data)
                    if record.id == event_id:
                        stored = (msg.headers or {}).get(DIGEST_HEADER)
                        if stored is not None and stored != digest:
                            raise _different_body(event_id)
                        return record
        raise errors.Conflict(
            f"event id {event_id} was stored before, more than {DEDUPE_LOOKBACK} messages ago:"
            " give each new event a new id",
            service="audit",
        )

    # -- reading ----------------------------------------------------------------------------

    async def query(
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
        cursor: str | None = None,
    ) -> AuditEventsPage:
        """One page of the records matching every filter, oldest first (`audit.query` filters)."""
        state = self._sink(namespace, name)
        start = decode_cursor(cursor) if cursor is not None else 1
        js = await self._jetstream()
        position = {"seq": 0, "more": 0}

        async def scanned() -> AsyncGenerator[Mapping[str, Any]]:
            count = 0
            async with contextlib.aclosing(
                _scan(js, state.stream, state.records_subject, start)
            ) as scan:
                async for seq, data, more in scan:
                    position.update(seq=seq, more=more)
                    yield orjson.loads(data)
                    count += 1
                    if count >= MAX_SCAN:
                        return

        matched: list[audit.AuditRecord] = []
        # Closing the source ends the scan (and deletes its consumer) even after a break.
        async with contextlib.aclosing(scanned()) as source:
            filters = audit.query(
                source, actor=actor, action=action, resource=resource, since=since, until=until
            )
            async for record in filters:
                matched.append(record)
                if len(matched) >= limit:
                    break
        more = position["more"] > 0
        return AuditEventsPage(
            records=matched,
            next_cursor=encode_cursor(position["seq"] + 1) if more else None,
        )

    async def verify(self, namespace: str, name: str) -> AuditVerification:
        """Verify the chain the stream holds, from its oldest record, and the signed checkpoints.

        Records aged out by stream limits are not there to check: the chain is
        verified from the first record held (`first_seq`), trusting its prev_hash.
        A stream that is gone answers MessageQueueNotFound, one another AuditSink
        owns a Conflict, and one created anew since this service started serving
        it is not ok: an empty stream proves nothing.
        """
        state = self._sink(namespace, name)
        js = await self._jetstream()
        with errors.translate(errors.from_nats):
            try:
                info = await js.stream_info(state.stream)
            except nats.js.errors.NotFoundError:
                raise errors.MessageQueueNotFound(
                    f"stream {state.stream} of AuditSink {namespace}/{name} does not exist (deleted"
                    " outside llm-infra?): its records are gone; apply the AuditSink again to"
                    " start a new stream",
                    destination=state.stream,
                    operation=errors.MqOperation.REQUEST,
                ) from None
        observed = jetstream.stream_spec_of(info.config, state.stream)
        if (reason := audit.stream_conflict(observed, namespace, name)) is not None:
            raise audit.conflict_error(reason, namespace, name, state.stream)
        if state.created is not None and info.created != state.created:
            return AuditVerification(
                ok=False,
                records=0,
                reason=f"stream {state.stream} was replaced: created {info.created}, but the"
                f" one served since {state.created} is gone with its records",
            )
        async with contextlib.aclosing(
            _scan(js, state.stream, state.checkpoints_subject, 1)
        ) as scan:
            checkpoints = [audit.Checkpoint.model_validate_json(data) async for _, data, _ in scan]
        verified = 0
        first_seq: int | None = None
        next_seq, prev = 1, audit.GENESIS_HASH
        chunk: list[dict[str, Any]] = []

        def check(final: bool) -> audit.VerifyResult:
            low, high = chunk[0]["seq"] if chunk else next_seq, next_seq + len(chunk) - 1
            due = [cp for cp in checkpoints if cp.seq >= low and (final or cp.seq <= high)]
            return audit.verify_chain(
                chunk, due, state.public_key, start_seq=next_seq, start_prev_hash=prev
            )

        async with contextlib.aclosing(_scan(js, state.stream, state.records_subject, 1)) as scan:
            async for _, data, more in scan:
                record = orjson.loads(data)
                if first_seq is None:
                    first_seq = next_seq = record["seq"]
                    prev = record["prev_hash"]
                chunk.append(record)
                if len(chunk) >= MAX_SCAN and more:
                    result = check(final=False)
                    if not result.ok:
                        return _verification(result, verified, first_seq, len(checkpoints))
                    verified += result.records
                    next_seq, prev = chunk[-1]["seq"] + 1, chunk[-1]["hash"]
                    chunk = []
        result = check(final=True)
        return _verification(result, verified, first_seq, len(checkpoints))

    async def status(self, namespace: str, name: str) -> AuditStatus:
        """The stream's counters, the chain's head and each sink's delivery state."""
        state = self._sink(namespace, name)
        stream = await audit.stream_state(await self._jetstream(), state.stream)
        return AuditStatus(
            stream_name=state.stream,
            messages=stream.messages,
            bytes=stream.bytes,
            first_sequence=stream.first_seq,
            last_sequence=stream.last_seq,
            chain_seq=state.log.chain.seq,
            chain_head=state.log.chain.head,
            sinks=await self.lag(namespace, name),
        )

    async def lag(self, namespace: str, name: str) -> list[SinkDelivery]:
        """Per sink: the consumer's lag (what the operator writes to status) and writer counters."""
        state = self._sink(namespace, name)
        js = await self._jetstream()
        out = []
        for sink in state.spec.sinks:
            durable = audit.sink_durable(sink.name)
            lag = await audit.consumer_lag(js, state.stream, durable)
            writer = state.writers.get(sink.name)
            counters = writer.counters if writer else audit_writer.SinkCounters()
            out.append(
                SinkDelivery(
                    name=sink.name,
                    consumer=durable,
                    lag=lag.undelivered,
                    pending=lag.num_pending,
                    ack_pending=lag.num_ack_pending,
                    delivered=counters.delivered,
                    failed=counters.failed,
                    last_error=counters.last_error,
                    last_delivery_time=counters.last_delivery_time,
                )
            )
        return out


def _verification(
    result: audit.VerifyResult, before: int, first_seq: int | None, checkpoints: int
) -> AuditVerification:
    return AuditVerification(
        ok=result.ok,
        records=before + result.records,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason,
        first_seq=first_seq,
        checkpoints=checkpoints,
    )


def _signing_key(
    spec: AuditSinkSpec, secrets: Mapping[str, Mapping[str, str]]
) -> crypto.SigningKey | None:
    ref = spec.tamper_evidence.signing_key_secret_ref
    if ref is None:
        return None
    pem = secrets.get(ref.name, {}).get(ref.key)
    if pem is None:
        where = "spec.tamperEvidence.signingKeySecretRef"
        raise errors.ConfigMissing(
            f"{where}: Secret key {ref.name}/{ref.key} not found: create the Secret (an Ed25519"
            " private key, PEM) in the AuditSink's namespace or fix the reference",
            key=where,
        )
    return crypto.SigningKey.from_pem(pem)


async def _scan(
    js: JetStreamContext, stream: str, subject: str, start: int
) -> AsyncGenerator[tuple[int, bytes, int]]:
    """(stream seq, data, messages left) of each message on `subject` from stream seq `start`.

    An ephemeral, unacknowledged pull consumer reads in batches (deleted at the
    end, or by the server once idle); it stops at the subject's last message as
    of the call, so writes meanwhile do not prolong it. Close it with `aclosing`.
    """
    with errors.translate(errors.from_nats):
        try:
            last = (await js.get_last_msg(stream, subject)).seq or 0
        except nats.js.errors.NotFoundError:
            return
        if last < start:
            return
        name = f"scan-{ids.ulid()}"
        config = api.ConsumerConfig(
            name=name,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=api.AckPolicy.NONE,
            filter_subject=subject,
            inactive_threshold=30.0,
            mem_storage=True,
        )
        await js.add_consumer(stream, config)
        sub = await js.pull_subscribe_bind(stream=stream, name=name)
    try:
        while True:
            with errors.translate(errors.from_nats):
                msgs = await sub.fetch(_SCAN_BATCH, timeout=PUBLISH_TIMEOUT)
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                more = msg.metadata.num_pending if seq < last else 0
                yield seq, msg.data, more
                if not more:
                    return
    finally:
        with errors.translate(errors.from_nats):
            await sub.unsubscribe()
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(stream, name)


@contextlib.contextmanager
def _unavailable_on_timeout(
    destination: str, operation: errors.MqOperation = errors.MqOperation.REQUEST
) -> Iterator[None]:
    """A JetStream call that timed out may have happened or not: 503, retry with the same ids.

    (Appends are safe to repeat: their ids make JetStream drop a second copy.)
    """
    try:
        yield
    except errors.MessageQueueTimeout as exc:
        raise errors.MessageQueueError(
            f"JetStream did not answer in time: {exc.message}; retry with the same ids",
            destination=destination,
            operation=operation,
        ) from None


def _different_body(event_id: str) -> errors.Conflict:
    return errors.Conflict(
        f"event id {event_id} was appended before with another body (or by another caller):"
        " an id names one event; give each new event a new id",
        service="audit",
    )


async def _quiet(exc: Exception) -> None:
    """Connection errors surface on the calls that fail (503); don't log each reconnect attempt."""


__all__ = [
    "AuditService",
    "apply_policy",
    "attest",
    "decode_cursor",
    "encode_cursor",
    "event_level",
    "seen_key",
    "submitted_digest",
]
