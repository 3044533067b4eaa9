"""The reconcile protocol the operator, the control plane's feeds and standalone mode share.

Each of them learns that a resource was declared or removed (kopf and its
resync loop; an informer; a saved YAML file) and must make something match it
(a stream, a served config, a route table). `Reconciler` is the part they have
in common, written once:

- **dispatch by kind**: `register(kind, apply=..., remove=...)`, then
  `apply(key, obj)` / `remove(key, obj)` with ``key = (kind, namespace, name)``;
- **failure bookkeeping**: the last failure of each key (`failures`), said once
  per distinct message (not on every retry) through `report`;
- **backoff through stamina**: a handler that fails with a retryable error
  (`errors.InfraError.is_retryable()`, or `Retry` raised on purpose) is tried
  again in the background with capped exponential backoff and jitter until it
  succeeds; a newer `apply`/`remove` of the same key replaces the retry
  (the latest declaration wins). `settle` retries inline instead, for callers
  that must not return before it worked (a finalizer).

One call per key at a time: calls of one key take its lock, keys run
independently. Handlers receive the key and the object and raise to fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import stamina

from llm_infra import errors

T = TypeVar("T")
Key = tuple[str, str, str]
"""(kind, namespace, name); kind is whatever the caller dispatches on."""
Handler = Callable[[Key, T], Awaitable[None]]
Report = Callable[[Key, str, bool], None]
"""Called with (key, message, failed): a new failure message, or a recovery (failed False)."""

_log = logging.getLogger(__name__)


class Retry(Exception):  # noqa: N818  a signal, as errors.InfraError.is_retryable() is
    """Raised by a handler that is not done yet and wants another try, with backoff."""


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds of the first wait and of the longest; up to `jitter` seconds added at random."""

    initial: float = 1.0
    maximum: float = 60.0
    jitter: float = 1.0


@dataclasses.dataclass
class Failure:
    """The last failure of a key: what it said, how often in a row, since when (monotonic)."""

    message: str
    attempts: int
    since: float
    retrying: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _Kind(Generic[T]):
    apply: Handler[T]
    remove: Handler[T] | None


def retryable(exc: BaseException) -> bool:
    """Whether waiting can fix `exc`: `Retry`, or an InfraError that says so."""
    return isinstance(exc, Retry) or (isinstance(exc, errors.InfraError) and exc.is_retryable())


def describe(exc: BaseException) -> str:
    """What a failure says in reports and status: our errors' messages, a bug's type only."""
    if isinstance(exc, errors.InfraError):
        return exc.message
    if isinstance(exc, Retry):
        return str(exc)
    return f"internal error: {type(exc).__name__}"  # a library's message may quote data


class Reconciler(Generic[T]):
    """Dispatches applies and removals by kind, remembers failures, retries with backoff."""

    def __init__(
        self,
        name: str,
        *,
        backoff: Backoff = Backoff(),
        report: Report | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.backoff = backoff
        self.failures: dict[Key, Failure] = {}
        self._kinds: dict[str, _Kind[T]] = {}
        self._report = report
        self._clock = clock
        self._locks: dict[Key, asyncio.Lock] = {}
        self._retries: dict[Key, asyncio.Task[None]] = {}

    def register(self, kind: str, *, apply: Handler[T], remove: Handler[T] | None = None) -> None:
        self._kinds[kind] = _Kind(apply, remove)

    async def apply(self, key: Key, obj: T) -> bool:
        """Run the kind's apply now; on a retryable failure keep retrying in the background.

        True when it succeeded now. A failure is recorded (`failures`) and reported.
        """
        return await self._start(key, obj, self._handlers(key).apply)

    async def remove(self, key: Key, obj: T) -> bool:
        """Run the kind's remove (if any) now, retrying like `apply`; forget the key after."""
        handler = self._handlers(key).remove
        if handler is None:
            self.forget(key)
            return True
        done = await self._start(key, obj, handler)
        if done:
            self._locks.pop(key, None)
        return done

    async def settle(self, key: Key, obj: T, handler: Handler[T]) -> None:
        """Run `handler` until it succeeds, retrying here with backoff; raise what cannot wait."""
        self._cancel_retry(key)
        async for attempt in self._attempts():
            with attempt:
                async with self._lock(key):
                    await self._once(key, obj, handler, raise_=True)

    def forget(self, key: Key) -> None:
        """Drop what is known of `key` (it is gone): its failure, its pending retry."""
        self._cancel_retry(key)
        self.failures.pop(key, None)
        self._locks.pop(key, None)

    def retrying(self, key: Key) -> bool:
        return key in self._retries

    async def idle(self) -> None:
        """Until no retry is pending (each ended: it succeeded, or met what cannot wait)."""
        while self._retries:
            await asyncio.gather(*self._retries.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the pending retries (shutdown)."""
        tasks = list(self._retries.values())
        self._retries.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the mechanics -------------------------------------------------------------------------

    def _handlers(self, key: Key) -> _Kind[T]:
        try:
            return self._kinds[key[0]]
        except KeyError:
            raise errors.UnexpectedError(f"{self.name}: no handler for kind {key[0]}") from None

    async def _start(self, key: Key, obj: T, handler: Handler[T]) -> bool:
        self._cancel_retry(key)  # the latest declaration wins
        async with self._lock(key):
            failed = await self._once(key, obj, handler)
        if failed is not None and retryable(failed):
            task = asyncio.create_task(
                self._retry(key, obj, handler), name=f"{self.name} retry {'/'.join(key)}"
            )
            self._retries[key] = task
            task.add_done_callback(lambda done: self._retry_done(key, done))
        return failed is None

    async def _once(
        self, key: Key, obj: T, handler: Handler[T], *, raise_: bool = False
    ) -> BaseException | None:
        """One call of `handler`: bookkeeping of its outcome; the failure, or None."""
        try:
            await handler(key, obj)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(key, exc)
            if raise_:
                raise
            return exc
        if (previous := self.failures.pop(key, None)) is not None and self._report:
            self._report(key, f"recovered after {previous.attempts} failed attempts", False)
        return None

    async def _retry(self, key: Key, obj: T, handler: Handler[T]) -> None:
        await asyncio.sleep(self.backoff.initial)
        async for attempt in self._attempts():
            with attempt:
                async with self._lock(key):
                    await self._once(key, obj, handler, raise_=True)

    def _attempts(self) -> Any:
        return stamina.retry_context(
            on=retryable,
            attempts=None,
            timeout=None,
            wait_initial=self.backoff.initial,
            wait_max=self.backoff.maximum,
            wait_jitter=self.backoff.jitter,
        )

    def _failed(self, key: Key, exc: BaseException) -> None:
        message = describe(exc)
        previous = self.failures.get(key)
        attempts = previous.attempts + 1 if previous is not None else 1
        since = previous.since if previous is not None else self._clock()
        self.failures[key] = Failure(message, attempts, since, retryable(exc))
        if not isinstance(exc, errors.InfraError | Retry):
            _log.error("%s %s: %s", self.name, "/".join(key), message, exc_info=exc)
        if self._report and (previous is None or previous.message != message):
            self._report(key, message, True)  # once per distinct message, not on every retry

    def _retry_done(self, key: Key, task: asyncio.Task[None]) -> None:
        if self._retries.get(key) is task:
            del self._retries[key]
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Not retryable any more (the failure changed kind): recorded by _failed already.
            _log.debug("%s %s: retries ended: %s", self.name, "/".join(key), describe(exc))

    def _cancel_retry(self, key: Key) -> None:
        if (task := self._retries.pop(key, None)) is not None:
            task.cancel()

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


__all__ = [
    "Backoff",
    "Failure",
    "Handler",
    "Key",
    "Reconciler",
    "Report",
    "Retry",
    "describe",
    "retryable",
]
