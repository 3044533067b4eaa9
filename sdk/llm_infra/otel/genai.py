"""Our GenAI span and metric names, and the helpers that record one model call.

The GenAI semantic conventions are still "Development" and moved to their own
repository (open-telemetry/semantic-conventions-genai) in 2026; core semconv
marks every ``gen_ai.*`` name deprecated. So the names live here, once, with
the `SCHEMA_URL` they follow, instead of importing the ``_incubating``
constants. They are the *latest experimental* names (``gen_ai.provider.name``,
not the older ``gen_ai.system``): the ones OpenTelemetry instrumentations emit
when a process sets ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``
(`SEMCONV_OPT_IN`), so our spans and theirs agree. When the conventions are
released, update the names and `SCHEMA_URL` together.

Prompt and completion content is not recorded unless the caller passes
``capture=True`` to `record_content` (wire it to `OtelConfig.capture_content`);
even then it goes through `errors.redact`.
"""

from __future__ import annotations

import json
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from llm_infra import errors

SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
"""The semconv release that introduced ``gen_ai.provider.name``."""
SEMCONV_OPT_IN = "gen_ai_latest_experimental"
"""The ``OTEL_SEMCONV_STABILITY_OPT_IN`` value under which other instrumentations match us."""
INSTRUMENTATION_NAME = "llm_infra.genai"

# -- span and metric attributes ----------------------------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_PREFIX = "gen_ai.request."
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"  # noqa: S105 - a name, not a secret
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"

# -- values --------------------------------------------------------------------------------------
OPERATION_CHAT = "chat"
OPERATION_TEXT_COMPLETION = "text_completion"
OPERATION_EMBEDDINGS = "embeddings"
TOKEN_TYPE_INPUT = "input"  # noqa: S105 - a name, not a secret
TOKEN_TYPE_OUTPUT = "output"  # noqa: S105 - a name, not a secret

# -- metrics -------------------------------------------------------------------------------------
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"  # noqa: S105 - a name, not a secret
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
# Bucket boundaries the conventions advise for these two histograms.
TOKEN_USAGE_BUCKETS = tuple(float(4**i) for i in range(14))
DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))

_tracer = trace.get_tracer(INSTRUMENTATION_NAME, schema_url=SCHEMA_URL)
_meter = metrics.get_meter(INSTRUMENTATION_NAME, schema_url=SCHEMA_URL)


@contextmanager
def llm_span(
    operation: str,
    model: str,
    provider: str,
    *,
    tracer: trace.Tracer | None = None,
    **attributes: AttributeValue,
) -> Iterator[trace.Span]:
    """Trace one model call as a current CLIENT span named ``"{operation} {model}"``.

    Keyword names with a dot are attribute names as they are
    (``**{genai.RESPONSE_MODEL: ...}``); plain ones are request parameters:
    ``temperature=0.2`` sets ``gen_ai.request.temperature``. They are given at
    span start, so a sampler sees them. An exception marks the span failed
    (an `errors.InfraError` through its `record_to_span`) and propagates.
    """
    span_attributes: dict[str, AttributeValue] = {
        OPERATION_NAME: operation,
        PROVIDER_NAME: provider,
        REQUEST_MODEL: model,
    }
    for key, value in attributes.items():
        span_attributes[key if "." in key else REQUEST_PREFIX + key] = value
    with (tracer or _tracer).start_as_current_span(
        f"{operation} {model}",
        kind=trace.SpanKind.CLIENT,
        attributes=span_attributes,
        # Ours below: the SDK's would record the raw, unredacted exception.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            if span.is_recording():
                _record_failure(span, exc)
            raise


def _record_failure(span: trace.Span, exc: BaseException) -> None:
    if isinstance(exc, errors.InfraError):
        exc.record_to_span(span)
        return
    error_type = _qualified_name(type(exc))
    span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
    span.set_attribute(ERROR_TYPE, error_type)
    # Redacted: a library's message may quote a credential, and the SDK would
    # record it verbatim in both the message and the stack trace.
    stacktrace = "".join(traceback.format_exception(exc))
    span.record_exception(
        exc,
        {
            "exception.message": errors.redact(str(exc)),
            "exception.stacktrace": errors.redact(stacktrace),
        },
    )


def _qualified_name(cls: type[BaseException]) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class _Instruments:
    __slots__ = ("duration", "tokens")

    def __init__(self, meter: metrics.Meter) -> None:
        self.tokens = meter.create_histogram(
            METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_USAGE_BUCKETS,
        )
        self.duration = meter.create_histogram(
            METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )


# Creating an instrument takes a lock and a registry lookup: do it once per meter.
_instruments: weakref.WeakKeyDictionary[metrics.Meter, _Instruments] = weakref.WeakKeyDictionary()


def _instruments_for(meter: metrics.Meter) -> _Instruments:
    found = _instruments.get(meter)
    if found is None:
        found = _instruments[meter] = _Instruments(meter)
    return found


def record_llm_usage(
    span: trace.Span | None,
    *,
    input_tokens: int,
    output_tokens: int,
    model: str,
    provider: str,
    operation: str,
    duration_s: float,
    response_model: str | None = None,
    finish_reasons: Sequence[str] | None = None,
    error_type: str | None = None,
    meter: metrics.Meter | None = None,
) -> None:
    """Put usage on `span` (if any) and record the two GenAI client histograms.

    ``gen_ai.client.token.usage`` gets one point per token type;
    ``gen_ai.client.operation.duration`` one point, with `error_type` when the
    call failed. The meter defaults to the global provider's.
    """
    if span is not None and span.is_recording():
        usage: dict[str, AttributeValue] = {
            USAGE_INPUT_TOKENS: input_tokens,
            USAGE_OUTPUT_TOKENS: output_tokens,
        }
        if response_model is not None:
            usage[RESPONSE_MODEL] = response_model
        if finish_reasons is not None:
            usage[RESPONSE_FINISH_REASONS] = list(finish_reasons)
        span.set_attributes(usage)
    instruments = _instruments_for(meter or _meter)
    common: dict[str, AttributeValue] = {
        OPERATION_NAME: operation,
        PROVIDER_NAME: provider,
        REQUEST_MODEL: model,
    }
    if response_model is not None:
        common[RESPONSE_MODEL] = response_model
    instruments.tokens.record(input_tokens, {**common, TOKEN_TYPE: TOKEN_TYPE_INPUT})
    instruments.tokens.record(output_tokens, {**common, TOKEN_TYPE: TOKEN_TYPE_OUTPUT})
    if error_type is not None:
        common[ERROR_TYPE] = error_type
    instruments.duration.record(duration_s, common)


def record_content(
    span: trace.Span,
    *,
    input_messages: str | Sequence[Mapping[str, Any]] | None = None,
    output_messages: str | Sequence[Mapping[str, Any]] | None = None,
    capture: bool = False,
) -> None:
    """Record prompt and completion on `span`, redacted, only when `capture` is true.

    Off by default: content may hold personal data, and spans travel to
    collectors with wider access than the application's own logs.
    """
    if not capture or not span.is_recording():
        return
    for key, content in ((INPUT_MESSAGES, input_messages), (OUTPUT_MESSAGES, output_messages)):
        if content is not None:
            text = content if isinstance(content, str) else json.dumps(list(content), default=str)
            span.set_attribute(key, errors.redact(text))
