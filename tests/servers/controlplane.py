"""The control plane as a real process: `llm-infra up --port P --data DIR`, ready on /readyz.

Without `resources` it applies no folder (`--no-resources`, the in-cluster role); without
`nats_url` it starts its own nats-server child, as a user's `llm-infra up` does; `env` adds
settings (LLM_INFRA_KUBE_FEEDS=true: fed from the API server, as in a cluster).
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.servers._process import ManagedServer, ServerProcess, free_port


class ControlPlaneProcess(ManagedServer):
    """`llm-infra up` on a free loopback port with its data in `workdir/data`."""

    name = "llm-infra up"

    def __init__(
        self,
        workdir: Path,
        data: Path | None = None,
        *,
        resources: Path | None = None,
        nats_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.data = data or workdir / "data"
        self.resources = resources
        self.nats_url = nats_url
        self.env = dict(env or {})
        """Extra environment: LLM_INFRA_KUBE_FEEDS and friends for the in-cluster role."""
        self.token: str | None = None
        """The admin API key `llm-infra up` printed on its first start."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = workdir / "controlplane.log"
        self._process = self._new_process()

    def _new_process(self) -> ServerProcess:
        command = Path(sys.executable).parent / "llm-infra"
        argv: list[str | Path] = [command, "up", "--port", str(self.port), "--data", self.data]
        argv += ["--resources", self.resources] if self.resources else ["--no-resources"]
        if self.nats_url:
            argv += ["--nats-url", self.nats_url]
        return ServerProcess(self.name, argv, log_path=self._log, env=self.env)

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200

    def start(self) -> ControlPlaneProcess:
        self._process.launch(self._ready, what="/readyz", timeout=30)
        if self.token is None:  # printed once, on the first start with this data dir
            found = re.search(r"admin key: (llmi_\S+)", self._log.read_text(errors="replace"))
            self.token = found.group(1) if found else None
        return self

    def interrupt(self) -> int | None:
        """Ctrl-C, as a user stops `llm-infra up`; the exit code (0: a clean stop)."""
        return self._process.stop(sig=signal.SIGINT)

    @property
    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def stop(self) -> None:
        # A clean stop runs lifespan shutdown, which flushes and closes the shards; uvicorn
        # re-raises SIGTERM after it, hence -SIGTERM.
        code = self._process.stop()
        if code not in (None, 0, -signal.SIGTERM):
            raise RuntimeError(f"{self.name} exited with {code}\n{self.log_tail()}")

    def restart(self) -> None:
        self.stop()
        self._process = self._new_process()
        self.start()

    def log_tail(self) -> str:
        return self._process.log_tail()
