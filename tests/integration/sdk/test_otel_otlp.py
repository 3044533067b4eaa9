"""init_otel exports over real OTLP/HTTP to a receiver on loopback, decoded with the OTLP protos.

The receiver is tests/servers/otlp.py's, which the services' telemetry tests use too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pydantic
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_infra import otel
from llm_infra.otel import genai
from tests.servers.otlp import Receiver, attributes


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def test_spans_and_metrics_reach_an_otlp_http_receiver(receiver: Receiver) -> None:
    config = otel.OtelConfig(
        service_name="otlp-it",
        environment="ci",
        exporter="otlp-http",
        endpoint=receiver.url,
        headers={"x-api-key": pydantic.SecretStr("k-123")},
        export_interval_s=60,
    )
    guard = otel.init_otel(config, set_global=False)
    with otel.llm_span("chat", "gpt-4o", "openai", tracer=guard.tracer(), temperature=0.1) as span:
        otel.record_llm_usage(
            span,
            input_tokens=11,
            output_tokens=7,
            model="gpt-4o",
            provider="openai",
            operation="chat",
            duration_s=0.25,
            finish_reasons=["stop"],
            meter=guard.meter(),
        )
    guard.shutdown()  # flushes the batch processor and the periodic reader

    trace_bodies = receiver.bodies("/v1/traces")
    assert trace_bodies, receiver.received
    request = ExportTraceServiceRequest.FromString(trace_bodies[0])
    (resource_spans,) = request.resource_spans
    resource = attributes(list(resource_spans.resource.attributes))
    assert resource["service.name"] == "otlp-it"
    assert resource["deployment.environment.name"] == "ci"
    assert resource_spans.schema_url == genai.SCHEMA_URL
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.scope.name == genai.INSTRUMENTATION_NAME
    assert scope_spans.schema_url == genai.SCHEMA_URL
    (exported,) = scope_spans.spans
    assert exported.name == "chat gpt-4o"
    assert exported.kind == exported.SPAN_KIND_CLIENT
    span_attributes = attributes(list(exported.attributes))
    assert span_attributes[genai.OPERATION_NAME] == "chat"
    assert span_attributes[genai.PROVIDER_NAME] == "openai"
    assert span_attributes[genai.REQUEST_MODEL] == "gpt-4o"
    assert span_attributes[genai.REQUEST_TEMPERATURE] == pytest.approx(0.1)
    assert span_attributes[genai.USAGE_INPUT_TOKENS] == 11
    assert span_attributes[genai.USAGE_OUTPUT_TOKENS] == 7
    assert span_attributes[genai.RESPONSE_FINISH_REASONS] == ["stop"]

    headers = next(h for p, h, _ in receiver.received if p == "/v1/traces")
    assert headers["x-api-key"] == "k-123"
    assert headers["content-type"] == "application/x-protobuf"

    metric_bodies = receiver.bodies("/v1/metrics")
    assert metric_bodies, receiver.received
    names = {
        metric.name
        for body in metric_bodies
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert {genai.METRIC_TOKEN_USAGE, genai.METRIC_OPERATION_DURATION} <= names
