"""Settings of the control plane process: built once at start-up and injected, never global.

One pydantic-settings model (`llm_infra.config.InfraSettings`), read by
`load(...)` from, highest first:

1. flags of `llm-infra up` / `llm-infra serve` (``--port 9000``);
2. environment variables ``LLM_INFRA_<FIELD>`` (``LLM_INFRA_NATS_URL``; nested
   with ``__``: ``LLM_INFRA_OTEL__ENDPOINT``; lists and records as JSON:
   ``LLM_INFRA_API_KEYS='[{"key_id": ...}]'``);
3. a settings file (YAML, JSON or TOML), ``--settings FILE`` or
   ``LLM_INFRA_SETTINGS_FILE``: the chart mounts one from a ConfigMap or Secret;
4. the defaults below, which suit `llm-infra up` on a laptop.

A value that does not fit is a ConfigError naming the key and the source that
gave it (never the value: it may be an API key record). `serve_problems` lists
what `llm-infra serve` needs and lacks, so it refuses to start with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from llm_infra import auth, config
from llm_infra.otel import OtelConfig
from llm_infra_controlplane.access.policy import AccessRule, AuthMode
from llm_infra_controlplane.access.service import JwtSettings

SETTINGS_FILE_ENV = "LLM_INFRA_SETTINGS_FILE"


def default_data_dir() -> Path:
    """The XDG data home's llm-infra folder (~/.local/share/llm-infra)."""
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "llm-infra"


KIB = 1024
MIB = 1024 * KIB


class ServerLimits(BaseModel):
    """What one client may make the server hold: bytes, seconds, connections, password checks.

    docs/security.md explains each against the attack it bounds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_header_bytes: int = Field(
        64 * KIB, ge=4 * KIB, description="request line and headers, in bytes (else 431)"
    )
    max_body_bytes: int = Field(
        1 * MIB, ge=KIB, description="a request body, in bytes (else 413), unless below"
    )
    max_vector_body_bytes: int = Field(
        32 * MIB,
        ge=KIB,
        description="the body of a point upsert or a batch search (about 2,000 points of"
        " 1,536 dimensions), in bytes (else 413)",
    )
    header_timeout: float = Field(
        10.0, gt=0, description="seconds from a request's first byte to the end of its headers"
    )
    body_timeout: float = Field(
        60.0, gt=0, description="seconds from the end of the headers to the end of the body"
    )
    max_connections: int = Field(
        1024,
        ge=1,
        description="open connections; idle and half-sent ones are closed first to make room"
        " (lowered to what the open-files limit allows)",
    )
    auth_failures_per_minute: int = Field(
        30,
        ge=1,
        description="failed API key or JWT checks per client address and minute before it"
        " gets 429 without any further check",
    )
    concurrent_key_checks: int = Field(
        2,
        ge=1,
        description="argon2id checks of API keys running at once (each takes ~64 MiB and a"
        " core for ~50 ms); the rest wait",
    )


class Settings(config.InfraSettings):
    """Where the control plane listens and keeps its data, and who may call it."""

    model_config = SettingsConfigDict(
        env_prefix="LLM_INFRA_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    host: str = Field(
        "127.0.0.1", description="address to bind; 0.0.0.0 only behind a network policy"
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port; 0 picks a free one")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug)$")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="where embedded data lives (collections/<collectionName>/ per collection);"
        " in a cluster, the StatefulSet's volume",
    )
    qdrant_location: str | None = Field(
        None,
        description="development and CI only: qdrant-client's local mode (:memory: or a"
        " directory, which one process at a time may open) stands in for every"
        " VectorCollection's Qdrant server, where none can run",
    )
    kube_feeds: bool = Field(
        False,
        description="in a cluster: serve what the operator writes (ConfigSource outputs, route"
        " tables, AuditSinks, Qdrant-backed VectorCollections) by watching the API server",
    )
    kubeconfig: Path | None = Field(
        None,
        description="the feeds' credentials; unset: $KUBECONFIG, else the pod's service"
        " account, else ~/.kube/config",
    )
    kube_context: str | None = Field(None, description="the kubeconfig context; unset: current")
    watch_namespace: str | None = Field(
        None,
        description="the one namespace the feeds watch (a Role suffices); unset: all namespaces"
        " (a ClusterRole)",
    )
    nats_url: str | None = Field(
        None,
        description="NATS with JetStream (audit streams, config events); `llm-infra up` starts"
        " a nats-server child process when unset, `llm-infra serve` requires it",
    )
    resources_dir: Path | None = Field(
        None,
        description="standalone mode: a folder of resource YAML (VectorCollection, ConfigSource,"
        " AuditSink, Route, ConfigMap, Secret) applied at start and on every change",
    )
    auth_mode: AuthMode = Field(
        "api-key",
        description="how /v1 callers authenticate: API keys, JWTs (JWKS), both, or none at all"
        " (none: every caller may do everything; only for a port nobody else reaches)",
    )
    standalone_admin_key: bool = Field(
        True,
        description="API key modes of `llm-infra up`: keep an admin key in"
        " <data_dir>/admin-key.json (its hash only), created and printed once on the first"
        " start; `llm-infra serve` never makes one (keys come from api_keys)",
    )
    api_keys: tuple[auth.ApiKeyRecord, ...] = Field(
        (),
        description="provisioned API keys as stored records (argon2id hash, never the key),"
        " e.g. the operator's; a key owned by alice is subject apikey:alice in access_rules",
    )
    access_rules: tuple[AccessRule, ...] = Field(
        (),
        description="who may read, write or administer which kinds in which namespaces;"
        " the operator needs admin on collections",
    )
    jwt_jwks_url: str | None = Field(
        None, description="JWT modes: the identity provider's JWKS URL"
    )
    jwt_issuer: str | None = Field(None, description="JWT modes: the required `iss`")
    jwt_audience: str = Field("llm-infra", description="JWT modes: the required `aud`")
    jwt_algorithms: tuple[str, ...] = Field(
        ("RS256", "ES256", "EdDSA"),
        description="JWT modes: the asymmetric algorithms a JWK may pin (never HS*, never none)",
    )
    jwt_groups_claim: str = Field(
        "groups", description="JWT modes: the claim (dotted path) holding the caller's groups"
    )
    nats_token: SecretStr | None = Field(
        None,
        description="the token NATS requires (LLM_INFRA_NATS_TOKEN, from a Secret);"
        " `llm-infra up` makes one for its nats-server child in <data_dir>/nats-token",
    )
    audit_replay_window: float = Field(
        30 * 24 * 3600,
        gt=0,
        description="seconds an appended audit event id is remembered: a replay within it"
        " answers the stored record, or 409 with another body",
    )
    http_layer_allow_local_addresses: bool = Field(
        False,
        description="let ConfigSource http layers read loopback, link-local (cloud metadata"
        " 169.254.169.254, fe80::/10), unspecified and multicast addresses; development only",
    )
    http_layer_max_bytes: int = Field(
        config.HTTP_LAYER_MAX_BYTES,
        ge=1,
        description="the largest document a ConfigSource http layer may serve, in bytes",
    )
    limits: ServerLimits = Field(
        default_factory=ServerLimits,
        description="bounds on what one client may make the server hold"
        " (LLM_INFRA_LIMITS__MAX_BODY_BYTES=...); see docs/security.md",
    )
    otel: OtelConfig = Field(
        default_factory=OtelConfig.from_env,
        description="telemetry: exporter, OTLP endpoint, service name, resource attributes;"
        " defaults from the standard OTEL_* variables",
    )

    @property
    def jwt(self) -> JwtSettings:
        return JwtSettings(
            jwks_url=self.jwt_jwks_url,
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            algorithms=self.jwt_algorithms,
            groups_claim=self.jwt_groups_claim,
        )

    def serve_problems(self) -> list[str]:
        """What `llm-infra serve` lacks, one line per missing setting with how to set it."""
        problems = []
        if not self.nats_url:
            problems.append(
                "nats_url is not set: point it at NATS with JetStream"
                " (LLM_INFRA_NATS_URL=nats://nats:4222, or nats_url in the settings file)"
            )
        if self.auth_mode == "api-key" and not self.api_keys:
            problems.append(
                "api_keys is empty with auth_mode api-key: nobody could call the API;"
                " provision key records (LLM_INFRA_API_KEYS, or api_keys in the settings file)"
                " or choose auth_mode jwt"
            )
        if self.auth_mode in ("jwt", "api-key+jwt"):
            problems.extend(
                f"{field} is not set with auth_mode {self.auth_mode}: set it"
                f" (LLM_INFRA_{field.upper()}, or {field} in the settings file)"
                for field in ("jwt_jwks_url", "jwt_issuer")
                if not getattr(self, field)
            )
        return problems


def load(*, flags: Mapping[str, Any] | None = None, settings_file: Path | None = None) -> Settings:
    """The settings of this process: `flags` > environment > settings file > defaults.

    The file is `settings_file`, else $LLM_INFRA_SETTINGS_FILE, else none.
    """
    file = settings_file or (Path(p) if (p := os.environ.get(SETTINGS_FILE_ENV)) else None)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    return config.load_settings(Settings, files=[file] if file else (), init=given)


__all__ = ["SETTINGS_FILE_ENV", "ServerLimits", "Settings", "default_data_dir", "load"]
