"""Settings of the control plane process: built once at start-up and injected, never global."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from llm_infra import auth
from llm_infra_controlplane.security import AccessRule, AuthMode

DATA_DIR_ENV = "LLM_INFRA_DATA_DIR"
KUBE_FEEDS_ENV = "LLM_INFRA_KUBE_FEEDS"
KUBECONFIG_ENV = "LLM_INFRA_KUBECONFIG"
WATCH_NAMESPACE_ENV = "LLM_INFRA_WATCH_NAMESPACE"


def default_data_dir() -> Path:
    """$LLM_INFRA_DATA_DIR, else the XDG data home's llm-infra folder (~/.local/share/llm-infra)."""
    if configured := os.environ.get(DATA_DIR_ENV):
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "llm-infra"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


class Settings(BaseModel):
    """Where the control plane listens and keeps its data. Standalone defaults: loopback only."""

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
        default_factory=lambda: _env_flag(KUBE_FEEDS_ENV),
        description="in a cluster: serve what the operator writes (ConfigSource outputs, route"
        " tables, AuditSinks, Qdrant-backed VectorCollections) by watching the API server;"
        " also $LLM_INFRA_KUBE_FEEDS",
    )
    kubeconfig: Path | None = Field(
        default_factory=lambda: _env_path(KUBECONFIG_ENV),
        description="the feeds' credentials; unset: $KUBECONFIG, else the pod's service"
        " account, else ~/.kube/config; also $LLM_INFRA_KUBECONFIG",
    )
    watch_namespace: str | None = Field(
        default_factory=lambda: os.environ.get(WATCH_NAMESPACE_ENV) or None,
        description="the one namespace the feeds watch (a Role suffices); unset: all namespaces"
        " (a ClusterRole); also $LLM_INFRA_WATCH_NAMESPACE",
    )
    nats_url: str | None = Field(
        None,
        description="NATS with JetStream (audit streams, config events); `llm-infra up` starts"
        " a nats-server child process when unset",
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
        description="API key modes: keep an admin key in <data_dir>/admin-key.json (its hash"
        " only), created and printed once on the first start; false in a cluster, where keys"
        " come from api_keys",
    )
    api_keys: tuple[auth.ApiKeyRecord, ...] = Field(
        (),
        description="provisioned API keys as stored records (argon2id hash, never the key),"
        " e.g. the operator's; a key's owner is its subject in access_rules",
    )
    access_rules: tuple[AccessRule, ...] = Field(
        (),
        description="who may read, write or administer which kinds in which namespaces;"
        " the operator needs admin on collections",
    )
    jwt_jwks_url: str | None = Field(
        None, description="JWT modes: the identity provider's JWKS URL (https)"
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
