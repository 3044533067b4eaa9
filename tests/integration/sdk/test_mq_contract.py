"""The MessageQueue contract against real brokers: JetStream (nats_server) and Redis (redis_url).

Every test uses fresh subjects, streams and durables: the servers are shared by the session.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from llm_infra import errors, mq
from tests.servers.nats import NatsServer

ACK_WAIT = 1.0


@pytest.fixture(params=["jetstream", "redis"])
async def queue_and_subject(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[mq.MessageQueue, str]]:
    name = uuid.uuid4().hex[:10]
    queue: mq.MessageQueue
    if request.param == "jetstream":
        nats_server: NatsServer = request.getfixturevalue("nats_server")
        jsq = mq.JetStreamQueue(nats_server.url)
        await jsq.ensure_stream(
            mq.StreamSpec(f"S{name}", (f"t{name}.>",), storage=mq.Storage.MEMORY)
        )
        queue, subject = jsq, f"t{name}.events"
    else:
        queue, subject = mq.RedisStreamQueue(request.getfixturevalue("redis_url")), f"t{name}"
    async with queue:
        yield queue, subject


async def fetch_n(sub: mq.Subscription, n: int, wait: float = 5.0) -> list[mq.Received]:
    got: list[mq.Received] = []
    deadline = time.monotonic() + wait
    while len(got) < n and time.monotonic() < deadline:
        got.extend(await sub.fetch(wait=0.5))
    return got


async def test_publish_consume_durable(queue_and_subject: tuple[mq.MessageQueue, str]) -> None:
    queue, subject = queue_and_subject
    ack = await queue.publish(subject, b"hello", headers={"trace": "t1"}, msg_id="m-1")
    assert not ack.duplicate
    assert ack.seq >= 1
    async with await queue.subscribe(subject, "worker", ack_wait=ACK_WAIT) as sub:
        [got] = await fetch_n(sub, 1)
        assert got.message.data == b"hello"
        assert got.message.headers.get("trace") == "t1"
        assert got.message.msg_id == "m-1"
        assert got.delivery_count == 1
        await got.ack()
        assert await sub.fetch(wait=0.3) == []


async def test_nak_redelivers(queue_and_subject: tuple[mq.MessageQueue, str]) -> None:
    queue, subject = queue_and_subject
    await queue.publish(subject, b"retry-me")
    async with await queue.subscribe(subject, "worker", ack_wait=5.0) as sub:
        [first] = await fetch_n(sub, 1)
        await first.nak()
        [again] = await fetch_n(sub, 1)
        assert again.message.data == b"retry-me"
        assert again.delivery_count == 2
        await again.ack()


async def test_redelivery_after_consumer_restart(
    queue_and_subject: tuple[mq.MessageQueue, str],
) -> None:
    queue, subject = queue_and_subject
    await queue.publish_batch([mq.Message(subject, b"a"), mq.Message(subject, b"b")])
    first = await queue.subscribe(subject, "restart", ack_wait=ACK_WAIT)
    assert len(await fetch_n(first, 2)) == 2
    await first.close()  # nothing acked
    async with await queue.subscribe(subject, "restart", ack_wait=ACK_WAIT) as second:
        again = await fetch_n(second, 2, wait=10.0)
        assert sorted(r.message.data for r in again) == [b"a", b"b"]
        assert all(r.delivery_count == 2 for r in again)
        for received in again:
            await received.ack()


async def test_a_fetch_whose_wait_runs_out_is_empty_however_short(
    queue_and_subject: tuple[mq.MessageQueue, str],
) -> None:
    # nats-py raises asyncio's TimeoutError (not its own) when the wait is spent before the
    # server's "no messages" reply: on a loaded machine that happened with 0.5 s.
    queue, subject = queue_and_subject
    async with await queue.subscribe(subject, "empty") as sub:
        for wait in (1e-6, 1e-3):
            assert await sub.fetch(wait=wait) == []


async def test_dedupe_by_msg_id(queue_and_subject: tuple[mq.MessageQueue, str]) -> None:
    queue, subject = queue_and_subject
    first = await queue.publish(subject, b"once", msg_id="dup")
    second = await queue.publish(subject, b"once", msg_id="dup")
    assert second.duplicate
    assert second.seq == first.seq
    async with await queue.subscribe(subject, "dedupe") as sub:
        assert len(await fetch_n(sub, 2, wait=1.0)) == 1


async def test_batch_publish_counts(queue_and_subject: tuple[mq.MessageQueue, str]) -> None:
    queue, subject = queue_and_subject
    messages = [mq.Message(subject, str(i).encode(), msg_id=f"b{i}") for i in range(500)]
    messages.append(mq.Message(subject, b"0", msg_id="b0"))  # a duplicate
    acks = await queue.publish_batch(messages)
    assert len(acks) == 501
    assert sum(a.duplicate for a in acks) == 1
    assert len({a.seq for a in acks}) == 500
    async with await queue.subscribe(subject, "count", batch=200) as sub:
        got = await fetch_n(sub, 501, wait=3.0)
        assert len(got) == 500
        for received in got:
            await received.ack()


async def test_term_is_not_redelivered(queue_and_subject: tuple[mq.MessageQueue, str]) -> None:
    queue, subject = queue_and_subject
    await queue.publish(subject, b"poison")
    async with await queue.subscribe(subject, "term", ack_wait=ACK_WAIT) as sub:
        [got] = await fetch_n(sub, 1)
        await got.term()
        assert await fetch_n(sub, 1, wait=ACK_WAIT + 0.5) == []


# -- JetStream only ---------------------------------------------------------------------------


async def test_no_acked_message_lost_across_nats_restart(nats_server: NatsServer) -> None:
    name = uuid.uuid4().hex[:10]
    subject = f"r{name}.x"
    async with mq.JetStreamQueue(nats_server.url, timeout=1.0) as queue:
        await queue.ensure_stream(mq.StreamSpec(f"R{name}", (f"r{name}.>",)))
        acked: set[str] = set()
        unacked: list[str] = []
        failures: list[errors.MessageQueueError] = []
        restart = None
        for i in range(300):
            if i == 100:
                restart = asyncio.create_task(asyncio.to_thread(nats_server.restart))
            msg_id = f"m{i}"
            try:
                await queue.publish(subject, msg_id.encode(), msg_id=msg_id)
                acked.add(msg_id)
            except errors.MessageQueueError as exc:
                failures.append(exc)
                unacked.append(msg_id)
        assert restart is not None
        await restart
        assert all(f.retryable for f in failures)
        deadline = time.monotonic() + 20
        while unacked and time.monotonic() < deadline:  # retry: msg_id keeps it exactly-once
            msg_id = unacked[0]
            try:
                await queue.publish(subject, msg_id.encode(), msg_id=msg_id)
                acked.add(unacked.pop(0))
            except errors.MessageQueueError:
                await asyncio.sleep(0.1)
        assert len(acked) == 300
        async with await queue.subscribe(subject, "verify", batch=500) as sub:
            stored = [r.message.msg_id for r in await fetch_n(sub, 300, wait=10.0)]
        assert len(stored) == len(set(stored))
        assert acked <= set(stored)


async def test_ensure_stream_idempotent_and_storage_mismatch(nats_server: NatsServer) -> None:
    name = f"E{uuid.uuid4().hex[:10]}"
    spec = mq.StreamSpec(name, (f"{name}.>",), max_msgs=100)
    async with mq.JetStreamQueue(nats_server.url) as queue:
        js = await queue.jetstream()
        assert (await mq.ensure_stream(js, spec)).action is mq.Action.CREATE
        assert (await mq.ensure_stream(js, spec)).action is mq.Action.NONE
        bigger = mq.StreamSpec(name, (f"{name}.>",), max_msgs=200)
        assert (await mq.ensure_stream(js, bigger)).changes == ("max_msgs",)
        await queue.publish(f"{name}.a", b"kept")
        moved = mq.StreamSpec(name, (f"{name}.>",), storage=mq.Storage.MEMORY, max_msgs=200)
        with pytest.raises(errors.MessageQueueRejected, match="storage"):
            await mq.ensure_stream(js, moved)
        info = await js.stream_info(name)
        assert info.state.messages == 1
        assert info.config.max_msgs == 200
        consumer = mq.ConsumerSpec("c", filter_subject=f"{name}.>", ack_wait=3.0)
        assert (await mq.ensure_consumer(js, name, consumer)).action is mq.Action.CREATE
        assert (await mq.ensure_consumer(js, name, consumer)).action is mq.Action.NONE
