"""Settings of the operator process, read once at start-up by `llm_infra.config`.

Highest first: `llm-infra operator` flags, environment variables with the
`LLM_INFRA_OPERATOR_` prefix (`LLM_INFRA_OPERATOR_NATS_URL`,
`LLM_INFRA_OPERATOR_NAMESPACES='["team-a"]'`, nested with `__`), a settings file
(`--settings`, or $LLM_INFRA_OPERATOR_SETTINGS_FILE), the defaults below: the
in-cluster ones the chart sets up, Services named after the components, in the
same namespace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from llm_infra import config
from llm_infra.config import InfraSettings
from llm_infra.otel import OtelConfig


class OperatorSettings(InfraSettings):
    """What the operator watches, where it listens, and the default backends."""

    model_config = SettingsConfigDict(
        env_prefix="LLM_INFRA_OPERATOR_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    kubeconfig: Path | None = None
    """The kubeconfig to log in with; unset: $KUBECONFIG, else the pod's service account, else
    ~/.kube/config. Exec credential plugins (EKS, GKE, AKS, OIDC) are run."""
    kube_context: str | None = None
    """The kubeconfig context; unset: its current-context."""
    namespaces: list[str] = Field(default_factory=list)
    """Namespaces (or glob patterns) to watch; all namespaces when empty. Watching a list lets
    the operator read Secrets through per-namespace Roles only (least privilege)."""
    health_host: str = "0.0.0.0"  # noqa: S104 - the kubelet probes the pod IP
    """Address of the liveness and metrics endpoints."""
    health_port: int = Field(8081, ge=0, le=65535)
    """Port of the liveness endpoint (/healthz)."""
    metrics_port: int = Field(9090, ge=0, le=65535)
    """Port of the Prometheus endpoint (/metrics); 0 turns it off."""
    peering: str | None = None
    """kopf peering name: several replicas elect the highest-priority one to run. Off (one
    replica, no peering objects) when unset."""
    priority: int = 0
    """This replica's priority within the peering."""
    log_format: Literal["json", "plain", "full"] = "json"
    """Log line format; json for log collectors."""

    default_vector_backend: Literal["embedded", "qdrant"] = "embedded"
    """Backend of a VectorCollection whose spec names none."""
    qdrant_url: str | None = None
    """Qdrant server of VectorCollections whose spec names none (backend qdrant)."""
    qdrant_api_key: SecretStr | None = None
    """API key of that default Qdrant server."""
    qdrant_location: str | None = None
    """Development and CI only: qdrant-client's local mode (":memory:" or a directory) stands in
    for every Qdrant server, where no server can run."""
    control_plane_url: str = "http://llm-infra-controlplane:8080"
    """The control plane, which owns the embedded Qdrant core's collections."""
    control_plane_token: SecretStr | None = None
    """Bearer token for the control plane's admin API."""
    nats_url: str = "nats://nats:4222"
    """NATS with JetStream: audit streams and config change events."""
    nats_token: SecretStr | None = None
    """The token NATS requires (from a Secret); unset: NATS without authentication."""

    http_layer_allow_local_addresses: bool = False
    """Let ConfigSource http layers read loopback, link-local (cloud metadata 169.254.169.254,
    fe80::/10), unspecified and multicast addresses; off, such addresses are refused (checked
    on what the name resolves to and on the connection). Development and tests only."""
    http_layer_max_bytes: int = Field(config.HTTP_LAYER_MAX_BYTES, ge=1)
    """Largest document a ConfigSource http layer may serve, in bytes; a larger one fails the
    layer, unread."""

    def http_layer_policy(self) -> config.HttpLayerPolicy:
        """What ConfigSource http layers may fetch, from the two settings above."""
        return config.HttpLayerPolicy(
            allow_local_addresses=self.http_layer_allow_local_addresses,
            max_bytes=self.http_layer_max_bytes,
        )

    resync_interval: float = Field(60.0, gt=0)
    """Seconds between drift checks of each resource (ConfigSources use their refresh.interval)."""
    retry_initial: float = Field(1.0, gt=0)
    """First delay after a transient failure, in seconds; doubled per attempt."""
    retry_max: float = Field(60.0, gt=0)
    """Longest delay between retries, in seconds."""
    workers: int = Field(8, ge=1, le=256)
    """Reconciles the background resync runs at once."""
    otel: OtelConfig = Field(default_factory=OtelConfig.from_env)
    """Telemetry (a span per reconcile): exporter, endpoint, service name, resource attributes;
    defaults from the standard OTEL_* variables, LLM_INFRA_OPERATOR_OTEL__* override them."""
