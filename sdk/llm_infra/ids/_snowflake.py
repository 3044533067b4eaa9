"""Snowflake ids: 64-bit integers from a millisecond clock, a worker number and a sequence.

Layout, high bit to low: 1 unused sign bit, 41 bits of milliseconds since `epoch_ms`,
10 bits of worker id, 12 bits of sequence. The clock and the sleep are injected so the
tests can drive them; the lock makes one generator safe to share between threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final, NamedTuple

from llm_infra import errors

TIMESTAMP_BITS: Final = 41
WORKER_BITS: Final = 10
SEQUENCE_BITS: Final = 12
MAX_TIMESTAMP: Final = (1 << TIMESTAMP_BITS) - 1
MAX_WORKER: Final = (1 << WORKER_BITS) - 1
MAX_SEQUENCE: Final = (1 << SEQUENCE_BITS) - 1
MAX_SNOWFLAKE: Final = (1 << (TIMESTAMP_BITS + WORKER_BITS + SEQUENCE_BITS)) - 1

SNOWFLAKE_EPOCH_MS: Final = 1_288_834_974_657
"""Twitter's epoch (2010-11-04T01:42:54.657Z), so common snowflake decoders read our ids."""

DEFAULT_MAX_ROLLBACK_MS: Final = 10
"""Clock steps back this small (NTP slews, VM migrations) are waited out, not refused."""


class SnowflakeParts(NamedTuple):
    """A decoded snowflake: absolute Unix milliseconds, worker id and sequence number."""

    timestamp_ms: int
    worker: int
    sequence: int


def _check_range(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise errors.ValidationError(
            f"{field} must be an integer from {low} to {high}, got {value!r}",
            field=field,
            expected=f"integer in [{low}, {high}]",
            actual=repr(value),
        )


def _nanoseconds() -> int:
    return time.time_ns()


class Snowflake:
    """Generator of snowflake ids for one worker; ids increase strictly, also across threads.

    Within a millisecond the 12-bit sequence counts up; when it runs out the generator sleeps
    until the next millisecond. If the clock steps back by at most `max_rollback_ms` it waits
    until the clock is past the last id again; a bigger step back raises `errors.ConfigError`
    (key ``clock``), since it means the host clock is wrong and waiting could take arbitrarily
    long — the caller decides whether to retry, alert or fail. Bad arguments and undecodable
    ids raise `errors.ValidationError`.
    """

    def __init__(
        self,
        worker_id: int,
        *,
        epoch_ms: int = SNOWFLAKE_EPOCH_MS,
        clock: Callable[[], int] = _nanoseconds,
        sleep: Callable[[float], None] = time.sleep,
        max_rollback_ms: int = DEFAULT_MAX_ROLLBACK_MS,
    ) -> None:
        """Configure the generator; `clock` returns Unix nanoseconds, `sleep` takes seconds."""
        _check_range("worker_id", worker_id, 0, MAX_WORKER)
        _check_range("epoch_ms", epoch_ms, 0, MAX_TIMESTAMP * 2)
        _check_range("max_rollback_ms", max_rollback_ms, 0, 60_000)
        self.worker_id = worker_id
        self.epoch_ms = epoch_ms
        self.max_rollback_ms = max_rollback_ms
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def __repr__(self) -> str:
        return f"Snowflake(worker_id={self.worker_id}, epoch_ms={self.epoch_ms})"

    def next_int(self) -> int:
        """Return the next id as an integer."""
        with self._lock:
            now = self._now_ms()
            if now < self._last_ms:
                behind = self._last_ms - now
                if behind > self.max_rollback_ms:
                    raise errors.ConfigError(
                        f"clock moved back {behind} ms, more than max_rollback_ms="
                        f"{self.max_rollback_ms}; refusing to issue ids that could repeat",
                        key="clock",
                    )
                now = self._wait_until(self._last_ms)
            if now == self._last_ms:
                if self._sequence == MAX_SEQUENCE:
                    now = self._wait_until(self._last_ms + 1)
                    self._sequence = 0
                else:
                    self._sequence += 1
            else:
                self._sequence = 0
            self._last_ms = now
            return self.compose(now, self.worker_id, self._sequence, epoch_ms=self.epoch_ms)

    def new(self) -> str:
        """Return the next id as decimal text (the `IdGenerator` protocol)."""
        return str(self.next_int())

    @staticmethod
    def compose(
        timestamp_ms: int, worker: int, sequence: int, *, epoch_ms: int = SNOWFLAKE_EPOCH_MS
    ) -> int:
        """Build the id for Unix milliseconds `timestamp_ms`, `worker` and `sequence`."""
        _check_range("timestamp_ms", timestamp_ms, epoch_ms, epoch_ms + MAX_TIMESTAMP)
        _check_range("worker", worker, 0, MAX_WORKER)
        _check_range("sequence", sequence, 0, MAX_SEQUENCE)
        return (
            (timestamp_ms - epoch_ms) << (WORKER_BITS + SEQUENCE_BITS)
            | worker << SEQUENCE_BITS
            | sequence
        )

    @staticmethod
    def parse(value: int | str, *, epoch_ms: int = SNOWFLAKE_EPOCH_MS) -> SnowflakeParts:
        """Decode an id (integer or decimal text) made with `epoch_ms` into its parts."""
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.isascii() and value.isdigit():
            number = int(value)
        if number is None or not 0 <= number <= MAX_SNOWFLAKE:
            raise errors.ValidationError(
                f"not a snowflake id: {value!r}",
                field="snowflake",
                expected=f"integer or decimal text in [0, {MAX_SNOWFLAKE}]",
                actual=repr(value),
            )
        return SnowflakeParts(
            timestamp_ms=(number >> (WORKER_BITS + SEQUENCE_BITS)) + epoch_ms,
            worker=(number >> SEQUENCE_BITS) & MAX_WORKER,
            sequence=number & MAX_SEQUENCE,
        )

    def _now_ms(self) -> int:
        now = self._clock() // 1_000_000
        if not self.epoch_ms <= now <= self.epoch_ms + MAX_TIMESTAMP:
            raise errors.ConfigError(
                f"clock reads {now} ms, outside the 41-bit range of epoch_ms={self.epoch_ms}",
                key="clock",
            )
        return now

    def _wait_until(self, target_ms: int) -> int:
        # Sleep rather than spin: an injected sleep advances a fake clock in the tests.
        while (now := self._now_ms()) < target_ms:
            self._sleep((target_ms - now) / 1000)
        return now
