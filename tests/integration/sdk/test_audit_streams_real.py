"""llm_infra.audit streams on a real JetStream: the example AuditSink's stream, lag, deletion."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
import yaml
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from llm_infra import audit, errors, mq
from llm_infra.api.v1alpha1.auditsink import AuditSink, AuditSinkSpec
from tests.support import eventually

EXAMPLE = Path(__file__).parents[3] / "examples" / "auditsink-platform.yaml"
RECORDS = 7
# The example's 50 GiB can be more file storage than the test machine's server may reserve.
SMALL = 64 * 1024 * 1024


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def js(nc: NatsClient) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:8]}"  # the session's server is shared: fresh names per test


def example(**stream: object) -> AuditSinkSpec:
    spec = AuditSink.model_validate(yaml.safe_load(EXAMPLE.read_text())).spec
    # The example's stream name is fixed; tests on a shared server use the per-namespace default.
    return spec.model_copy(
        update={"stream": spec.stream.model_copy(update={"name": None, **stream})}
    )


async def publish_records(nc: NatsClient, namespace: str) -> None:
    queue = mq.JetStreamQueue(nc)  # the test's connection: the queue does not own it
    log = audit.AuditLog(queue, audit.audit_subject(namespace, "platform-audit"), None)
    for i in range(RECORDS):
        await log.append(
            {
                "actor": {"id": "user-1", "kind": "user"},
                "action": "chat.completions",
                "resource": {"kind": "Route", "namespace": namespace, "name": f"r{i}"},
                "outcome": "success",
            }
        )


async def test_replicas_above_one_on_a_single_server_names_the_field(
    js: JetStreamContext, namespace: str
) -> None:
    spec = example(max_bytes=SMALL)  # replicas: 3, as in the manifest
    with pytest.raises(errors.MessageQueueRejected) as caught:
        await audit.ensure_audit_stream(js, namespace, "platform-audit", spec)
    assert str(caught.value).count("spec.stream.replicas") == 2  # the field and the fix
    assert caught.value.error_code == 10074
    with pytest.raises(errors.MessageQueueNotFound):
        await audit.stream_state(js, audit.stream_name(namespace, "platform-audit", spec))


async def test_more_bytes_than_the_server_has_names_the_field(
    js: JetStreamContext, namespace: str
) -> None:
    spec = example(replicas=1, max_bytes=2**60)
    with pytest.raises(errors.MessageQueueRejected) as caught:
        await audit.ensure_audit_stream(js, namespace, "platform-audit", spec)
    assert "spec.stream.maxBytes" in str(caught.value)
    assert caught.value.error_code == 10047


async def test_example_stream_consumers_lag_and_deletion(
    nc: NatsClient, js: JetStreamContext, namespace: str
) -> None:
    spec = example(replicas=1, max_bytes=SMALL)
    name = audit.stream_name(namespace, "platform-audit", spec)
    plan = await audit.ensure_audit_stream(js, namespace, "platform-audit", spec)
    assert plan.stream.action is mq.Action.CREATE
    assert {sink: p.action for sink, p in plan.consumers.items()} == {
        "local-file": mq.Action.CREATE,
        "siem": mq.Action.CREATE,
    }
    again = await audit.ensure_audit_stream(js, namespace, "platform-audit", spec)
    assert again.stream.action is mq.Action.NONE
    assert all(p.action is mq.Action.NONE for p in again.consumers.values())

    await publish_records(nc, namespace)
    state = await audit.stream_state(js, name)
    assert (state.messages, state.first_seq, state.last_seq) == (RECORDS, 1, RECORDS)
    assert state.consumer_count == 2
    durables = [audit.sink_durable(s.name) for s in spec.sinks]

    async def all_pending() -> bool:
        lags = [await audit.consumer_lag(js, name, d) for d in durables]
        return all(lag.num_pending == RECORDS for lag in lags)

    await eventually("every sink with every record pending", all_pending, timeout=5)

    # One sink catches up: the other still holds every record undelivered.
    sub = await js.pull_subscribe_bind("sink-local-file", name)
    delivered = 0
    deadline = time.monotonic() + 5
    while delivered < RECORDS and time.monotonic() < deadline:
        for msg in await sub.fetch(RECORDS - delivered, timeout=2):
            await msg.ack_sync()
            delivered += 1
    await sub.unsubscribe()
    caught_up = await audit.consumer_lag(js, name, "sink-local-file")
    assert (caught_up.undelivered, caught_up.delivered_stream_seq) == (0, RECORDS)
    assert await audit.undelivered(js, name, durables) == RECORDS
    # A sink whose consumer is missing has delivered nothing.
    assert await audit.undelivered(js, name, ["sink-local-file", "sink-gone"]) == RECORDS

    with pytest.raises(errors.MessageQueueRejected) as refused:
        await audit.delete_stream(js, name, force=False)
    assert f"{RECORDS} audit records" in str(refused.value)
    assert refused.value.status_code == 409
    assert (await audit.stream_state(js, name)).messages == RECORDS

    assert await audit.delete_stream(js, name, force=True) is True
    assert await audit.delete_stream(js, name, force=True) is False
    assert await audit.delete_stream(js, name, force=False) is False
    assert await audit.undelivered(js, name, durables) == 0


async def test_delete_allowed_once_every_sink_is_delivered(
    nc: NatsClient, js: JetStreamContext, namespace: str
) -> None:
    spec = example(replicas=1, storage="memory", max_bytes=-1)
    name = audit.stream_name(namespace, "platform-audit", spec)
    await audit.ensure_audit_stream(js, namespace, "platform-audit", spec)
    await publish_records(nc, namespace)
    for sink in spec.sinks:
        sub = await js.pull_subscribe_bind(audit.sink_durable(sink.name), name)
        acked = 0
        deadline = time.monotonic() + 5
        while acked < RECORDS and time.monotonic() < deadline:
            for msg in await sub.fetch(RECORDS - acked, timeout=2):
                await msg.ack_sync()
                acked += 1
        await sub.unsubscribe()
    assert await audit.delete_stream(js, name, force=False) is True
    with pytest.raises(errors.MessageQueueNotFound):
        await audit.stream_state(js, name)
