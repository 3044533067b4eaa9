"""The operator's telemetry: a span per reconcile, exported over real OTLP/HTTP.

The operator process gets its `otel` settings as LLM_INFRA_OPERATOR_OTEL__*
variables, as the chart sets them; the receiver on loopback (tests/servers/otlp.py)
decodes what arrives.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.operator.support import apply, inline_configsource, wait_condition
from tests.servers.kube import KubeServer
from tests.servers.operator import OperatorProcess
from tests.servers.otlp import Receiver, Span, attributes
from tests.support import wait_for

pytestmark = pytest.mark.kube


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture(scope="module")
def operator_settings(operator_settings: dict[str, str], receiver: Receiver) -> dict[str, str]:
    return {
        **operator_settings,
        "LLM_INFRA_OPERATOR_OTEL__EXPORTER": "otlp-http",
        "LLM_INFRA_OPERATOR_OTEL__ENDPOINT": receiver.url,
        "LLM_INFRA_OPERATOR_OTEL__METRICS_ENABLED": "false",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export each batch within 0.2 s
    }


def test_each_reconcile_is_a_span(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, receiver: Receiver
) -> None:
    apply(kube, op_namespace, inline_configsource("traced", model="small"))
    wait_condition(kube, op_namespace, "cfgsrc", "traced")

    def reconciles() -> list[tuple[dict[str, object], Span]]:
        return [(r, s) for r, s in receiver.spans() if s.name == "reconcile ConfigSource"]

    resource, span = wait_for("a reconcile span", reconciles)[0]
    assert resource["service.name"] == "llm-infra-operator"
    span_attributes = attributes(list(span.attributes))
    assert span_attributes["k8s.namespace.name"] == op_namespace
    assert span_attributes["llm_infra.resource.name"] == "traced"
    assert span_attributes["llm_infra.reconcile.result"] == "ok"
