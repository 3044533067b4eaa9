"""OpenTelemetry for llm-infra: one call sets up traces, metrics and logs; GenAI spans on top.

`init_otel(OtelConfig.from_env())` builds the providers and returns an
`OtelGuard` that flushes them on exit. `inject`/`extract` carry W3C trace
context and baggage over headers. `genai` holds our GenAI semantic-convention
names (the conventions are still in flux) and `llm_span` / `record_llm_usage`,
which trace and measure a model call. `llm_infra.vector` and others use only
the OpenTelemetry API, so they stay no-ops until an application calls
`init_otel`. Modules: `_config`, `_setup`, `_propagation`, `genai`.
"""

from llm_infra.otel import genai
from llm_infra.otel._config import Exporter, OtelConfig
from llm_infra.otel._propagation import extract, inject, with_baggage
from llm_infra.otel._setup import OtelGuard, build_resource, init_otel
from llm_infra.otel.genai import llm_span, record_content, record_llm_usage

__all__ = [
    "Exporter",
    "OtelConfig",
    "OtelGuard",
    "build_resource",
    "extract",
    "genai",
    "init_otel",
    "inject",
    "llm_span",
    "record_content",
    "record_llm_usage",
    "with_baggage",
]
