"""InMemoryQueue: the MessageQueue contract in one process, FOR UNIT TESTS ONLY.

Nothing is persisted, nothing is shared between processes, and time is the
event loop's unless a `clock` is given: a test that hands in `ManualClock` moves
time itself (nak delays, ack waits, the dedupe window) instead of racing the
loop with short sleeps. It exists so code using `MessageQueue` can be unit-tested
without a broker; the same contract tests run against JetStream and Redis in
tests/integration/sdk/test_mq_contract.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from llm_infra.mq._base import DEFAULT_PUBLISH_WINDOW, MessageQueue, Subscription
from llm_infra.mq._types import Message, PublishAck, Settler


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` one or more trailing tokens."""
    want, have = pattern.split("."), subject.split(".")
    for index, part in enumerate(want):
        if part == ">":
            return len(have) > index
        if index >= len(have) or part not in {"*", have[index]}:
            return False
    return len(want) == len(have)


class ManualClock:
    """A clock that moves only when told to (`advance`): time as a test decides it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Pending:
    seq: int
    deliveries: int
    due: float  # loop time at which it may be delivered again


@dataclass
class _Group:
    pattern: str
    next_seq: int = 1
    pending: dict[int, _Pending] = field(default_factory=dict)


class InMemoryQueue(MessageQueue):
    """FOR UNIT TESTS ONLY: the MessageQueue contract held in this process's memory.

    One log for every subject; a durable name is a consumer group over the
    subjects matching its pattern. `duplicate_window` (seconds) bounds dedupe
    by msg_id like JetStream's.
    """

    backend = "memory"

    def __init__(
        self,
        *,
        publish_window: int = DEFAULT_PUBLISH_WINDOW,
        duplicate_window: float = 120.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(publish_window=publish_window)
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        """Seconds, for delays, ack waits and the dedupe window; the loop's time by default."""
        self.duplicate_window = duplicate_window
        self.log: list[Message] = []
        self.dead_letters: list[Message] = []
        self._seen: dict[str, tuple[int, float]] = {}
        self._groups: dict[str, _Group] = {}
        self._changed = asyncio.Condition()
        self.in_flight_peak = 0  # most publishes seen unacknowledged at once (a test hook)
        self._in_flight = 0
        self.publish_delay = 0.0  # seconds each publish takes (a test hook)

    async def _publish(self, message: Message) -> PublishAck:
        self._in_flight += 1
        self.in_flight_peak = max(self.in_flight_peak, self._in_flight)
        try:
            if self.publish_delay:
                await asyncio.sleep(self.publish_delay)
            now = self.clock()
            if message.msg_id is not None:
                seen = self._seen.get(message.msg_id)
                if seen is not None and seen[1] > now:
                    return PublishAck("memory", seen[0], duplicate=True)
            self.log.append(message)
            seq = len(self.log)
            if message.msg_id is not None:
                self._seen[message.msg_id] = (seq, now + self.duplicate_window)
            async with self._changed:
                self._changed.notify_all()
            return PublishAck("memory", seq)
        finally:
            self._in_flight -= 1

    async def _subscribe(
        self,
        subject_or_stream: str,
        durable: str,
        *,
        batch: int,
        max_ack_pending: int,
        ack_wait: float,
    ) -> Subscription:
        group = self._groups.setdefault(durable, _Group(subject_or_stream))
        return _MemorySubscription(
            self,
            group,
            subject_or_stream,
            durable,
            batch=batch,
            max_ack_pending=max_ack_pending,
            ack_wait=ack_wait,
        )

    async def _close(self) -> None:
        pass


class _MemorySubscription(Subscription):
    backend = "memory"

    def __init__(
        self,
        queue: InMemoryQueue,
        group: _Group,
        destination: str,
        durable: str,
        **window: int | float,
    ) -> None:
        super().__init__(destination, durable, **window)  # type: ignore[arg-type]
        self._queue = queue
        self._group = group

    async def _fetch(self, count: int, wait: float) -> list[tuple[Message, int, Settler]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait  # how long this call may wait: real time
        condition = self._queue._changed
        clock = self._queue.clock
        async with condition:
            while True:
                found = self._take(count, clock())
                if found:
                    return found
                left = deadline - loop.time()
                if left <= 0:
                    return []
                # Wake when a pending message falls due (on the queue's clock), or a change.
                due = min((p.due for p in self._group.pending.values()), default=None)
                if due is not None:
                    left = min(left, max(due - clock(), 0.001))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(condition.wait(), left)

    def _take(self, count: int, now: float) -> list[tuple[Message, int, Settler]]:
        group, log = self._group, self._queue.log
        out: list[tuple[Message, int, Settler]] = []
        for pending in sorted(group.pending.values(), key=lambda p: p.seq):
            if len(out) >= count:
                return out
            if pending.due <= now:
                pending.deliveries += 1
                pending.due = now + self.ack_wait
                out.append(
                    (log[pending.seq - 1], pending.deliveries, _MemorySettler(self, pending.seq))
                )
        while len(out) < count and group.next_seq <= len(log):
            seq = group.next_seq
            group.next_seq += 1
            message = log[seq - 1]
            if not subject_matches(group.pattern, message.subject):
                continue
            group.pending[seq] = _Pending(seq, 1, now + self.ack_wait)
            out.append((message, 1, _MemorySettler(self, seq)))
        return out

    async def _close(self) -> None:
        pass


class _MemorySettler(Settler):
    def __init__(self, subscription: _MemorySubscription, seq: int) -> None:
        self._sub = subscription
        self._seq = seq

    async def ack(self) -> None:
        self._sub._group.pending.pop(self._seq, None)

    async def nak(self, delay: float | None) -> None:
        pending = self._sub._group.pending.get(self._seq)
        if pending is not None:
            pending.due = self._sub._queue.clock() + (delay or 0.0)
            async with self._sub._queue._changed:
                self._sub._queue._changed.notify_all()

    async def term(self) -> None:
        if self._sub._group.pending.pop(self._seq, None) is not None:
            self._sub._queue.dead_letters.append(self._sub._queue.log[self._seq - 1])

    async def in_progress(self) -> None:
        pending = self._sub._group.pending.get(self._seq)
        if pending is not None:
            pending.due = self._sub._queue.clock() + self._sub.ack_wait
