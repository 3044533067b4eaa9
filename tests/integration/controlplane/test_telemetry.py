"""The control plane's telemetry: a server span per API request, exported over real OTLP/HTTP.

Configured as a Deployment configures it (the `otel` settings); the spans arrive
at an OTLP receiver on loopback (tests/servers/otlp.py), named by route template,
with the status code, and resource attributes from the settings. Probes are not
traced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llm_infra import otel
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from tests.servers.otlp import Receiver, Span, attributes
from tests.support import eventually


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


async def test_each_api_request_is_a_server_span(tmp_path: Path, receiver: Receiver) -> None:
    settings = Settings(
        data_dir=tmp_path,
        auth_mode="none",
        standalone_admin_key=False,
        otel=otel.OtelConfig(
            exporter="otlp-http",
            endpoint=receiver.url,
            environment="ci",
            resource_attributes={"k8s.namespace.name": "llm-infra"},
            metrics_enabled=False,
        ),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
            assert (await http.get("/v1/namespaces/team-a/configs/absent")).status_code == 404
            assert (await http.get("/v1/namespaces/team-a/configs")).status_code == 200
            assert (await http.get("/healthz")).status_code == 200
    # Shutting down flushed the batch: the spans are there now.
    spans = await eventually("two server spans", lambda: len(_server_spans(receiver)) >= 2)
    assert spans
    server_spans = _server_spans(receiver)
    names = sorted(span.name for _, span in server_spans)
    assert names == [
        "GET /v1/namespaces/{namespace}/configs",
        "GET /v1/namespaces/{namespace}/configs/{name}",
    ]
    resource, span = next(s for s in server_spans if s[1].name.endswith("{name}"))
    assert resource["service.name"] == "llm-infra-controlplane"
    assert resource["deployment.environment.name"] == "ci"
    assert resource["k8s.namespace.name"] == "llm-infra"
    span_attributes = attributes(list(span.attributes))
    assert span_attributes["http.route"] == "/v1/namespaces/{namespace}/configs/{name}"
    assert span_attributes["http.method"] == "GET"
    assert span_attributes["http.status_code"] == 404


def _server_spans(receiver: Receiver) -> list[tuple[dict[str, object], Span]]:
    return [(r, s) for r, s in receiver.spans() if s.kind == s.SPAN_KIND_SERVER]
