"""The llm-infra operator as a real process (`llm-infra operator`), the way a pod runs it.

It authenticates with a kubeconfig of a user bound only to the generated RBAC
(charts/llm-infra/files/operator-rbac.yaml), so every test also checks that the
operator needs no more rights than it declares. Ready when /healthz answers.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import yaml

from tests.servers._process import ManagedServer, ServerProcess, free_port
from tests.servers.kube import KubeServer

REPO = Path(__file__).resolve().parents[2]
RBAC = REPO / "charts" / "llm-infra" / "files" / "operator-rbac.yaml"
OPERATOR_USER = "llm-infra-operator"


def install_rbac(kube: KubeServer) -> Path:
    """Apply the generated ClusterRoles, bind the cluster-wide one; the user's kubeconfig."""
    kube.kubectl("apply", "-f", str(RBAC))
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "llm-infra-operator"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "llm-infra-operator",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OPERATOR_USER}
        ],
    }
    manifest = kube.workdir / "operator-binding.yaml"
    manifest.write_text(yaml.safe_dump(binding))
    kube.kubectl("apply", "-f", str(manifest))
    return kube.kubeconfig_for(OPERATOR_USER)


def grant_namespace(kube: KubeServer, namespace: str) -> None:
    """The per-namespace RoleBinding a cluster admin (or the chart) creates for each namespace."""
    kube.kubectl(
        "create", "rolebinding", "llm-infra-operator",
        "--clusterrole=llm-infra-operator-namespace",
        f"--user={OPERATOR_USER}",
        "-n", namespace,
    )  # fmt: skip


class OperatorProcess(ManagedServer):
    """`llm-infra operator -n <ns>...` with settings passed as LLM_INFRA_OPERATOR_* variables.

    `python` runs it from another environment (the benchmark uses one with only the
    operator's dependencies, as its container has).
    """

    name = "llm-infra-operator"

    def __init__(
        self,
        workdir: Path,
        kubeconfig: Path,
        namespaces: Sequence[str],
        settings: Mapping[str, str] | None = None,
        python: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.health_url = f"http://127.0.0.1:{self.health_port}/healthz"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.log_path = workdir / "operator.log"
        env = {
            "KUBECONFIG": os.fspath(kubeconfig),
            "LLM_INFRA_OPERATOR_HEALTH_HOST": "127.0.0.1",
            "LLM_INFRA_OPERATOR_HEALTH_PORT": str(self.health_port),
            "LLM_INFRA_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "LLM_INFRA_OPERATOR_LOG_FORMAT": "json",
            **(settings or {}),
        }
        argv = [str(python or sys.executable), "-m", "llm_infra.cli", "operator"]
        for namespace in namespaces:
            argv += ["-n", namespace]
        self._process = ServerProcess(self.name, argv, log_path=self.log_path, env=env)

    def _healthy(self) -> bool:
        return httpx.get(self.health_url, timeout=1.0).status_code == 200

    def start(self) -> OperatorProcess:
        self._process.launch(self._healthy, what="/healthz", timeout=60)
        return self

    def stop(self) -> None:
        self._process.stop()

    def kill(self) -> None:
        """SIGKILL, as an OOM kill or a node loss would: no cleanup runs."""
        if self._process.pid is not None:
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.stop(timeout=5)

    def metric(self, prefix: str) -> float:
        """The sum of the operator's Prometheus samples whose line starts with `prefix`."""
        text = httpx.get(self.metrics_url, timeout=5.0).text
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self) -> str:
        return self._process.log_tail()
