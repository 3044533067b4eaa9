"""The one way tests wait for something that happens elsewhere (a server, a watch, a reconcile).

`eventually` polls an async or plain probe until it returns something truthy,
`wait_for` does the same from synchronous tests; both back off from 20 ms to
half a second and fail with `what` and the last value seen. Waiting is for
what another process or task does: a test never sleeps to let a race settle.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

DEADLINE = 30.0
"""Seconds before a wait gives up: generous, since it only bounds a failure's report."""


def _pauses(timeout: float) -> Iterator[float]:
    """The pauses between probes until `timeout` has passed (none left: give up)."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while (left := deadline - time.monotonic()) > 0:
        yield min(pause, left)
        pause = min(pause * 1.5, 0.5)


def _timed_out(what: str, timeout: float, last: object) -> AssertionError:
    return AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


async def eventually(
    what: str,
    probe: Callable[[], Awaitable[Any] | Any],
    *,
    timeout: float = DEADLINE,  # noqa: ASYNC109
) -> Any:
    """Poll `probe` (awaited when it is async) until it returns something truthy; return it."""
    last: Any = None
    for pause in _pauses(timeout):
        last = probe()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(pause)
    raise _timed_out(what, timeout, last)


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = DEADLINE) -> T:
    """`eventually` for synchronous tests: poll `probe` until it returns something truthy."""
    last: Any = None
    for pause in _pauses(timeout):
        last = probe()
        if last:
            found: T = last
            return found
        time.sleep(pause)
    raise _timed_out(what, timeout, last)
