"""Redis (for Redis Streams) from Debian's redis-server, on a free port, data in a temp dir.

hack/ensure-redis.sh installs the package when `make test` runs on a machine
without it; readiness is a PING answered with PONG.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from tests.servers import binaries
from tests.servers._process import ManagedServer, ServerProcess, free_port


def _pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(16).startswith(b"+PONG")


class RedisServer(ManagedServer):
    """`redis-server` bound to 127.0.0.1 with no persistence; `url` is what redis.asyncio takes."""

    name = "redis-server"

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise binaries.MissingBinaryError(
                "redis-server is missing: run `make test` (hack/ensure-redis.sh installs Debian's)"
            )
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv: list[str | os.PathLike[str]] = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(workdir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        self._process = ServerProcess(self.name, argv, log_path=workdir / "redis.log")

    def start(self) -> RedisServer:
        self._process.launch(lambda: _pong(self.port), what="PONG", timeout=30)
        return self

    def stop(self) -> None:
        self._process.stop()

    def log_tail(self) -> str:
        return self._process.log_tail()
