"""ConfigWatcher: re-runs a load when its files change; an invalid update is never applied.

`watch(load, paths=...)` loads once, then `updates()` (or ``async for`` on
the watcher) re-runs `load` whenever a watched file changes (watchfiles) and
yields each new settings object. A failing load keeps the last good settings
current and goes to the `on_error` callbacks; `reload()` does the same by hand.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Generic, TypeVar

import watchfiles

from llm_infra import errors

_log = logging.getLogger(__name__)

T = TypeVar("T")


class ConfigWatcher(Generic[T]):
    """Holds the current settings of `load` and replaces them only with valid ones."""

    def __init__(
        self,
        load: Callable[[], T],
        *,
        paths: Iterable[str | os.PathLike[str]] = (),
        debounce_ms: int = 300,
    ) -> None:
        self._load = load
        self._paths = frozenset(Path(path).resolve() for path in paths)
        self._debounce_ms = debounce_ms
        self._listeners: list[Callable[[T], None]] = []
        self._error_listeners: list[Callable[[errors.InfraError], None]] = []
        self._stop = asyncio.Event()
        self.last_error: errors.InfraError | None = None
        # The first load has no good settings to fall back on: its error is the caller's.
        self._current = load()

    @property
    def current(self) -> T:
        """The last settings that loaded without error."""
        return self._current

    def on_change(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Call `callback(new)` after each applied update; returns a function that unregisters."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def on_error(self, callback: Callable[[errors.InfraError], None]) -> Callable[[], None]:
        """Call `callback(error)` for each rejected update; returns a function that unregisters."""
        self._error_listeners.append(callback)
        return lambda: self._error_listeners.remove(callback)

    def reload(self) -> T:
        """Run `load` now: the new settings if valid, else the last good ones (error reported)."""
        return self._apply(self._attempt())

    async def updates(self) -> AsyncIterator[T]:
        """Each applied update, as files change, until `stop()`; rejected ones are skipped."""
        if not self._paths:
            return
        # Watch the directories: editors and ConfigMap mounts replace files rather than write them.
        directories = sorted({str(path.parent) for path in self._paths})
        async for _ in watchfiles.awatch(
            *directories,
            watch_filter=self._watched,
            stop_event=self._stop,
            debounce=self._debounce_ms,
            recursive=False,
        ):
            # `load` may be slow (OpenBao, HTTP): off the loop; callbacks run back on it.
            before = self._current
            settings = self._apply(await asyncio.to_thread(self._attempt))
            if settings is not before:
                yield settings

    def __aiter__(self) -> AsyncIterator[T]:
        return self.updates()

    async def run(self) -> None:
        """Apply updates (calling the callbacks) until `stop()`."""
        async for _ in self.updates():
            pass

    def stop(self) -> None:
        """End `updates()` and `run()` after the current step."""
        self._stop.set()

    def _attempt(self) -> T | errors.InfraError:
        try:
            return self._load()
        except Exception as exc:  # noqa: BLE001  a bad update must never take the settings down
            return errors.from_exception(exc)

    def _apply(self, outcome: T | errors.InfraError) -> T:
        if isinstance(outcome, errors.InfraError):
            self.last_error = outcome
            _log.warning("settings update rejected, keeping the last good settings: %s", outcome)
            for error_callback in list(self._error_listeners):
                error_callback(outcome)
            return self._current
        self._current, self.last_error = outcome, None
        for callback in list(self._listeners):
            callback(outcome)
        return outcome

    def _watched(self, change: watchfiles.Change, path: str) -> bool:
        return Path(path).resolve() in self._paths


def watch(
    load: Callable[[], T],
    *,
    paths: Iterable[str | os.PathLike[str]] = (),
    debounce_ms: int = 300,
) -> ConfigWatcher[T]:
    """A ConfigWatcher holding ``load()``, re-run when any of `paths` changes."""
    return ConfigWatcher(load, paths=paths, debounce_ms=debounce_ms)
