"""One real server process: start it, wait until it answers, keep its log, stop it.

Every module in tests/servers builds on `ServerProcess`. A process gets a free
port and a temp dir from its caller, writes stdout and stderr to one log file
(shown in the report of a failing test), and is tied to the test run: on Linux
it receives SIGTERM if pytest itself dies, so no server outlives the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

LOG_TAIL_LINES = 80
# What a readiness probe may raise while the server is still coming up.
_NOT_READY_YET = (OSError, ValueError, httpx.TransportError)


class ServerError(RuntimeError):
    """A test server did not start or became unhealthy; the message carries its log tail."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_pair() -> int:
    """Return a port P such that P and P+1 are both free (OpenBao binds both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise ServerError("no pair of adjacent free ports on 127.0.0.1")


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: the kernel sends SIGTERM to the server when the
    # pytest process exits for any reason, even SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class ServerProcess:
    """A child process with a log file, a readiness poll and a bounded stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [os.fspath(arg) for arg in argv]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # our signals reach it, the terminal's do not
                preexec_fn=_die_with_parent,  # only prctl: safe in the forked child
            )

    def launch(self, ready: Callable[[], bool], *, what: str, timeout: float = 60.0) -> float:
        """Start, then wait until `ready`; a server that never gets ready is stopped, not leaked."""
        self.start()
        try:
            return self.wait_until(ready, what=what, timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], *, what: str, timeout: float = 60.0) -> float:
        """Poll `ready` until it returns True; return the seconds it took.

        Fails at once, with the log, if the process exits; fails with the log
        after `timeout`. The poll interval starts at 10 ms and backs off to
        250 ms, so a fast server is seen fast and a slow one is not hammered.
        """
        start = time.monotonic()
        deadline = start + timeout
        interval = 0.01
        while True:
            if not self.running():
                code = self._proc.returncode if self._proc else None
                raise ServerError(
                    f"{self.name} exited with {code} before {what}\n{self.log_tail()}"
                )
            with contextlib.suppress(*_NOT_READY_YET):
                if ready():
                    return time.monotonic() - start
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.name}: no {what} within {timeout:.0f}s\n{self.log_tail()}"
                )
            time.sleep(interval)
            interval = min(interval * 1.5, 0.25)

    def stop(self, timeout: float = 15.0, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """`sig` (SIGTERM; SIGINT is Ctrl-C), then SIGKILL after `timeout`; the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"[{self.name}: no log at {self.log_path}]"
        tail = text.splitlines()[-lines:]
        return f"--- {self.name} log ({self.log_path}), last {len(tail)} lines ---\n" + "\n".join(
            tail
        )


class ManagedServer(ABC):
    """What every server in tests/servers offers: start, stop, its log, and `with`."""

    name: str

    @abstractmethod
    def start(self) -> Self:
        """Start and return once the server answers its health check."""

    @abstractmethod
    def stop(self) -> None:
        """Stop, bounded in time; a stopped server may be started again."""

    @abstractmethod
    def log_tail(self) -> str:
        """The end of the server's log, for the report of a failing test."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
