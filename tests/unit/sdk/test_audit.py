"""llm_infra.audit: the hash chain names the first broken seq; checkpoints; redaction; hashing."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pydantic
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from llm_infra import audit, errors, jsondoc

N = 10_000


def event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "actor": {"id": f"user-{i % 7}", "kind": "user", "ip": "10.0.0.1"},
        "action": "vector.search" if i % 2 else "vector.upsert",
        "resource": {"kind": "VectorCollection", "namespace": "prod", "name": f"c{i % 3}"},
        "outcome": "success",
        "metadata": {"i": i, "k": 10},
        **extra,
    }


@pytest.fixture(scope="module")
def key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def chain(key: ed25519.Ed25519PrivateKey) -> audit.HashChain:
    chain = audit.HashChain(checkpoint_every=1000, signing_key=key)
    for i in range(N):
        chain.append(event(i))
    return chain


@pytest.fixture(scope="module")
def records_() -> list[dict[str, Any]]:
    chain = audit.HashChain()
    return [chain.append(event(i)).model_dump(mode="json") for i in range(N)]


@pytest.fixture
def records(records_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r) for r in records_]


def at(records: list[dict[str, Any]], seq: int) -> int:
    """The index of `seq` in the untouched chain (seqs start at 1)."""
    assert records[seq - 1]["seq"] == seq
    return seq - 1


def test_chain_fields() -> None:
    chain = audit.HashChain()
    first, second = chain.append(event(1)), chain.append(audit.AuditEvent.model_validate(event(2)))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == audit.GENESIS_HASH == "0" * 64
    assert second.prev_hash == first.hash
    body = first.model_dump(mode="json")
    del body["hash"]
    assert first.hash == jsondoc.canonical_sha256(body)
    assert len(first.id) == 26
    assert first.time.tzinfo is not None


def test_intact_chain_verifies(records: list[dict[str, Any]]) -> None:
    assert audit.verify_chain(records) == audit.VerifyResult(ok=True, records=N)


def test_models_verify_too() -> None:
    chain = audit.HashChain()
    assert audit.verify_chain([chain.append(event(i)) for i in range(50)]).ok


def test_altered_field_names_its_seq(records: list[dict[str, Any]]) -> None:
    bad = records[at(records, 5000)]
    bad["metadata"] = {**bad["metadata"], "k": 11}
    result = audit.verify_chain(records)
    assert (result.ok, result.first_bad_seq, result.records) == (False, 5000, 4999)
    assert "hash mismatch at seq 5000" in (result.reason or "")


def test_one_flipped_byte_in_a_string(records: list[dict[str, Any]]) -> None:
    bad = records[at(records, 5000)]
    bad["actor"] = {**bad["actor"], "id": "user-X"}
    assert audit.verify_chain(records).first_bad_seq == 5000


def test_rehashed_record_breaks_the_next_link(records: list[dict[str, Any]]) -> None:
    bad = records[at(records, 5000)]
    bad["outcome"] = "denied"
    bad["hash"] = audit.record_hash(bad)
    result = audit.verify_chain(records)
    assert result.first_bad_seq == 5001
    assert "prev_hash mismatch at seq 5001" in (result.reason or "")


def test_removed_record_is_a_named_gap(records: list[dict[str, Any]]) -> None:
    del records[at(records, 5000)]
    result = audit.verify_chain(records)
    assert (result.ok, result.first_bad_seq) == (False, 5000)
    assert result.reason == "gap: seq 5000 missing before seq 5001"


def test_removed_run_is_a_named_gap(records: list[dict[str, Any]]) -> None:
    del records[at(records, 5000) : at(records, 5003)]
    assert audit.verify_chain(records).reason == "gap: seq 5000..5002 missing before seq 5003"


def test_reorder_is_named(records: list[dict[str, Any]]) -> None:
    i = at(records, 5000)
    records[i], records[i + 1] = records[i + 1], records[i]
    result = audit.verify_chain(records)
    assert (result.ok, result.first_bad_seq) == (False, 5000)
    assert result.reason == "out of order: seq 5000 comes after seq 5001"


def test_duplicate_is_named(records: list[dict[str, Any]]) -> None:
    records.insert(at(records, 5001), records[at(records, 5000)])
    result = audit.verify_chain(records)
    assert result.first_bad_seq == 5001
    assert "found seq 5000" in (result.reason or "")


def test_verification_streams() -> None:
    chain = audit.HashChain()

    def produce() -> Iterable[dict[str, Any]]:
        for i in range(100):
            yield chain.append(event(i)).model_dump(mode="json")

    assert audit.verify_chain(produce()).records == 100


def test_start_from_a_checkpoint(records: list[dict[str, Any]]) -> None:
    tail = records[at(records, 9001) :]
    result = audit.verify_chain(
        tail, start_seq=9001, start_prev_hash=records[at(records, 9000)]["hash"]
    )
    assert result == audit.VerifyResult(ok=True, records=1000)


# -- checkpoints ----------------------------------------------------------------------------------


def test_checkpoints_every_n(chain: audit.HashChain) -> None:
    assert [cp.seq for cp in chain.checkpoints] == list(range(1000, N + 1, 1000))
    assert chain.checkpoints[-1].hash == chain.head


def test_checkpoint_verifies_with_public_key_only(
    chain: audit.HashChain, key: ed25519.Ed25519PrivateKey
) -> None:
    public = key.public_key()
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for cp in chain.checkpoints:
        audit.verify_checkpoint(cp, public)
        audit.verify_checkpoint(audit.Checkpoint.model_validate_json(cp.model_dump_json()), raw)


def test_checkpoint_fails_with_wrong_key(chain: audit.HashChain) -> None:
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(errors.VerificationFailed):
        audit.verify_checkpoint(chain.checkpoints[0], other)


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 1001},
        {"hash": "f" * 64},
        {"time": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
        {"signature": "00" * 64},
    ],
)
def test_altered_checkpoint_fails(
    chain: audit.HashChain, key: ed25519.Ed25519PrivateKey, change: dict[str, Any]
) -> None:
    altered = chain.checkpoints[0].model_copy(update=change)
    with pytest.raises(errors.VerificationFailed):
        audit.verify_checkpoint(altered, key.public_key())


def test_verify_chain_with_checkpoints(
    chain: audit.HashChain, key: ed25519.Ed25519PrivateKey
) -> None:
    # Same events, new chain: other ids and times, so other hashes than `chain`'s checkpoints.
    rechain = audit.HashChain(checkpoint_every=1000, signing_key=key)
    rows = [rechain.append(event(i)).model_dump(mode="json") for i in range(3000)]
    public = key.public_key()
    assert audit.verify_chain(rows, rechain.checkpoints, public).ok
    # A checkpoint of another chain does not match this one at seq 1000.
    result = audit.verify_chain(rows, chain.checkpoints[:1], public)
    assert (result.ok, result.first_bad_seq) == (False, 1000)
    # Signed by someone else: rejected before any record is read.
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    assert audit.verify_chain(rows, rechain.checkpoints, other).reason == (
        "checkpoint at seq 1000: bad signature"
    )
    # A cut-off tail is caught by the checkpoint past the end.
    result = audit.verify_chain(rows[:2500], rechain.checkpoints, public)
    assert (result.ok, result.first_bad_seq) == (False, 2501)
    assert "truncated" in (result.reason or "")


def test_checkpoints_need_a_key() -> None:
    with pytest.raises(errors.ValidationError):
        audit.HashChain(checkpoint_every=10)


# -- redaction ------------------------------------------------------------------------------------


def test_redact_masks_and_records() -> None:
    doc = event(1, metadata={"password": "hunter2", "user": {"email": "a@b.c"}})
    out = audit.redact(doc, ["/metadata/password", "/metadata/user/email", "/metadata/nope"])
    assert out["metadata"] == {"password": "***", "user": {"email": "***"}}
    assert out["redacted"] == ["/metadata/password", "/metadata/user/email"]
    assert doc["metadata"]["password"] == "hunter2"  # input untouched


def test_redact_removes() -> None:
    out = audit.redact(event(1), ["/actor/ip"], mode="remove")
    assert "ip" not in out["actor"]
    assert out["redacted"] == ["/actor/ip"]


@pytest.mark.parametrize("pointer", ["/seq", "/hash", "/prev_hash", "/id", "metadata/x"])
def test_redact_refuses(pointer: str) -> None:
    with pytest.raises(errors.ValidationError):
        audit.redact(event(1), [pointer])


def test_redaction_happens_before_hashing() -> None:
    chain = audit.HashChain(redact_pointers=["/metadata/token", "/actor/ip"])
    record = chain.append(event(1, metadata={"token": "s3cret"}))
    assert record.metadata == {"token": "***"}
    assert record.actor.ip == "***"
    assert record.redacted == ["/actor/ip", "/metadata/token"]
    dumped = record.model_dump(mode="json")
    assert "s3cret" not in jsondoc.dumps(dumped).decode()
    assert audit.verify_chain([dumped]).ok  # the hash covers the redacted form and the list


# -- canonical hashing ----------------------------------------------------------------------------


def test_hash_is_stable_for_key_order() -> None:
    record = audit.HashChain().append(event(1)).model_dump(mode="json")
    shuffled = {k: record[k] for k in reversed(list(record))}
    shuffled["metadata"] = {"k": 10, "i": 1}
    assert audit.record_hash(shuffled) == audit.record_hash(record) == record["hash"]


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, "x"]},
        {"f": 1.0, "g": 1e21, "h": 0.1, "i": -0.0},
        {"\ue000": 1, "\U0001f600": 2, "é": 3, "z": 4},
        {"s": "".join(chr(c) for c in range(0x80)) + "\u2028\U0001f600"},
        {"n": 2**53 - 1, "m": -(2**53 - 1)},
        {"nested": {"z": {"y": [1, {"b": 2, "a": 1.5}]}}},
    ],
)
def test_fast_canonical_equals_rfc8785(value: dict[str, Any]) -> None:
    assert audit.canonical_record_bytes(value) == jsondoc.canonical(value)


def test_unrepresentable_integer_is_a_serialization_error() -> None:
    with pytest.raises(errors.SerializationError):
        audit.canonical_record_bytes({"n": 2**60})


def test_event_validation_is_mapped() -> None:
    with pytest.raises(errors.ValidationError):
        audit.HashChain().append({"action": "x"})
    with pytest.raises(errors.ValidationError):
        audit.HashChain().append({**event(1), "seq": 3})


# -- AuditLog against a fake publisher ------------------------------------------------------------


class Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str] | None, str | None]] = []
        self.fail_at = fail_at

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
    ) -> None:
        if self.fail_at is not None and len(self.sent) == self.fail_at:
            self.fail_at = None
            raise errors.MessageQueueTimeout("ack timed out")
        self.sent.append((subject, data, headers, msg_id))


async def test_audit_log_publishes_in_order(key: ed25519.Ed25519PrivateKey) -> None:
    pub = Recorder()
    log = audit.AuditLog(pub, "audit.t", checkpoint_every=5, signing_key=key)
    records = [await log.append(event(i)) for i in range(10)]
    subjects = [s for s, *_ in pub.sent]
    assert subjects.count("audit.t.records") == 10
    assert subjects.count("audit.t.checkpoints") == 2
    first = pub.sent[0]
    assert first[2] == {"Audit-Seq": "1", "Audit-Hash": records[0].hash}
    assert first[3] == f"event:{records[0].id}"
    # Checkpoints have ids of their own space: no event id (``checkpoint-5`` say) takes one.
    assert [m for s, *_, m in pub.sent if "checkpoints" in s] == ["checkpoint:5", "checkpoint:10"]
    rows = [jsondoc.loads(d) for s, d, *_ in pub.sent if s.endswith(".records")]
    cps = [audit.Checkpoint.model_validate_json(d) for s, d, *_ in pub.sent if "checkpoints" in s]
    assert audit.verify_chain(rows, cps, key.public_key()).ok


async def test_failed_publish_rewinds_the_chain() -> None:
    pub = Recorder(fail_at=1)
    log = audit.AuditLog(pub)
    await log.append(event(0))
    with pytest.raises(errors.MessageQueueTimeout):
        await log.append(event(1))
    await log.append(event(2))
    rows = [jsondoc.loads(d) for _, d, *_ in pub.sent]
    assert [r["seq"] for r in rows] == [1, 2]
    assert audit.verify_chain(rows).ok


async def test_query_filters() -> None:
    chain = audit.HashChain()
    base = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    rows = [
        chain.append(event(i, time=base + dt.timedelta(minutes=i))).model_dump(mode="json")
        for i in range(30)
    ]

    async def stream() -> AsyncIterator[dict[str, Any]]:
        for row in rows:
            yield row

    async def seqs(**filters: Any) -> list[int]:
        return [r.seq async for r in audit.query(stream(), **filters)]

    assert await seqs() == list(range(1, 31))
    assert await seqs(actor="user-3") == [4, 11, 18, 25]
    assert await seqs(action="vector.up*") == list(range(1, 31, 2))
    assert await seqs(resource="VectorCollection/prod/c1") == list(range(2, 31, 3))
    assert await seqs(since=base + dt.timedelta(minutes=5), until=base + dt.timedelta(minutes=8))
    assert await seqs(
        since=base + dt.timedelta(minutes=5), until=base + dt.timedelta(minutes=8)
    ) == [6, 7, 8]
    log = audit.AuditLog(Recorder())
    assert [r.seq async for r in log.query(stream(), actor="user-0", action="vector.search")] == [
        8,
        22,
    ]
    with pytest.raises(errors.ValidationError):
        await seqs(since=dt.datetime(2026, 1, 1))


def test_all_is_complete() -> None:
    # The package re-exports its submodules' names: a public name defined in any of them
    # and missing from __all__ fails here (names defined in the package itself: none).
    modules = [
        audit,
        *(m for n, m in vars(audit).items() if n.startswith("_") and inspect.ismodule(m)),
    ]
    assert {m.__name__ for m in modules} >= {"llm_infra.audit._chain", "llm_infra.audit._streams"}
    public = {
        name
        for module in modules
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
        and (isinstance(value, type) or callable(value))
    }
    assert public <= set(audit.__all__)
    assert all(hasattr(audit, name) for name in audit.__all__)


# -- edge limits ----------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


def _nested_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_metadata_nesting_is_bounded_and_named() -> None:
    audit.AuditEvent.model_validate(event(0, metadata=_nested(audit.MAX_JSON_DEPTH)))
    with pytest.raises(pydantic.ValidationError) as deep:
        audit.AuditEvent.model_validate(event(0, metadata=_nested(500)))
    assert deep.value.errors()[0]["loc"] == ("metadata",)
    with pytest.raises(pydantic.ValidationError):  # arrays count as levels too
        audit.AuditEvent.model_validate(event(0, metadata={"a": _nested_list(40)}))


@pytest.mark.parametrize("bad", ["", "e" * 129, "a b", "line\nbreak", "-leading", "ü"])
def test_event_ids_are_short_and_plain(bad: str) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        audit.AuditEvent.model_validate(event(0, id=bad))
    assert refused.value.errors()[0]["loc"] == ("id",)


@pytest.mark.parametrize(
    "good", ["01HZY3", "checkpoint-2", "urn:uuid:1b4e28ba-2fa1", "a/b+c=d@e.f"]
)
def test_usual_event_ids_pass(good: str) -> None:
    assert audit.AuditEvent.model_validate(event(0, id=good)).id == good


def test_event_and_checkpoint_message_ids_never_meet() -> None:
    assert audit.event_msg_id("checkpoint-2") == "event:checkpoint-2"
    assert audit.checkpoint_msg_id(2) == "checkpoint:2"
    assert audit.event_msg_id("2") != audit.checkpoint_msg_id(2)


def test_asserted_claims_stay_out_of_records_without_them() -> None:
    plain = audit.AuditEvent.model_validate(event(0))
    assert "asserted" not in plain.model_dump(mode="json")  # record hashes stay as they were
    claimed = plain.model_copy(update={"asserted": audit.Asserted(actor=plain.actor)})
    assert claimed.model_dump(mode="json")["asserted"]["actor"]["id"] == "user-0"
