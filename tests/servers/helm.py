"""Helm, built from hack/tools/helm, pointed at the test API server.

Helm keeps a cache, a config and a data dir; all three live in the run's temp
dir so tests never read or write the user's own helm setup.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.servers import binaries


class Helm:
    """Runs `helm` with the test kubeconfig and private helm home dirs."""

    name = "helm"

    def __init__(self, workdir: Path, kubeconfig: Path) -> None:
        self.binary = binaries.kube_tool("helm")
        self.kubeconfig = kubeconfig
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HELM_CACHE_HOME": str(workdir / "cache"),
            "HELM_CONFIG_HOME": str(workdir / "config"),
            "HELM_DATA_HOME": str(workdir / "data"),
        }
        self._last = ""

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run helm; raises CalledProcessError (with stdout and stderr) on failure."""
        result = subprocess.run(
            [os.fspath(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        self._last = f"$ helm {' '.join(args)}\n{result.stdout}{result.stderr}"
        result.check_returncode()
        return result

    def log_tail(self) -> str:
        return f"--- helm, last command ---\n{self._last}"
