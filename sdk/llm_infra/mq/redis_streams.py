"""RedisStreamQueue: the MessageQueue contract on Redis Streams (one stream key per subject).

Publish is one Lua script (atomic): dedupe key `{stream}:dedupe:{msg_id}` with
a TTL of `duplicate_window`, a per-stream sequence counter, XADD. A durable is
a consumer group (XGROUP CREATE MKSTREAM); each subscription is one consumer
in it. A fetch first XAUTOCLAIMs entries idle for `ack_wait` (unacked by a
dead consumer, or nakked: nak sets the entry's idle time so it becomes
claimable after `delay`), then XREADGROUPs new ones. term = XACK + XADD to
`{stream}:dead`. Redis errors map to MessageQueueError (connection: retryable).
Subjects are exact: no NATS wildcards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from llm_infra import errors
from llm_infra.mq._base import DEFAULT_PUBLISH_WINDOW, MessageQueue, Subscription
from llm_infra.mq._types import Message, PublishAck, Settler

_PUBLISH = """
if ARGV[1] == '1' then
  local seen = redis.call('GET', KEYS[2])
  if seen then return {1, seen} end
end
local seq = redis.call('INCR', KEYS[3])
local id = redis.call('XADD', KEYS[1], '*', 'seq', seq, 'subject', ARGV[3],
                      'data', ARGV[4], 'headers', ARGV[5], 'msg_id', ARGV[6])
local receipt = seq .. ' ' .. id
if ARGV[1] == '1' then redis.call('SET', KEYS[2], receipt, 'PX', ARGV[2]) end
return {0, receipt}
"""


def from_redis(exc: BaseException) -> errors.InfraError:
    """Map a redis-py exception: timeouts, lost connections (retryable), refused commands."""
    if not isinstance(exc, redis.exceptions.RedisError):
        return errors.from_exception(exc)
    cause = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if isinstance(exc, redis.exceptions.TimeoutError):
        return errors.MessageQueueTimeout(str(exc), cause=cause)
    if isinstance(exc, redis.exceptions.ConnectionError):
        return errors.MessageQueueError(str(exc), operation=errors.MqOperation.CONNECT, cause=cause)
    if isinstance(exc, redis.exceptions.ResponseError):
        return errors.MessageQueueRejected(str(exc), cause=cause)
    return errors.MessageQueueError(str(exc), cause=cause)


class RedisStreamQueue(MessageQueue):
    """MessageQueue on Redis Streams: pass a URL (client owned) or a redis.asyncio client."""

    backend = "redis"

    def __init__(
        self,
        server: str | aioredis.Redis,
        *,
        publish_window: int = DEFAULT_PUBLISH_WINDOW,
        duplicate_window: float = 120.0,
    ) -> None:
        super().__init__(publish_window=publish_window)
        self._owned = isinstance(server, str)
        self.client: aioredis.Redis = (
            aioredis.Redis.from_url(server) if isinstance(server, str) else server
        )
        self.duplicate_window = duplicate_window
        self._script = self.client.register_script(_PUBLISH)

    def _map_error(self, exc: BaseException) -> errors.InfraError:
        return from_redis(exc)

    def _args(self, m: Message) -> tuple[list[str], list[Any]]:
        keys = [m.subject, f"{m.subject}:dedupe:{m.msg_id or ''}", f"{m.subject}:seq"]
        args = [
            "1" if m.msg_id is not None else "0",
            int(self.duplicate_window * 1000),
            m.subject,
            m.data,
            json.dumps(dict(m.headers)),
            m.msg_id or "",
        ]
        return keys, args

    async def _publish(self, message: Message) -> PublishAck:
        keys, args = self._args(message)
        return _ack(message.subject, await self._script(keys=keys, args=args))

    async def _publish_batch(self, batch: Sequence[Message]) -> list[PublishAck]:
        acks: list[PublishAck] = []
        for start in range(0, len(batch), self.publish_window):  # one round trip per window
            chunk = batch[start : start + self.publish_window]
            async with self.client.pipeline(transaction=False) as pipe:
                for message in chunk:
                    keys, args = self._args(message)
                    await self._script(keys=keys, args=args, client=pipe)
                results = await pipe.execute()
            acks.extend(_ack(m.subject, r) for m, r in zip(chunk, results, strict=True))
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
        try:
            await self.client.xgroup_create(subject_or_stream, durable, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        return _RedisSubscription(
            self.client,
            subject_or_stream,
            durable,
            batch=batch,
            max_ack_pending=max_ack_pending,
            ack_wait=ack_wait,
        )

    async def _close(self) -> None:
        if self._owned:
            await self.client.aclose()


class _RedisSubscription(Subscription):
    backend = "redis"

    def __init__(
        self, client: aioredis.Redis, destination: str, durable: str, **window: int | float
    ) -> None:
        super().__init__(destination, durable, **window)  # type: ignore[arg-type]
        self.client = client
        self.consumer = f"{durable}-{uuid.uuid4().hex[:12]}"

    def _map_error(self, exc: BaseException) -> errors.InfraError:
        return from_redis(exc)

    @property
    def _ack_wait_ms(self) -> int:
        return max(1, int(self.ack_wait * 1000))

    async def _fetch(self, count: int, wait: float) -> list[tuple[Message, int, Settler]]:
        key, group = self.destination, self.durable
        claimed = await self.client.xautoclaim(
            key, group, self.consumer, self._ack_wait_ms, "0-0", count=count
        )
        entries: list[tuple[bytes, dict[bytes, bytes]]] = [e for e in claimed[1] if e[1]]
        counts: dict[bytes, int] = {}
        if entries:
            async with self.client.pipeline(transaction=False) as pipe:
                for entry_id, _ in entries:
                    pipe.xpending_range(key, group, min=entry_id, max=entry_id, count=1)
                for entry_id, rows in zip(
                    (e[0] for e in entries), await pipe.execute(), strict=True
                ):
                    counts[entry_id] = int(rows[0]["times_delivered"]) if rows else 1
        room = count - len(entries)
        if room > 0:
            block = None if entries else max(1, int(wait * 1000))
            new: Any = await self.client.xreadgroup(
                group, self.consumer, {key: ">"}, count=room, block=block
            )
            for _, stream_entries in new or ():  # [[key, [(id, fields), ...]]]
                entries.extend(stream_entries)
        return [
            (_message(fields), counts.get(entry_id, 1), _RedisSettler(self, entry_id, fields))
            for entry_id, fields in entries
        ]

    async def _close(self) -> None:
        # Pending entries stay with this consumer until another one claims them after ack_wait.
        pass


class _RedisSettler(Settler):
    __slots__ = ("_fields", "_id", "_sub")

    def __init__(
        self, sub: _RedisSubscription, entry_id: bytes, fields: dict[bytes, bytes]
    ) -> None:
        self._sub = sub
        self._id = entry_id
        self._fields = fields

    async def ack(self) -> None:
        with errors.translate(from_redis):
            await self._sub.client.xack(self._sub.destination, self._sub.durable, self._id)

    async def nak(self, delay: float | None) -> None:
        # Leave it pending, but aged so that XAUTOCLAIM takes it once `delay` has passed.
        sub = self._sub
        idle = max(0, sub._ack_wait_ms - int((delay or 0.0) * 1000))
        with errors.translate(from_redis):
            await sub.client.xclaim(
                sub.destination, sub.durable, sub.consumer, 0, [self._id], idle=idle, justid=True
            )

    async def term(self) -> None:
        sub = self._sub
        dead_letter: dict[Any, Any] = {**self._fields, "entry_id": self._id, "durable": sub.durable}
        with errors.translate(from_redis):
            async with sub.client.pipeline(transaction=True) as pipe:
                pipe.xack(sub.destination, sub.durable, self._id)
                pipe.xadd(
                    f"{sub.destination}:dead",
                    dead_letter,
                )
                await pipe.execute()

    async def in_progress(self) -> None:
        sub = self._sub
        with errors.translate(from_redis):
            await sub.client.xclaim(
                sub.destination, sub.durable, sub.consumer, 0, [self._id], idle=0, justid=True
            )


def _ack(stream: str, result: list[Any]) -> PublishAck:
    duplicate, receipt = result
    seq, _, entry_id = (receipt.decode() if isinstance(receipt, bytes) else str(receipt)).partition(
        " "
    )
    return PublishAck(stream, int(seq), duplicate=bool(int(duplicate)), entry_id=entry_id)


def _message(fields: dict[bytes, bytes]) -> Message:
    headers = json.loads(fields.get(b"headers", b"{}"))
    msg_id = fields.get(b"msg_id", b"").decode() or None
    return Message(fields[b"subject"].decode(), fields[b"data"], headers, msg_id)
