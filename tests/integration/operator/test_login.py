"""The operator logs in with an exec credential plugin, as on EKS, GKE, AKS or with OIDC.

Its kubeconfig's user is the test server's exec plugin (tests/servers/kube.py),
which answers an ExecCredential with a client certificate of the operator's
RBAC-limited user: kopf logs in through `llm_infra.kube` (our login handler), and
the operator's own client does too; both reach the API server and a ConfigSource
is reconciled to Ready.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.operator.support import apply, inline_configsource, wait_condition
from tests.servers.kube import ExecPlugin, KubeServer
from tests.servers.operator import OPERATOR_USER, OperatorProcess

pytestmark = pytest.mark.kube


@pytest.fixture(scope="module")
def plugin(kube: KubeServer, operator_kubeconfig: Path) -> ExecPlugin:
    """The operator user's exec plugin (operator_kubeconfig: CRDs and RBAC installed)."""
    return kube.exec_kubeconfig_for(OPERATOR_USER)


@pytest.fixture(scope="module")
def operator_login(plugin: ExecPlugin) -> Path:
    return plugin.kubeconfig


def test_an_exec_plugin_kubeconfig_reaches_the_api_server_from_the_operator(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, plugin: ExecPlugin
) -> None:
    apply(kube, op_namespace, inline_configsource("via-exec", model="small"))
    ready = wait_condition(kube, op_namespace, "cfgsrc", "via-exec")
    assert ready["status"]["version"] == 1
    # kopf's login and the operator's own client each ran the plugin.
    assert len(plugin.calls) >= 2
    assert "BEGIN" not in operator.log()  # no key material in the logs
