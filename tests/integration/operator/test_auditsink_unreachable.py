"""AuditSink with NATS out of reach: the operator of this module dials a port nobody listens on.

The session's NATS server is shared, so it is never stopped; this module's
operator gets a closed port instead (operator_settings, overridden here).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.operator.support import apply, events, wait_condition, wait_for
from tests.servers._process import free_port
from tests.servers.kube import KubeServer
from tests.servers.operator import OperatorProcess


@pytest.fixture(scope="module")
def closed_nats_url() -> str:
    return f"nats://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def operator_settings(operator_settings: dict[str, str], closed_nats_url: str) -> dict[str, str]:
    return operator_settings | {"LLM_INFRA_OPERATOR_NATS_URL": closed_nats_url}


def audit_sink(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "infra.llmdevops.io/v1alpha1",
        "kind": "AuditSink",
        "metadata": {"name": name},
        "spec": {"sinks": [{"name": "local", "file": {"path": "/var/log/audit.jsonl"}}]},
    }


def test_unreachable_nats_is_reported_and_retried(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, closed_nats_url: str
) -> None:
    apply(kube, op_namespace, audit_sink("unreachable"))
    obj = wait_condition(
        kube, op_namespace, "asink", "unreachable", status="False", reason="StreamUnreachable"
    )
    stream_ready = next(c for c in obj["status"]["conditions"] if c["type"] == "StreamReady")
    assert (stream_ready["status"], stream_ready["reason"]) == ("False", "StreamUnreachable")
    message = stream_ready["message"]
    assert closed_nats_url in message
    assert "JetStream" in message
    assert "natsUrl" in message
    assert "streamName" not in obj["status"]  # nothing was created, nothing is claimed
    warnings = [e for e in events(kube, op_namespace, "unreachable") if e["type"] == "Warning"]
    assert any(e["reason"] == "StreamUnreachable" for e in warnings)
    # Retried with backoff (at most 3 s apart here), not left until the next edit.
    retried = 'llm_infra_operator_reconciles_total{kind="AuditSink",result="retry"}'
    wait_for("a second retry", lambda: operator.metric(retried) >= 2)
