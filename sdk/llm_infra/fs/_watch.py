"""Change feeds behind `FileSystem.watch`: in-process (memory), watchfiles (local), list polling.

Each source reports the paths it saw touched; `classify` turns them into
added/modified/deleted against the set of files known so far, so every backend
coalesces a burst the same way (a file written then deleted inside one batch,
and never seen before, reports nothing).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

import watchfiles

from llm_infra.fs import _paths


class ChangeKind(enum.StrEnum):
    ADDED = enum.auto()
    MODIFIED = enum.auto()
    DELETED = enum.auto()


@dataclass(frozen=True, slots=True)
class Change:
    """One file that appeared, changed or disappeared, by path relative to the root."""

    kind: ChangeKind
    path: str


def classify(observed: dict[str, bool], known: set[str]) -> list[Change]:
    """Changes from `observed` (path -> exists now), updating `known` in place; sorted by path."""
    changes: list[Change] = []
    for path in sorted(observed):
        if observed[path]:
            kind = ChangeKind.MODIFIED if path in known else ChangeKind.ADDED
            known.add(path)
        elif path in known:
            kind = ChangeKind.DELETED
            known.discard(path)
        else:  # a directory, or a file born and gone between two looks
            continue
        changes.append(Change(kind, path))
    return changes


class ChangeSource(Protocol):
    async def arm(self) -> None:
        """Start observing; changes made after this returns are reported."""

    async def next_batch(self) -> dict[str, bool] | None:
        """Paths touched since the last batch (path -> exists now); None when closed."""

    async def close(self) -> None: ...


Snapshot = Callable[[str], Awaitable[dict[str, tuple[int, datetime]]]]


class Watch:
    """An async iterator of `Change`s under a prefix; use as ``async with fs.watch() as changes``.

    Entering arms the watcher, so a change made inside the block is never
    missed; iterating without entering arms it on the first `__anext__`.
    Leaving the block (or `aclose`) stops it and ends the iteration.
    """

    def __init__(self, source: ChangeSource, prefix: str, snapshot: Snapshot) -> None:
        self._source = source
        self._prefix = prefix
        self._snapshot = snapshot
        self._known: set[str] | None = None
        self._pending: collections.deque[Change] = collections.deque()
        self._closed = False

    async def __aenter__(self) -> Self:
        await self._arm()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Change:
        await self._arm()
        assert self._known is not None  # armed above
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            observed = await self._source.next_batch()
            if observed is None:
                await self.aclose()
                raise StopAsyncIteration
            relevant = {p: e for p, e in observed.items() if _paths.is_under(p, self._prefix)}
            self._pending.extend(classify(relevant, self._known))
        return self._pending.popleft()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._source.close()

    async def _arm(self) -> None:
        if self._known is None:
            # Source first, snapshot second: a change in between is reported, not lost.
            await self._source.arm()
            self._known = set(await self._snapshot(self._prefix))


class MemorySource:
    """Notifications the FileSystem publishes on its own writes and deletes."""

    def __init__(self, subscribers: set[asyncio.Queue[tuple[str, bool]]]) -> None:
        self._subscribers = subscribers
        self._queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    async def arm(self) -> None:
        self._subscribers.add(self._queue)

    async def next_batch(self) -> dict[str, bool] | None:
        path, exists = await self._queue.get()
        observed = {path: exists}
        while not self._queue.empty():
            path, exists = self._queue.get_nowait()
            observed[path] = exists
        return observed

    async def close(self) -> None:
        self._subscribers.discard(self._queue)


def publish(
    subscribers: Iterable[asyncio.Queue[tuple[str, bool]]], path: str, exists: bool
) -> None:
    for queue in subscribers:
        queue.put_nowait((path, exists))


class PollingSource:
    """Object stores have no change feed here: list every `interval` seconds and diff."""

    def __init__(self, snapshot: Snapshot, prefix: str, interval: float) -> None:
        self._snapshot = snapshot
        self._prefix = prefix
        self._interval = interval
        self._last: dict[str, tuple[int, datetime]] = {}

    async def arm(self) -> None:
        self._last = await self._snapshot(self._prefix)

    async def next_batch(self) -> dict[str, bool] | None:
        await asyncio.sleep(self._interval)
        current = await self._snapshot(self._prefix)
        observed = {p: True for p, meta in current.items() if self._last.get(p) != meta}
        observed.update((p, False) for p in self._last.keys() - current.keys())
        self._last = current
        return observed

    async def close(self) -> None:
        self._last = {}


class LocalSource:
    """watchfiles (inotify/FSEvents) on the root directory, mapped to relative paths.

    awatch wakes every `interval` seconds when idle (`yield_on_timeout`), which
    is how `arm` knows the OS watcher is in place before it returns.
    """

    def __init__(self, root: str, interval: float, is_inside: Callable[[str], bool]) -> None:
        self._root = root
        self._interval = interval
        self._is_inside = is_inside
        self._stop = asyncio.Event()
        self._changes: AsyncGenerator[set[tuple[watchfiles.Change, str]], None] | None = None
        self._first: set[tuple[watchfiles.Change, str]] | None = None

    async def arm(self) -> None:
        self._changes = watchfiles.awatch(
            self._root,
            watch_filter=None,
            debounce=200,
            rust_timeout=max(1, int(self._interval * 1000)),
            yield_on_timeout=True,
            stop_event=self._stop,
        )
        # The first answer (changes, or an empty set on timeout) proves the watcher runs.
        self._first = await anext(self._changes, None)

    async def next_batch(self) -> dict[str, bool] | None:
        if self._changes is None:
            return None
        raw, self._first = self._first, None
        if raw is None:
            raw = await anext(self._changes, None)
            if raw is None:
                return None
        return self._observe(raw)

    def _observe(self, raw: set[tuple[watchfiles.Change, str]]) -> dict[str, bool]:
        # Synchronous on purpose: a handful of stat calls per batch, no awaits in between.
        observed: dict[str, bool] = {}
        for _, absolute in raw:
            relative = os.path.relpath(absolute, self._root).replace(os.sep, "/")
            if relative.startswith("..") or _paths.is_staging_name(relative):
                continue
            observed[relative] = os.path.isfile(absolute) and self._is_inside(relative)
        return observed

    async def close(self) -> None:
        self._stop.set()
        if self._changes is not None:
            await self._changes.aclose()
            self._changes = None
