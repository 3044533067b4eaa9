"""The control plane as a real process: `llm-infra up --port P --data DIR`, ready on /readyz.

Without `resources` it applies no folder (`--no-resources`, the in-cluster role); without
`nats_url` it starts its own nats-server child, as a user's `llm-infra up` does; `env` adds
settings (LLM_INFRA_KUBE_FEEDS=true: fed from the API server, as in a cluster).

`grant_controlplane_namespace` binds the generated RBAC (charts/llm-infra/files/
controlplane-rbac.yaml) to a user and hands over its kubeconfig, so a test's feeds run with
exactly the rights the chart grants: a missing rule fails the test.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from llm_infra_controlplane.feeds import rbac
from tests.servers._process import ManagedServer, ServerProcess, free_port
from tests.servers.kube import KubeServer

REPO = Path(__file__).resolve().parents[2]
_WITH_OPEN_FILES = (
    "import os, resource, sys; n = int(sys.argv[1]);"
    " resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)
RBAC = REPO / "charts" / "llm-infra" / "files" / "controlplane-rbac.yaml"
CONTROLPLANE_USER = "llm-infra-controlplane"
GRANT_DEADLINE = 15.0


def grant_controlplane_namespace(kube: KubeServer, namespace: str) -> Path:
    """The namespaced role bound in `namespace` only, to a user of its own; its kubeconfig.

    A user per namespace: its control plane can read nothing outside `namespace`.
    """
    user = controlplane_user(namespace)
    kube.kubectl("apply", "-f", str(RBAC))  # idempotent: the roles may not be installed yet
    _apply_binding(kube, "RoleBinding", rbac.CLUSTER_ROLE, rbac.NAMESPACE_ROLE, user, namespace)
    _wait_until_allowed(kube, user, f"--namespace={namespace}")
    return kube.kubeconfig_for(user)


def controlplane_user(namespace: str) -> str:
    """The user `grant_controlplane_namespace` binds in `namespace`."""
    return f"{CONTROLPLANE_USER}-in-{namespace}"


def _apply_binding(
    kube: KubeServer, kind: str, name: str, role: str, user: str, namespace: str | None = None
) -> None:
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    binding: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    manifest = kube.workdir / f"controlplane-{kind.lower()}-{namespace or 'cluster'}.yaml"
    manifest.write_text(yaml.safe_dump(binding))
    kube.kubectl("apply", "-f", str(manifest))


def _wait_until_allowed(kube: KubeServer, user: str, scope: str) -> None:
    """Until the API server's RBAC cache holds the binding, so the first list is not refused."""
    deadline = time.monotonic() + GRANT_DEADLINE
    while True:
        try:
            kube.kubectl("auth", "can-i", "get", "secrets", f"--as={user}", scope)
            return
        except subprocess.CalledProcessError as exc:  # "no": exit code 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{user} not allowed within {GRANT_DEADLINE}s") from exc
            time.sleep(0.05)


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
        open_files: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.data = data or workdir / "data"
        self.resources = resources
        self.nats_url = nats_url
        self.env = dict(env or {})
        """Extra environment: LLM_INFRA_KUBE_FEEDS and friends for the in-cluster role."""
        self.open_files = open_files
        """A hard open-files limit for the process (RLIMIT_NOFILE), as a small host sets it."""
        self.token: str | None = None
        """The admin API key `llm-infra up` printed on its first start."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = workdir / "controlplane.log"
        self._process = self._new_process()

    def _new_process(self) -> ServerProcess:
        command = Path(sys.executable).parent / "llm-infra"
        argv: list[str | Path] = [command, "up", "--port", str(self.port), "--data", self.data]
        if self.open_files is not None:
            # Set in the child before it runs `llm-infra`, soft and hard alike, so the server
            # cannot lift it.
            argv = [sys.executable, "-c", _WITH_OPEN_FILES, str(self.open_files), *argv]
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
