"""`OtelConfig`: what `init_otel` builds, as one pydantic model; `from_env` reads OTEL_*.

`llm_infra.config` can load this model from any of its sources; `from_env` is
the seam for processes that only have the standard OpenTelemetry variables.
Header values are `SecretStr`: an OTLP header is usually an API key.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Mapping
from typing import Literal

import pydantic

from llm_infra import errors

Exporter = Literal["otlp-grpc", "otlp-http", "console", "none"]

_PROTOCOLS: dict[str, Exporter] = {"grpc": "otlp-grpc", "http/protobuf": "otlp-http"}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class OtelConfig(pydantic.BaseModel):
    """Telemetry settings for one process: resource, exporter, sampling, signals."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    service_name: str = "llm-infra"
    service_version: str | None = None
    environment: str | None = None
    """Becomes the ``deployment.environment.name`` resource attribute."""
    exporter: Exporter = "none"
    endpoint: str | None = None
    """OTLP base URL (``http://collector:4318``); the HTTP exporter appends ``/v1/<signal>``."""
    headers: dict[str, pydantic.SecretStr] = pydantic.Field(default_factory=dict)
    sample_ratio: float = pydantic.Field(default=1.0, ge=0.0, le=1.0)
    """Ratio of new traces sampled; a child follows its parent's decision."""
    resource_attributes: dict[str, str] = pydantic.Field(default_factory=dict)
    traces_enabled: bool = True
    metrics_enabled: bool = True
    logs_enabled: bool = False
    """OpenTelemetry logs are still experimental in Python, hence off unless asked for."""
    logging_handler: bool = True
    """With logs enabled: bridge the stdlib root logger into the LoggerProvider."""
    logging_level: int = logging.NOTSET
    export_interval_s: float = pydantic.Field(default=60.0, gt=0.0)
    """How often the periodic reader exports metrics."""
    capture_content: bool = False
    """Record prompts and completions on spans (redacted). Off: they may hold personal data."""

    def named(self, service: str) -> OtelConfig:
        """This config with `service` as its service name, unless one was given (env, settings)."""
        if "service_name" in self.model_fields_set:
            return self
        return self.model_copy(update={"service_name": service})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OtelConfig:
        """Read the standard OTEL_* variables; unset ones keep the defaults.

        An endpoint or protocol turns the OTLP exporter on (HTTP unless the
        protocol says ``grpc``); ``OTEL_SDK_DISABLED=true`` turns everything
        off. A malformed value raises `errors.ConfigError` naming the variable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}

        def get(key: str) -> str | None:
            value = env.get(key)
            return value.strip() if value is not None and value.strip() else None

        if (name := get("OTEL_SERVICE_NAME")) is not None:
            values["service_name"] = name
        resource = _parse_pairs(get("OTEL_RESOURCE_ATTRIBUTES"), "OTEL_RESOURCE_ATTRIBUTES")
        # The spec: OTEL_SERVICE_NAME wins over service.name in the attributes.
        if "service.name" in resource:
            values.setdefault("service_name", resource.pop("service.name"))
        if "service.version" in resource:
            values["service_version"] = resource.pop("service.version")
        for key in ("deployment.environment.name", "deployment.environment"):
            if key in resource:
                values["environment"] = resource.pop(key)
        values["resource_attributes"] = resource

        endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
        protocol = get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol is not None:
            if protocol not in _PROTOCOLS:
                raise errors.ConfigError(
                    f"expected one of {sorted(_PROTOCOLS)}, got {protocol!r}",
                    key="OTEL_EXPORTER_OTLP_PROTOCOL",
                )
            values["exporter"] = _PROTOCOLS[protocol]
        elif endpoint is not None:
            values["exporter"] = "otlp-http"  # the spec's default protocol
        if endpoint is not None:
            values["endpoint"] = endpoint
        headers = _parse_pairs(get("OTEL_EXPORTER_OTLP_HEADERS"), "OTEL_EXPORTER_OTLP_HEADERS")
        values["headers"] = {k: pydantic.SecretStr(v) for k, v in headers.items()}

        if (ratio := get("OTEL_TRACES_SAMPLER_ARG")) is not None:
            values["sample_ratio"] = _parse_ratio(ratio)
        if (interval := get("OTEL_METRIC_EXPORT_INTERVAL")) is not None:
            values["export_interval_s"] = _parse_positive(interval, "OTEL_METRIC_EXPORT_INTERVAL")
        for key, field in (
            ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "capture_content"),
            ("OTEL_SDK_DISABLED", None),
        ):
            if (flag := get(key)) is None:
                continue
            enabled = _parse_bool(flag, key)
            if field is not None:
                values[field] = enabled
            elif enabled:
                values.update(
                    exporter="none", traces_enabled=False, metrics_enabled=False, logs_enabled=False
                )
        return cls.model_validate(values)


def _parse_pairs(raw: str | None, key: str) -> dict[str, str]:
    """Parse ``k1=v1,k2=v2`` with percent-encoded values (W3C-baggage-like, as OTel says)."""
    pairs: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            # Never echo the item: it may be an Authorization header.
            raise errors.ConfigError("expected comma-separated key=value pairs", key=key)
        pairs[name.strip()] = urllib.parse.unquote(value.strip())
    return pairs


def _parse_ratio(raw: str) -> float:
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise errors.ConfigError(
            f"expected a ratio between 0 and 1, got {raw!r}", key="OTEL_TRACES_SAMPLER_ARG"
        )
    return ratio


def _parse_positive(raw: str, key: str) -> float:
    """Milliseconds, as OTel specifies intervals, to seconds."""
    try:
        millis = float(raw)
    except ValueError:
        millis = 0.0
    if millis <= 0:
        raise errors.ConfigError(f"expected positive milliseconds, got {raw!r}", key=key)
    return millis / 1000.0


def _parse_bool(raw: str, key: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise errors.ConfigError(f"expected true or false, got {raw!r}", key=key)
