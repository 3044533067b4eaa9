"""Fixtures of the operator tests: CRDs, the operator's RBAC, a namespace, the running operator.

Each test module gets its own namespace and its own operator process watching
only that namespace, so modules cannot disturb each other, and a test may kill
and restart its operator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_infra.api import v1alpha1
from tests.servers.controlplane import ControlPlaneProcess
from tests.servers.kube import KubeServer
from tests.servers.operator import OperatorProcess, grant_namespace, install_rbac

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def operator_kubeconfig(kube: KubeServer) -> Path:
    """CRDs installed, the generated RBAC applied; a kubeconfig of the operator's user."""
    kube.install_crds(REPO / "crds", *(f"crd/{kind.crd.crd_name}" for kind in v1alpha1.KINDS))
    return install_rbac(kube)


@pytest.fixture(scope="module")
def op_namespace(kube: KubeServer, operator_kubeconfig: Path) -> str:
    """A namespace for one module, with the operator's per-namespace RoleBinding."""
    name = f"op-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    grant_namespace(kube, name)
    return name


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    """The module's control plane, owner of the embedded collections (`llm-infra up`)."""
    with ControlPlaneProcess(tmp_path_factory.mktemp("controlplane")) as process:
        yield process


@pytest.fixture(scope="module")
def operator_settings(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, control_plane: ControlPlaneProcess
) -> dict[str, str]:
    """Settings of the module's operator; a module overrides this fixture to change them."""
    return {
        "LLM_INFRA_OPERATOR_NATS_URL": nats_url,
        "LLM_INFRA_OPERATOR_CONTROL_PLANE_URL": control_plane.url,
        "LLM_INFRA_OPERATOR_CONTROL_PLANE_TOKEN": control_plane.token or "",
        "LLM_INFRA_OPERATOR_QDRANT_LOCATION": str(tmp_path_factory.mktemp("qdrant-local")),
        "LLM_INFRA_OPERATOR_RESYNC_INTERVAL": "3",
        "LLM_INFRA_OPERATOR_RETRY_INITIAL": "0.5",
        "LLM_INFRA_OPERATOR_RETRY_MAX": "3",
    }


@pytest.fixture(scope="module")
def operator_login(operator_kubeconfig: Path) -> Path:
    """The kubeconfig the module's operator logs in with; a module overrides it to change it."""
    return operator_kubeconfig


@pytest.fixture(scope="module")
def operator(
    tmp_path_factory: pytest.TempPathFactory,
    operator_login: Path,
    op_namespace: str,
    operator_settings: dict[str, str],
) -> Iterator[OperatorProcess]:
    """`llm-infra operator -n <module namespace>`, running as the RBAC-limited user."""
    process = OperatorProcess(
        tmp_path_factory.mktemp("operator"),
        operator_login,
        [op_namespace],
        operator_settings,
    )
    with process:
        yield process
