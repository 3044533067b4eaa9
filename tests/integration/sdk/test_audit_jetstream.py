"""llm_infra.audit on a real JetStream: publish through llm_infra.mq, read back, verify, dedupe."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats

from llm_infra import audit, crypto, jsondoc
from llm_infra.mq import JetStreamQueue, StreamSpec


def event(i: int) -> dict[str, Any]:
    return {
        "actor": {"id": f"user-{i % 3}", "kind": "user"},
        "action": "secret.read" if i % 2 else "secret.write",
        "resource": {"kind": "Secret", "namespace": "prod", "name": f"s{i}"},
        "outcome": "success",
        "metadata": {"i": i, "password": "hunter2"},
    }


async def read_back(nats_url: str, stream: str, subject: str, count: int) -> list[dict[str, Any]]:
    """The first `count` messages on `subject`, in stream order, through a pull consumer."""
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe(subject, durable=None, stream=stream)
        out: list[dict[str, Any]] = []
        while len(out) < count:
            for msg in await sub.fetch(count - len(out), timeout=5):
                out.append(jsondoc.loads(msg.data))
                await msg.ack()
        return out
    finally:
        await nc.close()


async def stream_messages(nats_url: str, stream: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return info.state.messages
    finally:
        await nc.close()


async def test_audit_roundtrip(nats_url: str) -> None:
    name = f"AUDIT_{uuid.uuid4().hex[:8].upper()}"
    prefix = f"audit.{name.lower()}"
    key = crypto.SigningKey.generate()
    async with JetStreamQueue(nats_url) as queue:
        await queue.ensure_stream(StreamSpec(name, (f"{prefix}.>",)))
        log = audit.AuditLog(
            queue, prefix, checkpoint_every=10, signing_key=key,
            redact_pointers=["/metadata/password"],
        )  # fmt: skip
        written = [await log.append(event(i)) for i in range(25)]

        # A retried publish of record 7 (same msg_id) is dropped by JetStream.
        again = written[6]
        ack = await queue.publish(
            log.records_subject,
            jsondoc.dumps(again.model_dump(mode="json")),
            headers={"Audit-Seq": str(again.seq), "Audit-Hash": again.hash},
            msg_id=audit.event_msg_id(again.id),
        )
        assert ack.duplicate

    records = await read_back(nats_url, name, log.records_subject, 25)
    assert [r["seq"] for r in records] == list(range(1, 26))
    assert await stream_messages(nats_url, name) == 25 + 2  # the duplicate was not stored
    assert all(r["metadata"]["password"] == "***" for r in records)
    checkpoints = [
        audit.Checkpoint.model_validate(c)
        for c in await read_back(nats_url, name, log.checkpoints_subject, 2)
    ]
    assert [c.seq for c in checkpoints] == [10, 20]
    result = audit.verify_chain(records, checkpoints, key.verify_key)
    assert result == audit.VerifyResult(ok=True, records=25)

    # What was read back is what was written, and it can be queried.
    assert records[-1]["hash"] == written[-1].hash

    async def stream() -> AsyncIterator[dict[str, Any]]:
        for r in records:
            yield r

    reads = [r.seq async for r in log.query(stream(), action="secret.read", actor="user-1")]
    assert reads == [2, 8, 14, 20]

    # Tampering with what the stream returned is caught at the right seq.
    records[12]["outcome"] = "denied"
    assert audit.verify_chain(records, checkpoints, key.verify_key).first_bad_seq == 13
