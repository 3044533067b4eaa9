"""MessageQueue and Subscription: the API every backend offers, with the policy shared by all.

The public methods check input, record a span and a latency histogram, and
translate library errors into `llm_infra.errors`; a backend implements only the
`_` hooks that talk to its broker. The shared policies live here: the bounded
in-flight window of `publish_batch` and the un-acked window of a subscription
(never more than `max_ack_pending` deliveries held unsettled, so a slow
consumer slows the fetching instead of piling messages up in memory).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import ClassVar, Self

from llm_infra import errors
from llm_infra.mq import _telemetry
from llm_infra.mq._types import Message, PublishAck, Received, Settler

DEFAULT_PUBLISH_WINDOW = 1000
DEFAULT_MAX_ACK_PENDING = 1000
DEFAULT_ACK_WAIT = 30.0
# How long one fetch waits on the broker before the iterator asks again.
FETCH_WAIT = 1.0


class MessageQueue(ABC):
    """Publish to subjects and consume through durable, explicitly acked consumers."""

    backend: ClassVar[str]

    def __init__(self, *, publish_window: int = DEFAULT_PUBLISH_WINDOW) -> None:
        if publish_window < 1:
            raise errors.ValidationError(
                "publish_window must be at least 1", field="publish_window"
            )
        self.publish_window = publish_window

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        msg_id: str | None = None,
    ) -> PublishAck:
        """Store one message; returns once stored (a duplicate msg_id is not stored twice)."""
        message = Message(subject, bytes(data), dict(headers or {}), msg_id)
        _check_subject(subject)
        with (
            _telemetry.operation("publish", self.backend, subject),
            errors.translate(self._map_error),
        ):
            return await self._publish(message)

    async def publish_batch(self, messages: Iterable[Message]) -> list[PublishAck]:
        """Publish many, pipelined: at most `publish_window` unacknowledged at once; acks in order.

        On the first failure the error is raised; messages before it whose ack
        arrived are stored (publish with msg_id to make a retry of the whole
        batch safe).
        """
        batch = list(messages)
        for message in batch:
            _check_subject(message.subject)
        destination = batch[0].subject if batch else ""
        with (
            _telemetry.operation("publish_batch", self.backend, destination, messages=len(batch)),
            errors.translate(self._map_error),
        ):
            return await self._publish_batch(batch)

    async def subscribe(
        self,
        subject_or_stream: str,
        durable: str,
        *,
        batch: int = 100,
        max_ack_pending: int = DEFAULT_MAX_ACK_PENDING,
        ack_wait: float = DEFAULT_ACK_WAIT,
    ) -> Subscription:
        """A durable pull subscription (created if missing); iterate it for `Received`s."""
        if batch < 1 or max_ack_pending < 1 or ack_wait <= 0:
            raise errors.ValidationError("batch and max_ack_pending must be >= 1, ack_wait > 0")
        if not durable or any(c in durable for c in " .*>"):
            raise errors.ValidationError(f"invalid durable name {durable!r}", field="durable")
        with (
            _telemetry.operation("subscribe", self.backend, subject_or_stream),
            errors.translate(self._map_error),
        ):
            return await self._subscribe(
                subject_or_stream,
                durable,
                batch=batch,
                max_ack_pending=max_ack_pending,
                ack_wait=ack_wait,
            )

    async def close(self) -> None:
        with errors.translate(self._map_error):
            await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- backend hooks --------------------------------------------------------------------------

    def _map_error(self, exc: BaseException) -> errors.InfraError:
        return errors.from_exception(exc)

    @abstractmethod
    async def _publish(self, message: Message) -> PublishAck: ...

    async def _publish_batch(self, batch: Sequence[Message]) -> list[PublishAck]:
        """Default pipelining: a sliding window of `_publish` tasks."""
        window: deque[asyncio.Task[PublishAck]] = deque()
        acks: list[PublishAck] = []
        try:
            for message in batch:
                if len(window) >= self.publish_window:
                    acks.append(await window.popleft())
                window.append(asyncio.ensure_future(self._publish(message)))
            while window:
                acks.append(await window.popleft())
        finally:
            for task in window:
                task.cancel()
        return acks

    @abstractmethod
    async def _subscribe(
        self,
        subject_or_stream: str,
        durable: str,
        *,
        batch: int,
        max_ack_pending: int,
        ack_wait: float,
    ) -> Subscription: ...

    @abstractmethod
    async def _close(self) -> None: ...


class Subscription(ABC):
    """An async iterator of `Received`; holds at most `max_ack_pending` unsettled deliveries.

    `fetch()` returns one batch (maybe empty after `wait` seconds); iterating fetches
    until `close()`. Closing does not settle anything: unsettled deliveries go
    back to the durable consumer after `ack_wait`.
    """

    backend: ClassVar[str]

    def __init__(
        self, destination: str, durable: str, *, batch: int, max_ack_pending: int, ack_wait: float
    ) -> None:
        self.destination = destination
        self.durable = durable
        self.batch = batch
        self.max_ack_pending = max_ack_pending
        self.ack_wait = ack_wait
        self._unsettled = 0
        self._room = asyncio.Event()
        self._room.set()
        self._buffer: deque[Received] = deque()
        self._closed = False

    @property
    def unsettled(self) -> int:
        """Deliveries handed out and not yet acked, nakked or termed."""
        return self._unsettled

    async def fetch(self, wait: float = FETCH_WAIT) -> list[Received]:
        """The next batch: up to `batch`, never past the un-acked window; [] after `wait` s."""
        if self._closed:
            raise errors.MessageQueueRejected(
                "subscription is closed", destination=self.destination
            )
        if self._buffer:
            out = list(self._buffer)
            self._buffer.clear()
            return out
        room = self.max_ack_pending - self._unsettled
        if room <= 0:
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), wait)
            except TimeoutError:
                return []
            room = self.max_ack_pending - self._unsettled
        with (
            _telemetry.operation("fetch", self.backend, self.destination, durable=self.durable),
            errors.translate(self._map_error),
        ):
            raw = await self._fetch(min(self.batch, room), wait)
        self._unsettled += len(raw)
        return [Received(m, count, settler, self._settled) for m, count, settler in raw]

    def _settled(self) -> None:
        self._unsettled -= 1
        self._room.set()

    def __aiter__(self) -> AsyncIterator[Received]:
        return self

    async def __anext__(self) -> Received:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._buffer.extend(await self.fetch())
        return self._buffer.popleft()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with errors.translate(self._map_error):
            await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- backend hooks --------------------------------------------------------------------------

    def _map_error(self, exc: BaseException) -> errors.InfraError:
        return errors.from_exception(exc)

    @abstractmethod
    async def _fetch(self, count: int, wait: float) -> list[tuple[Message, int, Settler]]: ...

    @abstractmethod
    async def _close(self) -> None: ...


def _check_subject(subject: str) -> None:
    if not subject or any(c in subject for c in " \t\r\n*>"):
        raise errors.ValidationError(f"invalid publish subject {subject!r}", field="subject")
