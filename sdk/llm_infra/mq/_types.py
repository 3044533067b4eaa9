"""The values every queue backend speaks: messages, acks, deliveries, stream and consumer specs."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Discard = Literal["old", "new"]
"""At a limit, drop the oldest messages (old) or refuse new ones (new)."""
Compression = Literal["none", "s2"]
"""How stored messages are compressed: not at all, or S2 (file storage only)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message to publish or as delivered; `msg_id` makes a publish idempotent."""

    subject: str
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class PublishAck:
    """The broker's receipt: the message is stored (`duplicate`: it was, already, under `msg_id`).

    `seq` is the stream sequence (JetStream) or a per-stream counter (Redis,
    whose own entry id is `entry_id`).
    """

    stream: str
    seq: int
    duplicate: bool = False
    entry_id: str | None = None


class Storage(enum.StrEnum):
    FILE = "file"
    MEMORY = "memory"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What a stream should be. Durations in seconds; 0 / -1 mean "no limit" as in JetStream."""

    name: str
    subjects: tuple[str, ...]
    storage: Storage = Storage.FILE
    replicas: int = 1
    max_age: float = 0.0
    max_bytes: int = -1
    max_msgs: int = -1
    duplicate_window: float = 120.0
    deny_delete: bool = False
    deny_purge: bool = False
    discard: Discard = "old"
    compression: Compression = "none"
    metadata: Mapping[str, str] = field(default_factory=dict)
    """The stream's own labels (JetStream config ``metadata``, nats-server 2.10+): who owns it.

    Keys the server sets itself (``_nats.*``) are never part of a spec."""


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A durable pull consumer with explicit acks."""

    durable: str
    filter_subject: str | None = None
    ack_wait: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 1000


class Settler(ABC):
    """How a backend settles one delivery; `Received` calls it (a backend subclasses it)."""

    @abstractmethod
    async def ack(self) -> None: ...

    @abstractmethod
    async def nak(self, delay: float | None) -> None: ...

    @abstractmethod
    async def term(self) -> None: ...

    @abstractmethod
    async def in_progress(self) -> None: ...


class Received:
    """A delivered message; settle it exactly once with ack, nak or term.

    `delivery_count` is 1 on first delivery. `in_progress()` extends the ack
    deadline and may be called any number of times before settling.
    """

    __slots__ = ("_on_settled", "_settled", "_settler", "delivery_count", "message")

    def __init__(
        self,
        message: Message,
        delivery_count: int,
        settler: Settler,
        on_settled: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        self.message = message
        self.delivery_count = delivery_count
        self._settler = settler
        self._on_settled = on_settled
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        """Done: the message will not be delivered again."""
        await self._settle(self._settler.ack())

    async def nak(self, delay: float | None = None) -> None:
        """Not done: deliver it again, after `delay` seconds if given."""
        await self._settle(self._settler.nak(delay))

    async def term(self) -> None:
        """Never deliver it again (Redis also copies it to the dead-letter stream)."""
        await self._settle(self._settler.term())

    async def in_progress(self) -> None:
        """Still working: restart the ack deadline."""
        await self._settler.in_progress()

    async def _settle(self, action: Awaitable[None]) -> None:
        if self._settled:
            close = getattr(action, "close", None)
            if close is not None:
                close()  # the coroutine was never awaited: close it so no warning is raised
            return
        await action
        self._settled = True
        if self._on_settled is not None:
            result = self._on_settled()
            if result is not None:
                await result

    def __repr__(self) -> str:
        m, count = self.message, self.delivery_count
        return f"Received(subject={m.subject!r}, msg_id={m.msg_id!r}, delivery_count={count})"
