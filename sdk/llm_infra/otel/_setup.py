"""`init_otel` builds the tracer, meter and logger providers; `OtelGuard` flushes and stops them.

Exporter modules are imported only for the exporter chosen (the gRPC one pulls
in grpcio). OpenTelemetry lets a process set each global provider once; a
second `init_otel(set_global=True)` therefore raises instead of silently
exporting to the first one's pipeline.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk import resources
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader as _PeriodicReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.version import __version__ as _sdk_version

from llm_infra import errors
from llm_infra.otel import genai
from llm_infra.otel._config import OtelConfig

if TYPE_CHECKING:
    from collections.abc import Callable

_log = logging.getLogger(__name__)

_DEFAULT_ENDPOINTS = {"otlp-http": "http://localhost:4318", "otlp-grpc": "http://localhost:4317"}


class _Provider(Protocol):
    def force_flush(self, timeout_millis: int = ...) -> bool: ...

    def shutdown(self) -> None: ...


class OtelGuard:
    """Owns what `init_otel` built; `shutdown` (or leaving the `with`) flushes and stops it.

    Providers stop in reverse order of creation, so the log bridge goes first
    and traces last: whatever the later stages log or measure while stopping
    still has somewhere to go. Shutting down twice does nothing.
    """

    def __init__(
        self,
        providers: Sequence[tuple[str, _Provider]],
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        logger_provider: LoggerProvider | None = None,
        on_shutdown: Sequence[Callable[[], None]] = (),
        flush_timeout_ms: int = 10_000,
    ) -> None:
        self._providers = list(providers)
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logger_provider = logger_provider
        self._on_shutdown = list(on_shutdown)
        self._flush_timeout_ms = flush_timeout_ms
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def tracer(self, name: str = genai.INSTRUMENTATION_NAME) -> trace.Tracer:
        """A tracer of this guard's provider (or the global one when traces are off)."""
        provider = self.tracer_provider or trace.get_tracer_provider()
        return provider.get_tracer(name, schema_url=genai.SCHEMA_URL)

    def meter(self, name: str = genai.INSTRUMENTATION_NAME) -> metrics.Meter:
        """A meter of this guard's provider (or the global one when metrics are off)."""
        provider = self.meter_provider or metrics.get_meter_provider()
        return provider.get_meter(name, schema_url=genai.SCHEMA_URL)

    def force_flush(self) -> None:
        for _, provider in self._providers:
            provider.force_flush(self._flush_timeout_ms)

    def shutdown(self) -> None:
        """Flush and stop every provider, newest first; idempotent and thread-safe."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for hook in reversed(self._on_shutdown):
            hook()
        for name, provider in reversed(self._providers):
            # One failing exporter must not keep the others from flushing.
            try:
                provider.force_flush(self._flush_timeout_ms)
                provider.shutdown()
            except Exception:  # noqa: BLE001 - shutdown is best effort by design
                _log.warning("shutting down the %s provider failed", name, exc_info=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()


def build_resource(config: OtelConfig) -> resources.Resource:
    """The resource from `config` alone (not re-reading OTEL_RESOURCE_ATTRIBUTES)."""
    attributes: dict[str, str] = {
        resources.TELEMETRY_SDK_LANGUAGE: "python",
        resources.TELEMETRY_SDK_NAME: "opentelemetry",
        resources.TELEMETRY_SDK_VERSION: _sdk_version,
        **config.resource_attributes,
        resources.SERVICE_NAME: config.service_name,
    }
    if config.service_version is not None:
        attributes[resources.SERVICE_VERSION] = config.service_version
    if config.environment is not None:
        attributes["deployment.environment.name"] = config.environment
    return resources.Resource(attributes, schema_url=genai.SCHEMA_URL)


def init_otel(
    config: OtelConfig,
    *,
    set_global: bool = True,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> OtelGuard:
    """Build the providers `config` enables, with its exporter, resource and sampler.

    `span_processors` and `metric_readers` are added next to the exporter's
    (a Prometheus reader, an in-memory exporter in tests). With `set_global`
    the providers become the process-wide ones, which OpenTelemetry allows
    once per process; a provider set earlier raises `errors.ConfigError`.
    """
    resource = build_resource(config)
    providers: list[tuple[str, _Provider]] = []
    hooks: list[Callable[[], None]] = []
    tracer_provider = meter_provider = logger_provider = None
    try:
        if config.traces_enabled:
            tracer_provider = TracerProvider(
                resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio))
            )
            providers.append(("tracer", tracer_provider))
            if (span_exporter := _span_exporter(config)) is not None:
                tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
            for processor in span_processors:
                tracer_provider.add_span_processor(processor)
        if config.metrics_enabled:
            readers = list(metric_readers)
            if (metric_exporter := _metric_exporter(config)) is not None:
                interval_ms = config.export_interval_s * 1000
                readers.append(_PeriodicReader(metric_exporter, interval_ms))
            meter_provider = MeterProvider(resource=resource, metric_readers=readers)
            providers.append(("meter", meter_provider))
        if config.logs_enabled:
            logger_provider = LoggerProvider(resource=resource)
            providers.append(("logger", logger_provider))
            if (log_exporter := _log_exporter(config)) is not None:
                logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
            if config.logging_handler:
                hooks.append(_bridge_logging(logger_provider, config.logging_level))
        guard = OtelGuard(
            providers,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            logger_provider=logger_provider,
            on_shutdown=hooks,
        )
    except BaseException:
        OtelGuard(providers, on_shutdown=hooks).shutdown()
        raise
    if set_global:
        try:
            _set_global(tracer_provider, meter_provider, logger_provider)
        except BaseException:
            guard.shutdown()
            raise
    return guard


def _set_global(
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    logger_provider: LoggerProvider | None,
) -> None:
    # The setters only log when a provider is already set; check, so a second
    # init_otel fails loudly instead of exporting nowhere.
    if tracer_provider is not None:
        trace.set_tracer_provider(tracer_provider)
        if trace.get_tracer_provider() is not tracer_provider:
            raise errors.ConfigError("a global TracerProvider is already set", key="set_global")
    if meter_provider is not None:
        metrics.set_meter_provider(meter_provider)
        if metrics.get_meter_provider() is not meter_provider:
            raise errors.ConfigError("a global MeterProvider is already set", key="set_global")
    if logger_provider is not None:
        _logs.set_logger_provider(logger_provider)
        if _logs.get_logger_provider() is not logger_provider:
            raise errors.ConfigError("a global LoggerProvider is already set", key="set_global")


def _bridge_logging(provider: LoggerProvider, level: int) -> Callable[[], None]:
    """Attach a stdlib handler feeding `provider` to the root logger; return its remover."""
    # The SDK's handler warns that it moves to opentelemetry-instrumentation-logging,
    # which we do not depend on; it still works, and is the smallest bridge there is.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=level, logger_provider=provider)
    root = logging.getLogger()
    root.addHandler(handler)

    def remove() -> None:
        root.removeHandler(handler)
        handler.close()

    return remove


def _endpoint(config: OtelConfig) -> str:
    return (config.endpoint or _DEFAULT_ENDPOINTS[config.exporter]).rstrip("/")


def _headers(config: OtelConfig) -> dict[str, str]:
    return {name: value.get_secret_value() for name, value in config.headers.items()}


def _span_exporter(config: OtelConfig) -> SpanExporter | None:
    if config.exporter == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(f"{_endpoint(config)}/v1/traces", headers=_headers(config))
    if config.exporter == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(_endpoint(config), headers=_headers(config))
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    return None


def _metric_exporter(config: OtelConfig) -> MetricExporter | None:
    if config.exporter == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(f"{_endpoint(config)}/v1/metrics", headers=_headers(config))
    if config.exporter == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(_endpoint(config), headers=_headers(config))
    if config.exporter == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    return None


def _log_exporter(config: OtelConfig) -> LogRecordExporter | None:
    if config.exporter == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        return OTLPLogExporter(f"{_endpoint(config)}/v1/logs", headers=_headers(config))
    if config.exporter == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
            OTLPLogExporter as GrpcLogExporter,
        )

        return GrpcLogExporter(_endpoint(config), headers=_headers(config))
    if config.exporter == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter()
    return None
