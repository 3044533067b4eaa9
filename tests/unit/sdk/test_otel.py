"""llm_infra.otel against providers built here: no global provider is ever set."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
from opentelemetry import baggage, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from llm_infra import errors, otel
from llm_infra.otel import genai


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def tracer(spans: InMemorySpanExporter) -> Iterator[trace.Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider.get_tracer("test", schema_url=genai.SCHEMA_URL)
    provider.shutdown()


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def histogram_points(reader: InMemoryMetricReader, name: str) -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    points: list[HistogramDataPoint] = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    points.extend(p for p in metric.data.data_points)  # type: ignore[misc]
    return points


# -- llm_span ------------------------------------------------------------------------------------


def test_llm_span_names_kind_and_attributes(
    tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    with otel.llm_span(
        "chat",
        "gpt-4o",
        "openai",
        tracer=tracer,
        temperature=0.2,
        max_tokens=256,
        **{genai.RESPONSE_MODEL: "gpt-4o-2024-08-06"},
    ) as span:
        assert span.is_recording()
    finished = only_span(spans)
    assert finished.name == "chat gpt-4o"
    assert finished.kind is trace.SpanKind.CLIENT
    assert dict(finished.attributes or {}) == {
        genai.OPERATION_NAME: "chat",
        genai.PROVIDER_NAME: "openai",
        genai.REQUEST_MODEL: "gpt-4o",
        genai.REQUEST_TEMPERATURE: 0.2,
        genai.REQUEST_MAX_TOKENS: 256,
        genai.RESPONSE_MODEL: "gpt-4o-2024-08-06",
    }
    assert finished.status.status_code is trace.StatusCode.UNSET
    assert finished.instrumentation_scope is not None
    assert finished.instrumentation_scope.schema_url == genai.SCHEMA_URL


def test_llm_span_is_current_so_calls_inside_are_children(
    tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    with (
        otel.llm_span("chat", "m", "p", tracer=tracer) as parent,
        tracer.start_as_current_span("POST") as child,
    ):
        pass
    assert child.get_span_context().trace_id == parent.get_span_context().trace_id
    post = next(s for s in spans.get_finished_spans() if s.name == "POST")
    assert post.parent is not None
    assert post.parent.span_id == parent.get_span_context().span_id


def test_llm_span_records_an_infra_error_through_record_to_span(
    tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    with (
        pytest.raises(errors.RateLimited),
        otel.llm_span("chat", "gpt-4o", "openai", tracer=tracer),
    ):
        raise errors.RateLimited("slow down, token=hunter2")
    finished = only_span(spans)
    assert finished.status.status_code is trace.StatusCode.ERROR
    attributes = finished.attributes or {}
    assert attributes[genai.ERROR_TYPE] == errors.RateLimited.code
    assert attributes["llm_infra.error.retryable"] is True
    (event,) = finished.events
    assert event.name == "exception"
    assert "hunter2" not in str(dict(event.attributes or {}))


def test_llm_span_records_other_exceptions_with_their_type(
    tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(TimeoutError), otel.llm_span("embeddings", "e5", "local", tracer=tracer):
        raise TimeoutError("Authorization: Bearer sk-abcdef")
    finished = only_span(spans)
    assert finished.status.status_code is trace.StatusCode.ERROR
    assert (finished.attributes or {})[genai.ERROR_TYPE] == "TimeoutError"
    (event,) = finished.events
    assert "sk-abcdef" not in str(event.attributes)


def test_unsampled_llm_span_is_not_recorded(spans: InMemorySpanExporter) -> None:
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with otel.llm_span("chat", "m", "p", tracer=provider.get_tracer("t")) as span:
        assert not span.is_recording()
        otel.record_content(span, input_messages="hello", capture=True)
    provider.shutdown()
    assert spans.get_finished_spans() == ()


# -- record_llm_usage ----------------------------------------------------------------------------


def test_record_llm_usage_sets_span_usage_and_records_both_histograms(
    tracer: trace.Tracer,
    spans: InMemorySpanExporter,
    meter_provider: MeterProvider,
    reader: InMemoryMetricReader,
) -> None:
    meter = meter_provider.get_meter("test")
    with otel.llm_span("chat", "gpt-4o", "openai", tracer=tracer) as span:
        otel.record_llm_usage(
            span,
            input_tokens=120,
            output_tokens=30,
            model="gpt-4o",
            provider="openai",
            operation="chat",
            duration_s=0.5,
            finish_reasons=["stop"],
            meter=meter,
        )
    attributes = only_span(spans).attributes or {}
    assert attributes[genai.USAGE_INPUT_TOKENS] == 120
    assert attributes[genai.USAGE_OUTPUT_TOKENS] == 30
    assert tuple(attributes[genai.RESPONSE_FINISH_REASONS]) == ("stop",)  # type: ignore[arg-type]

    tokens = histogram_points(reader, genai.METRIC_TOKEN_USAGE)
    by_type = {p.attributes[genai.TOKEN_TYPE]: p for p in tokens if p.attributes}
    assert set(by_type) == {"input", "output"}
    assert (by_type["input"].sum, by_type["output"].sum) == (120, 30)
    assert all(p.count == 1 for p in tokens)
    common = {genai.OPERATION_NAME: "chat", genai.PROVIDER_NAME: "openai"}
    assert common.items() <= dict(by_type["input"].attributes or {}).items()
    assert list(by_type["input"].explicit_bounds) == list(genai.TOKEN_USAGE_BUCKETS)

    (duration,) = histogram_points(reader, genai.METRIC_OPERATION_DURATION)
    assert duration.sum == pytest.approx(0.5)
    assert dict(duration.attributes or {})[genai.REQUEST_MODEL] == "gpt-4o"
    assert genai.ERROR_TYPE not in (duration.attributes or {})


def test_metric_units(meter_provider: MeterProvider, reader: InMemoryMetricReader) -> None:
    usage: dict[str, Any] = {"model": "m", "provider": "p", "operation": "chat"}
    otel.record_llm_usage(
        None,
        input_tokens=1,
        output_tokens=2,
        duration_s=0.1,
        error_type="timeout",
        meter=meter_provider.get_meter("t"),
        **usage,
    )
    data = reader.get_metrics_data()
    assert data is not None
    units = {
        m.name: m.unit
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert units == {genai.METRIC_TOKEN_USAGE: "{token}", genai.METRIC_OPERATION_DURATION: "s"}
    (duration,) = histogram_points(reader, genai.METRIC_OPERATION_DURATION)
    assert (duration.attributes or {})[genai.ERROR_TYPE] == "timeout"


# -- content capture -----------------------------------------------------------------------------


def test_content_is_not_captured_by_default(
    tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    with otel.llm_span("chat", "m", "p", tracer=tracer) as span:
        otel.record_content(span, input_messages="my secret plan", output_messages="ok")
    assert genai.INPUT_MESSAGES not in (only_span(spans).attributes or {})


def test_captured_content_is_redacted(tracer: trace.Tracer, spans: InMemorySpanExporter) -> None:
    messages = [{"role": "user", "content": "use api_key=sk-live-123 please"}]
    with otel.llm_span("chat", "m", "p", tracer=tracer) as span:
        otel.record_content(span, input_messages=messages, output_messages="done", capture=True)
    attributes = only_span(spans).attributes or {}
    assert "sk-live-123" not in str(attributes[genai.INPUT_MESSAGES])
    assert "please" in str(attributes[genai.INPUT_MESSAGES])
    assert attributes[genai.OUTPUT_MESSAGES] == "done"


# -- propagation ---------------------------------------------------------------------------------


def test_inject_extract_round_trips_traceparent_and_baggage(tracer: trace.Tracer) -> None:
    headers: dict[str, str] = {}
    with (
        tracer.start_as_current_span("client") as span,
        otel.with_baggage(tenant="acme", run_id="run_1"),
    ):
        otel.inject(headers)
    sent = span.get_span_context()
    assert (
        headers["traceparent"]
        == f"00-{sent.trace_id:032x}-{sent.span_id:016x}-{sent.trace_flags:02x}"
    )
    assert set(headers["baggage"].split(",")) == {"tenant=acme", "run_id=run_1"}

    capitalised = {name.title(): value for name, value in headers.items()}
    ctx = otel.extract(capitalised)
    received = trace.get_current_span(ctx).get_span_context()
    assert received.is_remote
    assert received.trace_flags.sampled
    assert (received.trace_id, received.span_id) == (sent.trace_id, sent.span_id)
    assert baggage.get_all(ctx) == {"tenant": "acme", "run_id": "run_1"}


def test_with_baggage_is_scoped_to_the_block() -> None:
    with otel.with_baggage(tenant="acme"):
        assert baggage.get_baggage("tenant") == "acme"
    assert baggage.get_baggage("tenant") is None


# -- init_otel and the guard ---------------------------------------------------------------------


class FakeProvider:
    def __init__(self, name: str, calls: list[str], *, fail: bool = False) -> None:
        self.name, self.calls, self.fail = name, calls, fail

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.calls.append(f"flush {self.name}")
        return True

    def shutdown(self) -> None:
        self.calls.append(f"shutdown {self.name}")
        if self.fail:
            raise RuntimeError("exporter gone")


def test_guard_shuts_down_newest_first_once(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    providers = [
        ("tracer", FakeProvider("tracer", calls)),
        ("meter", FakeProvider("meter", calls, fail=True)),
        ("logger", FakeProvider("logger", calls)),
    ]
    with (
        caplog.at_level(logging.WARNING),
        otel.OtelGuard(providers, on_shutdown=[lambda: calls.append("unhook")]) as guard,
    ):
        pass
    guard.shutdown()
    assert calls == [
        "unhook",
        "flush logger",
        "shutdown logger",
        "flush meter",
        "shutdown meter",
        "flush tracer",
        "shutdown tracer",
    ]
    assert guard.closed
    assert "meter provider failed" in caplog.text


def test_init_otel_builds_local_providers(reader: InMemoryMetricReader) -> None:
    exporter = InMemorySpanExporter()
    config = otel.OtelConfig(
        service_name="svc", service_version="1.2", environment="test", sample_ratio=1.0
    )
    with otel.init_otel(
        config,
        set_global=False,
        span_processors=[SimpleSpanProcessor(exporter)],
        metric_readers=[reader],
    ) as guard:
        assert guard.tracer_provider is not None
        assert guard.tracer_provider is not trace.get_tracer_provider()
        assert guard.logger_provider is None  # logs are opt-in
        with otel.llm_span("chat", "m", "p", tracer=guard.tracer()) as span:
            otel.record_llm_usage(
                span,
                input_tokens=3,
                output_tokens=4,
                model="m",
                provider="p",
                operation="chat",
                duration_s=0.01,
                meter=guard.meter(),
            )
        assert histogram_points(reader, genai.METRIC_TOKEN_USAGE)
    finished = only_span(exporter)
    assert finished.resource.attributes["service.name"] == "svc"
    assert finished.resource.attributes["service.version"] == "1.2"
    assert finished.resource.attributes["deployment.environment.name"] == "test"
    assert finished.resource.schema_url == genai.SCHEMA_URL
    assert guard.closed
    guard.shutdown()  # idempotent: the providers would warn on a second shutdown


def test_init_otel_with_ratio_zero_records_nothing() -> None:
    exporter = InMemorySpanExporter()
    config = otel.OtelConfig(sample_ratio=0.0, metrics_enabled=False)
    with otel.init_otel(
        config, set_global=False, span_processors=[SimpleSpanProcessor(exporter)]
    ) as guard:
        with otel.llm_span("chat", "m", "p", tracer=guard.tracer()) as span:
            assert not span.is_recording()
        assert guard.meter_provider is None
    assert exporter.get_finished_spans() == ()


def test_init_otel_bridges_logging_until_shutdown() -> None:
    config = otel.OtelConfig(logs_enabled=True, traces_enabled=False, metrics_enabled=False)
    root = logging.getLogger()
    before = list(root.handlers)
    with otel.init_otel(config, set_global=False) as guard:
        assert guard.logger_provider is not None
        assert len(root.handlers) == len(before) + 1
    assert root.handlers == before


# -- OtelConfig ----------------------------------------------------------------------------------


def test_from_env_reads_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "router")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=ignored,service.version=2.0,deployment.environment.name=prod,team=a%20b",
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "5000")
    config = otel.OtelConfig.from_env()
    assert config.service_name == "router"
    assert config.service_version == "2.0"
    assert config.environment == "prod"
    assert config.exporter == "otlp-grpc"
    assert config.endpoint == "http://collector:4317"
    assert config.sample_ratio == 0.25
    assert config.resource_attributes == {"team": "a b"}
    assert config.headers["authorization"].get_secret_value() == "Bearer s3cret"
    assert config.export_interval_s == 5.0
    assert not config.capture_content


def test_from_env_defaults_and_http_when_only_an_endpoint() -> None:
    assert otel.OtelConfig.from_env({}) == otel.OtelConfig()
    assert otel.OtelConfig().exporter == "none"
    config = otel.OtelConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert config.exporter == "otlp-http"
    disabled = otel.OtelConfig.from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert (disabled.exporter, disabled.traces_enabled, disabled.metrics_enabled) == (
        "none",
        False,
        False,
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ("OTEL_RESOURCE_ATTRIBUTES", "no-equals-sign"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "Bearer-token-without-name"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "-1"),
        ("OTEL_SDK_DISABLED", "maybe"),
    ],
)
def test_from_env_rejects_malformed_values_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        otel.OtelConfig.from_env({key: value})
    assert caught.value.key == key
    assert "Bearer-token" not in str(caught.value)


def test_headers_never_appear_in_repr_or_dumps() -> None:
    config = otel.OtelConfig(headers={"authorization": pydantic.SecretStr("Bearer s3cret")})
    for text in (repr(config), str(config), config.model_dump_json(), str(config.model_dump())):
        assert "s3cret" not in text


def test_config_validates_its_ranges() -> None:
    with pytest.raises(pydantic.ValidationError):
        otel.OtelConfig(sample_ratio=2)
    with pytest.raises(pydantic.ValidationError):
        otel.OtelConfig(exporter="zipkin")


def test_public_names_are_complete() -> None:
    public = {name for name in vars(otel) if not name.startswith("_")}
    assert public - {"annotations"} == set(otel.__all__)
    assert all(hasattr(otel, name) for name in otel.__all__)


@pytest.mark.parametrize("exporter", ["otlp-grpc", "otlp-http", "console", "none"])
def test_init_otel_builds_every_exporter(exporter: otel.Exporter) -> None:
    config = otel.OtelConfig(exporter=exporter, endpoint="http://127.0.0.1:9", logs_enabled=True)
    guard = otel.init_otel(config, set_global=False)
    assert guard.tracer_provider is not None
    assert guard.meter_provider is not None
    assert guard.logger_provider is not None
    guard.shutdown()  # nothing recorded, so nothing is sent to the closed port


def test_a_service_names_itself_unless_the_config_did() -> None:
    assert otel.OtelConfig().named("llm-infra-operator").service_name == "llm-infra-operator"
    given = otel.OtelConfig.from_env({"OTEL_SERVICE_NAME": "ops-eu"})
    assert given.named("llm-infra-operator").service_name == "ops-eu"
