"""The tamper-evident audit log: records, a SHA-256 hash chain, signed checkpoints, a verifier.

The chain half of `llm_infra.audit` (`_streams` is the JetStream side); import it from there.

Each `AuditRecord` is a CloudEvents-like envelope (id, time, actor, action,
resource, outcome, metadata) plus chain fields: ``seq`` (1, 2, ...),
``prev_hash`` (64 zeros before the first record) and ``hash``, the hex SHA-256
of the RFC 8785 canonical JSON of the record without ``hash``. `redact` masks or
removes values by JSON Pointer *before* hashing and records which pointers it
touched. Every N records `HashChain` signs a `Checkpoint` (Ed25519 over the
canonical JSON of seq, hash and time) that anyone with the public key checks
with `verify_checkpoint`; `verify_chain` streams records and names the first
broken seq (altered record, broken link, gap, reorder, truncated tail).

`AuditLog` chains events and publishes them through any `Publisher` (the
`llm_infra.mq` JetStreamQueue fits), with ``event:<id>`` as the JetStream
``Nats-Msg-Id`` so a retried publish is deduplicated; checkpoints use
``checkpoint:<seq>``, a space no event id can reach.

Edge limits: an event id is 1-128 characters of ``EVENT_ID_CHARS``;
``metadata`` nests at most ``MAX_JSON_DEPTH`` containers deep (deeper input
would exhaust the canonical-JSON encoders). Neighbours: `jsondoc`
(canonical JSON, pointers), `errors`; Ed25519 comes from ``cryptography``
behind `_ed25519_sign`/`_ed25519_verify` until `llm_infra.crypto` lands.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import orjson
import pydantic
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from llm_infra import errors, ids, jsondoc

__all__ = [
    "EVENT_ID_PATTERN",
    "GENESIS_HASH",
    "MASK",
    "MAX_JSON_DEPTH",
    "Actor",
    "Asserted",
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "Checkpoint",
    "HashChain",
    "Outcome",
    "Publisher",
    "Resource",
    "Signer",
    "Verifier",
    "VerifyResult",
    "canonical_record_bytes",
    "checkpoint_msg_id",
    "event_msg_id",
    "query",
    "record_hash",
    "redact",
    "verify_chain",
    "verify_checkpoint",
]

GENESIS_HASH = "0" * 64
MASK = "***"
Outcome = Literal["success", "failure", "denied"]

EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$"
"""An event id: 1-128 of letters, digits and ``._:@/+=-``, starting with a letter or digit."""
MAX_JSON_DEPTH = 32
"""How deep ``metadata`` may nest objects and arrays."""

_CHAIN_FIELDS = frozenset({"seq", "prev_hash", "hash"})
# Redacting these would make the record unverifiable or unaddressable.
_PROTECTED = frozenset({"/seq", "/prev_hash", "/hash", "/id", "/redacted"})

# -- model ----------------------------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class Actor(_Model):
    """Who acted: a user, a service account, a controller."""

    id: str
    kind: str
    ip: str | None = None


class Asserted(_Model):
    """What the submitter of an event claimed, kept apart from what the recorder established.

    The control plane records the authenticated caller as ``actor`` (its address
    as ``actor.ip``) and its own clock as ``time``; the actor and time the client
    sent land here, labelled as claims, for investigation only: no policy reads them.
    """

    actor: Actor | None = None
    time: dt.datetime | None = None


def _json_depth_ok(value: Any, limit: int) -> bool:
    # Iterative: a recursive walk is what deep input is meant to break.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


class Resource(_Model):
    kind: str
    namespace: str
    name: str


class AuditEvent(_Model):
    """What happened, before it is chained: `HashChain.append` adds seq, prev_hash and hash."""

    id: str = pydantic.Field(default_factory=ids.ulid, pattern=EVENT_ID_PATTERN, max_length=128)
    time: dt.datetime = pydantic.Field(default_factory=_utcnow)
    actor: Actor
    action: str
    resource: Resource
    outcome: Outcome
    metadata: dict[str, Any] = pydantic.Field(default_factory=dict)
    redacted: list[str] = pydantic.Field(default_factory=list)
    asserted: Asserted | None = pydantic.Field(None, exclude_if=lambda value: value is None)
    """The submitter's own claims, when a recorder replaced them (see `Asserted`)."""

    @pydantic.field_validator("metadata", mode="before")
    @classmethod
    def _shallow(cls, value: Any) -> Any:
        # Before parsing: pydantic's own walk of 500 levels is the failure to avoid.
        if not _json_depth_ok(value, MAX_JSON_DEPTH + 1):
            raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels of objects and arrays")
        return value

    @pydantic.field_validator("time")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("time must be timezone-aware")
        return value.astimezone(dt.UTC)


class AuditRecord(AuditEvent):
    """A chained event. `hash` covers every other field, as canonical JSON."""

    seq: int = pydantic.Field(ge=1)
    prev_hash: str = pydantic.Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = pydantic.Field(pattern=r"^[0-9a-f]{64}$")


class Checkpoint(_Model):
    """A signed statement "the chain had `hash` at `seq`"; `signature` is hex Ed25519."""

    seq: int = pydantic.Field(ge=1)
    hash: str = pydantic.Field(pattern=r"^[0-9a-f]{64}$")
    time: dt.datetime
    signature: str

    def signed_bytes(self) -> bytes:
        return _checkpoint_message(self.seq, self.hash, self.time)


class VerifyResult(_Model):
    """`ok`, how many records verified, and the first seq at fault with the reason."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str | None = None


# -- canonical hashing ----------------------------------------------------------------------------


def _orjson_is_canonical(value: Any) -> bool:
    """True when orjson with sorted keys gives the RFC 8785 bytes for `value`.

    That holds for strings, booleans, null, 53-bit integers and containers of
    them, unless a key holds a character at or above U+E000 (JCS sorts by UTF-16
    code units, orjson by code points). Floats (ECMAScript number formatting)
    and anything else go to `jsondoc.canonical`.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and max(key) >= "\ue000"):
                return False
            if not _orjson_is_canonical(item):
                return False
        return True
    if kind is list:
        return all(_orjson_is_canonical(item) for item in value)
    return False


_SORTED_STRICT = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def canonical_record_bytes(body: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of a JSON-shaped mapping, fast when orjson agrees with JCS.

    rfc8785 costs ~35 µs for a typical record, orjson ~2 µs: the fast path is
    what makes 1,000,000 records verify in seconds. The unit tests pin both
    paths to `jsondoc.canonical` byte for byte.
    """
    if _orjson_is_canonical(body):
        try:
            return orjson.dumps(body, option=_SORTED_STRICT)
        except TypeError:  # integer beyond 53 bits: let rfc8785 name it
            pass
    return jsondoc.canonical(body)


def record_hash(record: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of `record` with ``hash`` left out."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(canonical_record_bytes(body)).hexdigest()


# -- redaction ------------------------------------------------------------------------------------


def redact(
    record: Mapping[str, Any],
    pointers: Iterable[str],
    *,
    mode: Literal["mask", "remove"] = "mask",
) -> dict[str, Any]:
    """A new record with each pointer's value masked (``"***"``) or removed, before hashing.

    Pointers whose target is absent are skipped (a rule like ``/metadata/password``
    applies to the events that have one); those applied are added, sorted, to
    ``redacted``. Chain fields, ``/id`` and ``/redacted`` cannot be redacted.
    """
    doc: Any = dict(record)
    done = set(doc.get("redacted") or ())
    for pointer in pointers:
        if not pointer.startswith("/"):
            raise errors.ValidationError(
                f"redaction pointer {pointer!r} must start with '/'",
                field="pointers",
                actual=pointer,
            )
        if pointer in _PROTECTED or pointer.split("/", 2)[1] in _CHAIN_FIELDS:
            raise errors.ValidationError(
                f"cannot redact {pointer!r}: it identifies or chains the record",
                field="pointers",
                actual=pointer,
            )
        try:
            jsondoc.pointer_get(doc, pointer)
        except errors.ValidationError:
            continue
        if mode == "mask":
            doc = jsondoc.pointer_set(doc, pointer, MASK)
        else:
            doc = jsondoc.pointer_remove(doc, pointer)
        done.add(pointer)
    out: dict[str, Any] = doc
    out["redacted"] = sorted(done)
    return out


# -- Ed25519 --------------------------------------------------------------------------------------


@runtime_checkable
class Signer(Protocol):
    """What `llm_infra.crypto.SigningKey` offers: ``sign(data) -> signature``."""

    def sign(self, data: bytes) -> bytes: ...


@runtime_checkable
class Verifier(Protocol):
    """What `llm_infra.crypto.VerifyKey` offers: raises errors.VerificationFailed on a bad one."""

    def verify(self, data: bytes, signature: bytes) -> Any: ...


SigningKeyLike = Signer | ed25519.Ed25519PrivateKey | bytes
PublicKeyLike = Verifier | ed25519.Ed25519PublicKey | bytes


def _ed25519_sign(key: SigningKeyLike, data: bytes) -> bytes:
    # cryptography's keys are checked first: their verify() takes (signature, data).
    if isinstance(key, bytes):
        return ed25519.Ed25519PrivateKey.from_private_bytes(key).sign(data)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data)


def _ed25519_verify(key: PublicKeyLike, data: bytes, signature: bytes) -> None:
    try:
        if isinstance(key, bytes):
            ed25519.Ed25519PublicKey.from_public_bytes(key).verify(signature, data)
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(data, signature)
    except InvalidSignature:
        raise errors.VerificationFailed("Ed25519 signature does not match") from None
    except ValueError as exc:  # a public key of the wrong length
        raise errors.VerificationFailed(f"unusable Ed25519 public key: {exc}") from None


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _checkpoint_message(seq: int, hash_: str, time: dt.datetime) -> bytes:
    return jsondoc.canonical({"seq": seq, "hash": hash_, "time": _rfc3339(time)})


def verify_checkpoint(checkpoint: Checkpoint, public_key: PublicKeyLike) -> None:
    """Check the signature with the public key only; raise errors.VerificationFailed."""
    try:
        signature = bytes.fromhex(checkpoint.signature)
    except ValueError:
        raise errors.VerificationFailed(
            f"checkpoint at seq {checkpoint.seq}: signature is not hex"
        ) from None
    _ed25519_verify(public_key, checkpoint.signed_bytes(), signature)


# -- the chain ------------------------------------------------------------------------------------


class HashChain:
    """Assigns seq, prev_hash and hash; signs a `Checkpoint` every `checkpoint_every` records.

    Not thread-safe: one writer per chain (`AuditLog` serializes its appends).
    Resume an existing chain with `seq` and `head` from its last record.
    """

    def __init__(
        self,
        *,
        checkpoint_every: int | None = None,
        signing_key: SigningKeyLike | None = None,
        redact_pointers: Sequence[str] = (),
        seq: int = 0,
        head: str = GENESIS_HASH,
    ) -> None:
        if checkpoint_every is not None and checkpoint_every < 1:
            raise errors.ValidationError("checkpoint_every must be >= 1", field="checkpoint_every")
        if checkpoint_every is not None and signing_key is None:
            raise errors.ValidationError("checkpoints need a signing_key", field="signing_key")
        self.checkpoint_every = checkpoint_every
        self._signing_key = signing_key
        self.redact_pointers = tuple(redact_pointers)
        self.seq = seq
        self.head = head
        self.checkpoints: list[Checkpoint] = []

    def append(self, event: AuditEvent | Mapping[str, Any]) -> AuditRecord:
        """Chain one event (an `AuditEvent` or its fields) and return the record."""
        return self.append_with_checkpoint(event)[0]

    def append_with_checkpoint(
        self, event: AuditEvent | Mapping[str, Any]
    ) -> tuple[AuditRecord, Checkpoint | None]:
        """Like `append`, also returning the checkpoint this record completed, if any."""
        if not isinstance(event, AuditEvent):
            extra = _CHAIN_FIELDS.intersection(event)
            if extra:
                raise errors.ValidationError(
                    f"event already has chain fields: {sorted(extra)}", field=sorted(extra)[0]
                )
            try:
                event = AuditEvent.model_validate(event)
            except pydantic.ValidationError as exc:
                raise errors.ValidationError(
                    f"not an audit event: {exc.error_count()} error(s): {exc.errors()[0]['msg']}",
                    field=".".join(str(p) for p in exc.errors()[0]["loc"]),
                ) from None
        body = event.model_dump(mode="json")
        if self.redact_pointers:
            body = redact(body, self.redact_pointers)
        body["seq"] = self.seq + 1
        body["prev_hash"] = self.head
        digest = hashlib.sha256(canonical_record_bytes(body)).hexdigest()
        body["hash"] = digest
        # Validating the JSON body measured faster than model_construct from the event.
        record = AuditRecord.model_validate(body)
        self.seq += 1
        self.head = digest
        checkpoint = None
        if self.checkpoint_every is not None and self.seq % self.checkpoint_every == 0:
            checkpoint = self.checkpoint()
        return record, checkpoint

    def checkpoint(self) -> Checkpoint:
        """Sign the current head now (also done every `checkpoint_every` records)."""
        if self._signing_key is None:
            raise errors.ValidationError("checkpoints need a signing_key", field="signing_key")
        if self.seq == 0:
            raise errors.ValidationError("cannot checkpoint an empty chain", field="seq")
        now = _utcnow()
        signature = _ed25519_sign(self._signing_key, _checkpoint_message(self.seq, self.head, now))
        checkpoint = Checkpoint(seq=self.seq, hash=self.head, time=now, signature=signature.hex())
        self.checkpoints.append(checkpoint)
        return checkpoint


# -- verification ---------------------------------------------------------------------------------


def _as_dict(record: AuditRecord | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(record, AuditRecord):
        return record.model_dump(mode="json")
    return record


def verify_chain(
    records: Iterable[AuditRecord | Mapping[str, Any]],
    checkpoints: Iterable[Checkpoint] = (),
    public_key: PublicKeyLike | None = None,
    *,
    start_seq: int = 1,
    start_prev_hash: str = GENESIS_HASH,
) -> VerifyResult:
    """Stream `records` in order and report the first seq at fault, or ok.

    Each record must have the next seq, link to its predecessor's hash and hash
    to its own ``hash``. Each checkpoint must match the chain at its seq, and
    one past the last record means the tail was cut off. With `public_key`
    every checkpoint signature is checked first; without it, only their hashes.
    Dicts (as read back from a stream) are hashed as given; `AuditRecord`s are
    dumped to JSON first, which costs more.
    """
    by_seq: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        if public_key is not None:
            try:
                verify_checkpoint(checkpoint, public_key)
            except errors.VerificationFailed:
                return VerifyResult(
                    ok=False,
                    records=0,
                    first_bad_seq=checkpoint.seq,
                    reason=f"checkpoint at seq {checkpoint.seq}: bad signature",
                )
        by_seq[checkpoint.seq] = checkpoint

    expected = start_seq
    prev = start_prev_hash
    count = 0
    iterator: Iterator[AuditRecord | Mapping[str, Any]] = iter(records)

    def fail(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(ok=False, records=count, first_bad_seq=seq, reason=reason)

    for item in iterator:
        record = _as_dict(item)
        seq = record.get("seq")
        if seq != expected:
            if type(seq) is int and seq > expected:
                following = next(iterator, None)
                if following is not None and _as_dict(following).get("seq") == expected:
                    return fail(expected, f"out of order: seq {expected} comes after seq {seq}")
                missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                return fail(expected, f"gap: seq {missing} missing before seq {seq}")
            return fail(expected, f"expected seq {expected}, found seq {seq!r}")
        if record.get("prev_hash") != prev:
            return fail(seq, f"prev_hash mismatch at seq {seq}: does not link to seq {seq - 1}")
        try:
            digest = record_hash(record)
        except errors.SerializationError as exc:
            return fail(seq, f"seq {seq} has no canonical JSON form: {exc}")
        if record.get("hash") != digest:
            return fail(seq, f"hash mismatch at seq {seq}: record altered")
        if by_seq:
            due = by_seq.get(seq)
            if due is not None and due.hash != digest:
                return fail(seq, f"checkpoint at seq {seq} does not match the chain")
        prev = digest
        expected += 1
        count += 1

    beyond = [cp.seq for cp in by_seq.values() if cp.seq >= expected]
    if beyond:
        return fail(
            expected,
            f"truncated: checkpoint at seq {min(beyond)} but the chain ends at seq {expected - 1}",
        )
    return VerifyResult(ok=True, records=count)


# -- query ----------------------------------------------------------------------------------------


def _matches(
    record: AuditRecord,
    actor: str | None,
    action: str | None,
    resource: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> bool:
    if actor is not None and record.actor.id != actor:
        return False
    if action is not None and not fnmatch.fnmatchcase(record.action, action):
        return False
    if resource is not None:
        r = record.resource
        if not fnmatch.fnmatchcase(f"{r.kind}/{r.namespace}/{r.name}", resource):
            return False
    if since is not None and record.time < since:
        return False
    return until is None or record.time < until


async def query(
    records: AsyncIterable[AuditRecord | Mapping[str, Any]],
    *,
    actor: str | None = None,
    action: str | None = None,
    resource: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> AsyncIterator[AuditRecord]:
    """The records matching every given filter, in input order.

    `actor` is an actor id; `action` and `resource` are fnmatch patterns, the
    latter over ``kind/namespace/name`` (``"VectorCollection/prod/*"``);
    `since` is inclusive, `until` exclusive (both timezone-aware).
    """
    for bound, name in ((since, "since"), (until, "until")):
        if bound is not None and bound.tzinfo is None:
            raise errors.ValidationError(f"{name} must be timezone-aware", field=name)
    async for item in records:
        record = item if isinstance(item, AuditRecord) else AuditRecord.model_validate(item)
        if _matches(record, actor, action, resource, since, until):
            yield record


# -- publishing -----------------------------------------------------------------------------------


class Publisher(Protocol):
    """What `AuditLog` needs from a queue; `llm_infra.mq.JetStreamQueue` satisfies it."""

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
    ) -> Any: ...


def event_msg_id(event_id: str) -> str:
    """``event:<id>``: the JetStream message id of an event's record."""
    return f"event:{event_id}"


def checkpoint_msg_id(seq: int) -> str:
    """``checkpoint:<seq>``: the message id of a checkpoint, apart from every event's."""
    return f"checkpoint:{seq}"


class AuditLog:
    """Chains events and publishes each record, in order, to ``{prefix}.records``.

    The record id is the message id, so JetStream deduplicates a retried publish;
    headers carry ``Audit-Seq`` and ``Audit-Hash``. Checkpoints go to
    ``{prefix}.checkpoints`` (message id ``checkpoint:{seq}``; records' are
    ``event:{id}``, so no event id can take a checkpoint's). A failed publish
    rewinds the chain, so the stream never has a gap the chain skipped over.
    """

    def __init__(
        self,
        publisher: Publisher,
        subject_prefix: str = "audit",
        checkpoint_every: int | None = 1000,
        signing_key: SigningKeyLike | None = None,
        *,
        redact_pointers: Sequence[str] = (),
        chain: HashChain | None = None,
    ) -> None:
        self.publisher = publisher
        self.records_subject = f"{subject_prefix}.records"
        self.checkpoints_subject = f"{subject_prefix}.checkpoints"
        self.chain = chain or HashChain(
            checkpoint_every=checkpoint_every if signing_key is not None else None,
            signing_key=signing_key,
            redact_pointers=redact_pointers,
        )
        self._lock = asyncio.Lock()

    async def append(
        self, event: AuditEvent | Mapping[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> AuditRecord:
        """Chain `event`, publish the record (and a checkpoint when one is due), return it.

        `headers` go with the record's message, besides ``Audit-Seq`` and ``Audit-Hash``.
        """
        async with self._lock:
            seq, head, kept = self.chain.seq, self.chain.head, len(self.chain.checkpoints)
            record, checkpoint = self.chain.append_with_checkpoint(event)
            try:
                await self.publisher.publish(
                    self.records_subject,
                    orjson.dumps(record.model_dump(mode="json")),
                    headers={
                        **(headers or {}),
                        "Audit-Seq": str(record.seq),
                        "Audit-Hash": record.hash,
                    },
                    msg_id=event_msg_id(record.id),
                )
            except BaseException:
                # Rewind: the next append reuses this seq, so the stream stays gap-free.
                self.chain.seq, self.chain.head = seq, head
                del self.chain.checkpoints[kept:]
                raise
            if checkpoint is not None:
                await self.publisher.publish(
                    self.checkpoints_subject,
                    orjson.dumps(checkpoint.model_dump(mode="json")),
                    headers={"Audit-Seq": str(checkpoint.seq), "Audit-Hash": checkpoint.hash},
                    msg_id=checkpoint_msg_id(checkpoint.seq),
                )
            return record

    def query(
        self,
        records: AsyncIterable[AuditRecord | Mapping[str, Any]],
        *,
        actor: str | None = None,
        action: str | None = None,
        resource: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> AsyncIterator[AuditRecord]:
        """`query` over records read back (from the stream): ``async for r in log.query(...)``."""
        return query(
            records, actor=actor, action=action, resource=resource, since=since, until=until
        )
