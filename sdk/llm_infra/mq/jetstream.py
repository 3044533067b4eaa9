"""JetStreamQueue: MessageQueue on NATS JetStream, plus ensure_stream / ensure_consumer.

Dedupe is JetStream's own (`Nats-Msg-Id` within the stream's duplicate
window); consumers are durable pull consumers with explicit acks.
`ensure_stream` / `ensure_consumer` observe, decide (llm_infra.mq._plan, pure)
and apply; an immutable difference raises MessageQueueRejected and changes nothing.
nats-py errors map through errors.from_nats (a lost connection: retryable
MessageQueueError).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Sequence

import nats
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from llm_infra import errors
from llm_infra.mq import _plan, _telemetry
from llm_infra.mq._base import DEFAULT_PUBLISH_WINDOW, MessageQueue, Subscription
from llm_infra.mq._types import ConsumerSpec, Message, PublishAck, Settler, Storage, StreamSpec

MSG_ID_HEADER = "Nats-Msg-Id"


class JetStreamQueue(MessageQueue):
    """MessageQueue on JetStream: pass a URL (connection opened and owned) or a connected client."""

    backend = "jetstream"

    def __init__(
        self,
        server: str | NatsClient,
        *,
        publish_window: int = DEFAULT_PUBLISH_WINDOW,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(publish_window=publish_window)
        self._url = server if isinstance(server, str) else None
        self._nc: NatsClient | None = None if isinstance(server, str) else server
        self._owned = isinstance(server, str)
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        self.timeout = timeout

    def _map_error(self, exc: BaseException) -> errors.InfraError:
        return errors.from_nats(exc)

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context (connecting first if this queue owns its connection)."""
        if self._js is None:
            async with self._lock:
                if self._nc is None:
                    assert self._url is not None
                    with errors.translate(errors.from_nats):
                        # Reconnect for as long as it takes: publishes fail (retryably) meanwhile.
                        self._nc = await nats.connect(
                            self._url,
                            max_reconnect_attempts=-1,
                            reconnect_time_wait=0.1,
                            error_cb=_quiet,
                        )
                self._js = self._nc.jetstream(timeout=self.timeout)
        return self._js

    async def ensure_stream(self, spec: StreamSpec) -> _plan.StreamPlan:
        return await ensure_stream(await self.jetstream(), spec)

    async def ensure_consumer(self, stream: str, spec: ConsumerSpec) -> _plan.ConsumerPlan:
        return await ensure_consumer(await self.jetstream(), stream, spec)

    async def _publish(self, message: Message) -> PublishAck:
        js = await self.jetstream()
        ack = await js.publish(
            message.subject, message.data, headers=_headers(message), timeout=self.timeout
        )
        return PublishAck(ack.stream, ack.seq, bool(ack.duplicate))

    async def _publish_batch(self, batch: Sequence[Message]) -> list[PublishAck]:
        js = await self.jetstream()
        window: deque[asyncio.Future[api.PubAck]] = deque()
        acks: list[PublishAck] = []
        try:
            for message in batch:
                if len(window) >= self.publish_window:
                    acks.append(_ack(await window.popleft()))
                window.append(
                    await js.publish_async(message.subject, message.data, headers=_headers(message))
                )
            while window:
                acks.append(_ack(await window.popleft()))
        finally:
            for future in window:
                future.cancel()
        return acks

    async def _subscribe(
        self,
        subject_or_stream: str,
        durable: str,
        *,
        batch: int,
        max_ack_pending: int,
        ack_wait: float,
    ) -> Subscription:
        js = await self.jetstream()
        stream, subject = await _resolve(js, subject_or_stream)
        await ensure_consumer(
            js,
            stream,
            ConsumerSpec(
                durable, filter_subject=subject, ack_wait=ack_wait, max_ack_pending=max_ack_pending
            ),
        )
        sub = await js.pull_subscribe_bind(durable, stream)
        return _JetStreamSubscription(
            sub,
            subject_or_stream,
            durable,
            batch=batch,
            max_ack_pending=max_ack_pending,
            ack_wait=ack_wait,
        )

    async def _close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and self._owned and not nc.is_closed:
            await nc.drain()


class _JetStreamSubscription(Subscription):
    backend = "jetstream"

    def __init__(
        self,
        sub: JetStreamContext.PullSubscription,
        destination: str,
        durable: str,
        **window: int | float,
    ) -> None:
        super().__init__(destination, durable, **window)  # type: ignore[arg-type]
        self._sub = sub

    def _map_error(self, exc: BaseException) -> errors.InfraError:
        return errors.from_nats(exc)

    async def _fetch(self, count: int, wait: float) -> list[tuple[Message, int, Settler]]:
        try:
            msgs = await self._sub.fetch(count, timeout=wait)
        except (nats.errors.TimeoutError, TimeoutError):
            # nats-py raises its own TimeoutError, or asyncio's when the wait is spent before
            # the server's "no messages" reply arrives: either way, nothing came in time.
            return []
        return [(_message(m), m.metadata.num_delivered, _JetStreamSettler(m)) for m in msgs]

    async def _close(self) -> None:
        await self._sub.unsubscribe()


class _JetStreamSettler(Settler):
    __slots__ = ("_msg",)

    def __init__(self, msg: Msg) -> None:
        self._msg = msg

    async def ack(self) -> None:
        with errors.translate(errors.from_nats):
            await self._msg.ack()

    async def nak(self, delay: float | None) -> None:
        with errors.translate(errors.from_nats):
            await self._msg.nak(delay=delay)

    async def term(self) -> None:
        with errors.translate(errors.from_nats):
            await self._msg.term()

    async def in_progress(self) -> None:
        with errors.translate(errors.from_nats):
            await self._msg.in_progress()


async def _resolve(js: JetStreamContext, subject_or_stream: str) -> tuple[str, str | None]:
    """(stream, filter subject): a stream's name binds to the whole stream, else it's a subject."""
    if not any(c in subject_or_stream for c in ".*> "):  # could be a stream name
        try:
            await js.stream_info(subject_or_stream)
        except nats.js.errors.NotFoundError:
            pass
        else:
            return subject_or_stream, None
    return await js.find_stream_name_by_subject(subject_or_stream), subject_or_stream


# -- ensure: observe, decide (pure, in _plan), apply ------------------------------------------


async def observe_stream(js: JetStreamContext, name: str) -> StreamSpec | None:
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        return None
    return stream_spec_of(info.config, name)


def stream_spec_of(c: api.StreamConfig, name: str) -> StreamSpec:
    """The inverse of `_stream_config`: a server's stream config in our terms."""
    return StreamSpec(
        name=c.name or name,
        subjects=tuple(c.subjects or ()),
        storage=Storage.MEMORY if c.storage == api.StorageType.MEMORY else Storage.FILE,
        replicas=c.num_replicas or 1,
        max_age=float(c.max_age or 0.0),
        max_bytes=c.max_bytes if c.max_bytes is not None else -1,
        max_msgs=c.max_msgs if c.max_msgs is not None else -1,
        duplicate_window=float(c.duplicate_window or 0.0),
        deny_delete=bool(c.deny_delete),
        deny_purge=bool(c.deny_purge),
        discard="new" if c.discard == api.DiscardPolicy.NEW else "old",
        compression="s2" if c.compression == api.StoreCompression.S2 else "none",
        metadata={k: v for k, v in (c.metadata or {}).items() if not k.startswith("_nats.")},
    )


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> _plan.StreamPlan:
    """Create the stream, or update its mutable fields; idempotent. Returns what was decided.

    Raises MessageQueueRejected (nothing changed) when an immutable field differs.
    """
    with (
        _telemetry.operation("ensure_stream", "jetstream", spec.name),
        errors.translate(errors.from_nats),
    ):
        observed = await observe_stream(js, spec.name)
        plan = _plan.decide_stream(spec, observed)
        if plan.mismatches:
            raise _mismatch_error(spec.name, plan.mismatches)
        if plan.action is _plan.Action.CREATE:
            await js.add_stream(_stream_config(spec))
        elif plan.action is _plan.Action.UPDATE:
            assert observed is not None
            # Labels someone else set stay: an update replaces the whole metadata map.
            labels = {**observed.metadata, **spec.metadata}
            await js.update_stream(_stream_config(dataclasses.replace(spec, metadata=labels)))
        return plan


async def observe_consumer(
    js: JetStreamContext, stream: str, durable: str
) -> _plan.ObservedConsumer | None:
    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        return None
    c = info.config
    spec = ConsumerSpec(
        durable=c.durable_name or durable,
        filter_subject=c.filter_subject or None,
        ack_wait=float(c.ack_wait or 0.0),
        max_deliver=c.max_deliver if c.max_deliver is not None else -1,
        max_ack_pending=c.max_ack_pending if c.max_ack_pending is not None else -1,
    )
    return _plan.ObservedConsumer(
        spec, explicit_ack=c.ack_policy == api.AckPolicy.EXPLICIT, pull=not c.deliver_subject
    )


async def ensure_consumer(
    js: JetStreamContext, stream: str, spec: ConsumerSpec
) -> _plan.ConsumerPlan:
    """Create the durable pull consumer, or update its mutable fields; idempotent."""
    with (
        _telemetry.operation("ensure_consumer", "jetstream", stream),
        errors.translate(errors.from_nats),
    ):
        plan = _plan.decide_consumer(spec, await observe_consumer(js, stream, spec.durable))
        if plan.mismatches:
            raise _mismatch_error(f"{stream}/{spec.durable}", plan.mismatches)
        if plan.action is not _plan.Action.NONE:
            # add_consumer with an existing durable name is JetStream's update.
            await js.add_consumer(stream, _consumer_config(spec))
        return plan


def _stream_config(spec: StreamSpec) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=api.StorageType.MEMORY if spec.storage is Storage.MEMORY else api.StorageType.FILE,
        num_replicas=spec.replicas,
        max_age=spec.max_age,
        max_bytes=spec.max_bytes,
        max_msgs=spec.max_msgs,
        duplicate_window=spec.duplicate_window,
        deny_delete=spec.deny_delete,
        deny_purge=spec.deny_purge,
        discard=api.DiscardPolicy(spec.discard),
        compression=api.StoreCompression(spec.compression),
        metadata=dict(spec.metadata) or None,
    )


def _consumer_config(spec: ConsumerSpec) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=spec.durable,
        filter_subject=spec.filter_subject,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
    )


def _mismatch_error(
    destination: str, mismatches: Sequence[_plan.Mismatch]
) -> errors.MessageQueueRejected:
    detail = "; ".join(f"{m.field}: wanted {m.expected}, found {m.actual}" for m in mismatches)
    return errors.MessageQueueRejected(
        f"cannot change in place (nothing was modified): {detail}",
        destination=destination,
        operation=errors.MqOperation.REQUEST,
        status_code=409,
    )


def _headers(message: Message) -> dict[str, str] | None:
    headers = dict(message.headers)
    if message.msg_id is not None:
        headers[MSG_ID_HEADER] = message.msg_id
    return headers or None


def _ack(ack: api.PubAck) -> PublishAck:
    return PublishAck(ack.stream, ack.seq, bool(ack.duplicate))


def _message(msg: Msg) -> Message:
    headers = dict(msg.headers or {})
    return Message(msg.subject, msg.data, headers, headers.get(MSG_ID_HEADER))


async def _quiet(exc: Exception) -> None:
    """Connection errors surface on the calls that fail; don't log each reconnect attempt."""
