"""The operator's Prometheus metrics: reconciles, failures and their duration, per kind.

Registered once at import; `serve` exposes them on the metrics port. Labels
stay low-cardinality (kind, result, reason): never a resource name.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter(
    "llm_infra_operator_reconciles",
    "Reconciles run, by kind and result (ok, retry, invalid).",
    ["kind", "result"],
)
ERRORS = Counter(
    "llm_infra_operator_reconcile_errors",
    "Reconciles that ended with Ready=False, by kind and reason.",
    ["kind", "reason"],
)
DURATION = Histogram(
    "llm_infra_operator_reconcile_duration_seconds",
    "Time one reconcile takes, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
READY = Gauge(
    "llm_infra_operator_resources_ready",
    "Resources whose Ready condition is True, by kind.",
    ["kind"],
)
KNOWN = Gauge("llm_infra_operator_resources", "Resources the operator watches, by kind.", ["kind"])


def serve(host: str, port: int) -> None:
    """Expose /metrics (a daemon thread: it stops with the process)."""
    if port:
        start_http_server(port, addr=host)
