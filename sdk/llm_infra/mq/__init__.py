"""llm_infra.mq: durable messaging with one async API on NATS JetStream and Redis Streams.

    from llm_infra.mq import JetStreamQueue, StreamSpec, ensure_stream

    async with JetStreamQueue("nats://127.0.0.1:4222") as queue:
        await queue.ensure_stream(StreamSpec("AUDIT", ("audit.>",)))
        ack = await queue.publish("audit.login", b"{...}", msg_id=event_id)
        async for received in await queue.subscribe("audit.>", "indexer"):
            ...
            await received.ack()

`JetStreamQueue` is the production backend, `RedisStreamQueue` the same
contract on Redis Streams, `InMemoryQueue` the contract in process for unit
tests only. `ensure_stream` / `ensure_consumer` are decide/apply reconcilers
(the pure decisions are `decide_stream` / `decide_consumer`). Errors are
`llm_infra.errors` (message-queue category).
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from llm_infra.mq._base import MessageQueue, Subscription
from llm_infra.mq._plan import (
    Action,
    ConsumerPlan,
    Mismatch,
    ObservedConsumer,
    StreamPlan,
    decide_consumer,
    decide_stream,
)
from llm_infra.mq._types import (
    Compression,
    ConsumerSpec,
    Discard,
    Message,
    PublishAck,
    Received,
    Settler,
    Storage,
    StreamSpec,
)
from llm_infra.mq.jetstream import JetStreamQueue, ensure_consumer, ensure_stream
from llm_infra.mq.memory import InMemoryQueue

__all__ = [
    "Action",
    "Compression",
    "ConsumerPlan",
    "ConsumerSpec",
    "Discard",
    "InMemoryQueue",
    "JetStreamQueue",
    "Message",
    "MessageQueue",
    "Mismatch",
    "ObservedConsumer",
    "PublishAck",
    "Received",
    "RedisStreamQueue",
    "Settler",
    "Storage",
    "StreamPlan",
    "StreamSpec",
    "Subscription",
    "decide_consumer",
    "decide_stream",
    "ensure_consumer",
    "ensure_stream",
]

if _TYPE_CHECKING:
    from llm_infra.mq.redis_streams import RedisStreamQueue


def __getattr__(name: str) -> _Any:
    # RedisStreamQueue loads redis-py: only for those who use it (the operator never does).
    if name == "RedisStreamQueue":
        from llm_infra.mq.redis_streams import RedisStreamQueue

        return RedisStreamQueue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
