"""The MessageQueue contract on InMemoryQueue, and the pure ensure_stream/consumer decisions.

Time-dependent behaviour (nak delays, ack waits, the dedupe window) runs on a
`memory.ManualClock` the test moves: no test races the event loop's clock.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from llm_infra import errors, mq
from llm_infra.mq import memory


def test_all_is_complete() -> None:
    public = {n for n in dir(mq) if not n.startswith("_")} - {
        "annotations", "jetstream", "memory", "redis_streams",
    }  # fmt: skip
    lazy = {"RedisStreamQueue"}  # loads redis-py on first use
    assert public | lazy == set(mq.__all__)
    assert all(hasattr(mq, name) for name in mq.__all__)


async def test_publish_subscribe_ack() -> None:
    async with mq.InMemoryQueue() as queue:
        ack = await queue.publish("orders.new", b"one", headers={"k": "v"}, msg_id="m1")
        assert (ack.seq, ack.duplicate) == (1, False)
        sub = await queue.subscribe("orders.>", "worker")
        [got] = await sub.fetch(wait=0.1)
        assert got.message == mq.Message("orders.new", b"one", {"k": "v"}, "m1")
        assert got.delivery_count == 1
        await got.ack()
        assert await sub.fetch(wait=0) == []


async def test_nak_redelivers_with_count_and_delay() -> None:
    clock = memory.ManualClock()
    queue = mq.InMemoryQueue(clock=clock)
    await queue.publish("a", b"x")
    sub = await queue.subscribe("a", "d")
    [first] = await sub.fetch(wait=0)
    await first.nak(delay=5.0)
    clock.advance(4.9)
    assert await sub.fetch(wait=0) == []
    clock.advance(0.1)
    [again] = await sub.fetch(wait=0)
    assert again.delivery_count == 2
    await again.ack()


async def test_unacked_redelivered_after_ack_wait_to_the_same_durable() -> None:
    clock = memory.ManualClock()
    queue = mq.InMemoryQueue(clock=clock)
    await queue.publish("a", b"x")
    first = await queue.subscribe("a", "d", ack_wait=30.0)
    assert len(await first.fetch(wait=0)) == 1
    await first.close()
    second = await queue.subscribe("a", "d", ack_wait=30.0)
    assert await second.fetch(wait=0) == []  # still within the first delivery's ack wait
    clock.advance(30.0)
    [again] = await second.fetch(wait=0)
    assert again.delivery_count == 2


async def test_a_fetch_waits_for_a_message_published_meanwhile() -> None:
    queue = mq.InMemoryQueue()
    sub = await queue.subscribe("a", "d")
    waiting = asyncio.ensure_future(sub.fetch(wait=30))
    await asyncio.sleep(0)  # the fetch is waiting on the queue now
    await queue.publish("a", b"late")
    [got] = await waiting
    assert got.message.data == b"late"


async def test_term_dead_letters_and_never_redelivers() -> None:
    clock = memory.ManualClock()
    queue = mq.InMemoryQueue(clock=clock)
    await queue.publish("a", b"bad")
    sub = await queue.subscribe("a", "d", ack_wait=1.0)
    [got] = await sub.fetch(wait=0)
    await got.term()
    await got.ack()  # settled already: ignored
    assert [m.data for m in queue.dead_letters] == [b"bad"]
    clock.advance(10.0)  # long past its ack wait: still never redelivered
    assert await sub.fetch(wait=0) == []


async def test_dedupe_by_msg_id_within_window() -> None:
    clock = memory.ManualClock()
    queue = mq.InMemoryQueue(duplicate_window=120.0, clock=clock)
    first = await queue.publish("a", b"x", msg_id="same")
    clock.advance(119.0)
    second = await queue.publish("a", b"x", msg_id="same")
    assert second == mq.PublishAck("memory", first.seq, duplicate=True)
    clock.advance(1.0)
    assert not (await queue.publish("a", b"x", msg_id="same")).duplicate


async def test_publish_batch_bounds_in_flight_window() -> None:
    queue = mq.InMemoryQueue(publish_window=8)
    queue.publish_delay = 0.001
    acks = await queue.publish_batch(mq.Message("a", str(i).encode()) for i in range(50))
    assert [a.seq for a in acks] == list(range(1, 51))
    assert queue.in_flight_peak == 8


async def test_max_ack_pending_backpressures_a_slow_consumer() -> None:
    queue = mq.InMemoryQueue()
    await queue.publish_batch([mq.Message("a", b"x")] * 10)
    sub = await queue.subscribe("a", "d", batch=100, max_ack_pending=3)
    held = await sub.fetch(wait=0.1)
    assert len(held) == 3
    assert await sub.fetch(wait=0) == []  # window full: nothing more until a settle
    await held[0].ack()
    assert len(await sub.fetch(wait=0.1)) == 1
    assert sub.unsettled == 3


async def test_iterates_until_closed() -> None:
    queue = mq.InMemoryQueue()
    await queue.publish_batch(mq.Message("a", bytes([i])) for i in range(3))
    sub = await queue.subscribe("a", "d")
    seen = []
    async for received in sub:
        seen.append(received.message.data)
        await received.ack()
        if len(seen) == 3:
            await sub.close()
    assert seen == [b"\x00", b"\x01", b"\x02"]


async def test_invalid_input_is_a_validation_error() -> None:
    queue = mq.InMemoryQueue()
    with pytest.raises(errors.ValidationError):
        await queue.publish("a.*", b"x")
    with pytest.raises(errors.ValidationError):
        await queue.subscribe("a", "bad.name")


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [("a.*", "a.b", True), ("a.*", "a.b.c", False), ("a.>", "a.b.c", True), ("a.>", "a", False),
     ("a", "a", True), ("a.b", "a.c", False)],
)  # fmt: skip
def test_subject_matching(pattern: str, subject: str, matches: bool) -> None:
    assert memory.subject_matches(pattern, subject) is matches


STREAM = mq.StreamSpec("AUDIT", ("audit.>",), duplicate_window=60.0)


def test_decide_stream_creates_when_missing() -> None:
    assert mq.decide_stream(STREAM, None) == mq.StreamPlan(mq.Action.CREATE, STREAM)


def test_decide_stream_is_idempotent() -> None:
    assert mq.decide_stream(STREAM, STREAM).action is mq.Action.NONE


def test_decide_stream_updates_mutable_fields() -> None:
    wanted = mq.StreamSpec("AUDIT", ("audit.>", "x.>"), max_msgs=10, duplicate_window=60.0)
    plan = mq.decide_stream(wanted, STREAM)
    assert (plan.action, plan.changes, plan.mismatches) == (
        mq.Action.UPDATE, ("subjects", "max_msgs"), (),
    )  # fmt: skip


def test_decide_stream_adds_missing_labels_and_keeps_others() -> None:
    labelled = dataclasses.replace(STREAM, metadata={"llm-infra.io/owner": "ns/a"})
    assert mq.decide_stream(labelled, STREAM).changes == ("metadata",)
    both = dataclasses.replace(STREAM, metadata={"llm-infra.io/owner": "ns/a", "team": "x"})
    assert mq.decide_stream(labelled, both).action is mq.Action.NONE  # others are not ours
    assert mq.decide_stream(STREAM, both).action is mq.Action.NONE


def test_decide_stream_reports_immutable_mismatch_and_does_nothing() -> None:
    observed = mq.StreamSpec("AUDIT", ("audit.>",), deny_delete=True, duplicate_window=60.0)
    wanted = mq.StreamSpec("AUDIT", ("audit.>",), storage=mq.Storage.MEMORY, duplicate_window=60.0)
    plan = mq.decide_stream(wanted, observed)
    assert plan.action is mq.Action.NONE
    assert plan.mismatches == (
        mq.Mismatch("storage", "memory", "file"), mq.Mismatch("deny_delete", "False", "True"),
    )  # fmt: skip


def test_decide_consumer() -> None:
    spec = mq.ConsumerSpec("idx", filter_subject="audit.>", ack_wait=5.0)
    assert mq.decide_consumer(spec, None).action is mq.Action.CREATE
    same = mq.ObservedConsumer(spec)
    assert mq.decide_consumer(spec, same).action is mq.Action.NONE
    changed = mq.decide_consumer(mq.ConsumerSpec("idx", "audit.>", ack_wait=9.0), same)
    assert (changed.action, changed.changes) == (mq.Action.UPDATE, ("ack_wait",))
    push = mq.decide_consumer(spec, mq.ObservedConsumer(spec, explicit_ack=False, pull=False))
    assert [m.field for m in push.mismatches] == ["ack_policy", "deliver"]
