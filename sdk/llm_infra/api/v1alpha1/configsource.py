"""ConfigSource: an app's configuration assembled from ordered layers (short name `cfgsrc`).

Reconciled by the operator: the layers (inline values, ConfigMaps, Secrets,
OpenBao/Vault KV v2, HTTP documents) are read in order and deep-merged, later
layers winning; the result is checked against an optional JSON Schema, split
into a ConfigMap (plain keys) and a Secret (`sensitiveKeys`), refreshed on an
interval and, when its content changes, announced or rolled out to the
selected workloads.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from llm_infra.api._model import ApiModel, KeyedBy, Rule, UniqueItems
from llm_infra.api._resource import CrdInfo, PrinterColumn, Resource, ResourceStatus
from llm_infra.api.v1alpha1._common import (
    SPACE,
    Duration,
    LabelKey,
    LabelSelector,
    LabelValue,
    Name,
    ObjectName,
    SecretKeyRef,
    SecretRef,
    cel_duration_ok,
    duration_seconds,
)

DocumentFormat = Literal["json", "yaml", "toml"]
ValueFormat = Literal["json", "yaml", "toml", "env"]
TargetFormat = Literal["json", "yaml", "env"]
WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]

ConfigKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
"""A key of a ConfigMap or Secret."""

JsonPointer = Annotated[str, Field(pattern=r"^(/([^/~]|~[01])*)+$", max_length=512)]
"""An RFC 6901 JSON pointer to a value of the merged configuration, e.g. /database/password."""

MountPath = Annotated[
    str,
    Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"),
]
"""Where an OpenBao/Vault engine or auth method is mounted: path segments, no leading or trailing
/."""

Url = Annotated[str, Field(pattern=rf"^https?://[^{SPACE}/]+(/[^{SPACE}]*)?$", max_length=2048)]

MIN_REFRESH = "10s"


def _exactly_one(*values: object) -> bool:
    return sum(value is not None for value in values) == 1


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the object's namespace."""

    name: ObjectName
    """Name of the ConfigMap."""
    key: ConfigKey
    """Key within the ConfigMap."""


class ConfigMapLayer(ApiModel):
    """Values from a ConfigMap in the object's namespace."""

    name: ObjectName
    """Name of the ConfigMap."""
    key: ConfigKey | None = None
    """A key whose value is a document parsed as `format`; when unset, the ConfigMap's keys become
    top-level keys of the layer, their values kept as strings."""
    format: ValueFormat = "yaml"
    """How the value of `key` is parsed (yaml also reads json); ignored without `key`."""


class SecretLayer(ApiModel):
    """Values from a Secret in the object's namespace."""

    name: ObjectName
    """Name of the Secret."""
    key: ConfigKey | None = None
    """A key whose value is a document parsed as `format`; when unset, the Secret's keys become
    top-level keys of the layer, their values kept as strings."""
    format: ValueFormat = "yaml"
    """How the value of `key` is parsed (yaml also reads json); ignored without `key`."""


class VaultKubernetesAuth(ApiModel):
    """Log in with a Kubernetes service account token (the auth/kubernetes method)."""

    role: str = Field(min_length=1, max_length=256)
    """Role of the Kubernetes auth method to log in as."""
    rules: ClassVar = (
        Rule(
            cel="!has(self.mountPath) || !self.mountPath.startsWith('auth/')",
            message="mountPath is the auth method's mount without auth/ (e.g. kubernetes, not"
            " auth/kubernetes): remove the auth/ prefix",
            field=".mountPath",
            check=lambda k: not k.mount_path.startswith("auth/"),
        ),
    )

    mount_path: MountPath = "kubernetes"
    """Mount path of the Kubernetes auth method, without auth/ (e.g. kubernetes)."""
    service_account_name: ObjectName | None = None
    """Service account of the ConfigSource's namespace whose token is presented; `default` when
    unset (the operator never presents its own token to a server a ConfigSource names)."""
    audiences: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256)]],
        Field(max_length=8),
        UniqueItems(),
    ] = Field(default_factory=list)
    """Audiences of the requested token; the API server's default audience when empty."""


class VaultAuth(ApiModel):
    """How to log in to OpenBao/Vault: exactly one of tokenSecretRef or kubernetes."""

    rules: ClassVar = (
        Rule(
            cel="has(self.tokenSecretRef) != has(self.kubernetes)",
            message="set exactly one of tokenSecretRef or kubernetes",
            check=lambda a: _exactly_one(a.token_secret_ref, a.kubernetes),
        ),
    )

    token_secret_ref: SecretKeyRef | None = None
    """Secret key holding a token (a static token; prefer kubernetes)."""
    kubernetes: VaultKubernetesAuth | None = None
    """Kubernetes service account login."""


class VaultLayer(ApiModel):
    """A secret of an OpenBao or Vault KV version 2 engine."""

    rules: ClassVar = (
        Rule(
            cel="!self.path.startsWith('data/') && !self.path.startsWith('metadata/')",
            message="path is below the KV v2 engine's data/ (e.g. apps/checkout, not"
            " data/apps/checkout): remove the data/ or metadata/ prefix",
            field=".path",
            check=lambda v: not v.path.startswith(("data/", "metadata/")),
        ),
        Rule(
            cel="!has(self.mount)"
            " || (!self.mount.endsWith('/data') && !self.mount.endsWith('/metadata'))",
            message="mount is the KV v2 engine's mount path (e.g. secret, not secret/data):"
            " remove the /data suffix",
            field=".mount",
            check=lambda v: not v.mount.endswith(("/data", "/metadata")),
        ),
    )

    address: Url
    """Base URL of the server, e.g. https://openbao.openbao.svc:8200."""
    namespace: str | None = Field(None, min_length=1, max_length=256)
    """OpenBao/Vault Enterprise namespace, if the engine lives in one."""
    mount: MountPath = "secret"
    """Mount path of the KV v2 engine, e.g. secret (not secret/data)."""
    path: str = Field(min_length=1, max_length=1024, pattern=rf"^[^/{SPACE}][^{SPACE}]*$")
    """Path of the secret below the mount, e.g. apps/checkout (no data/ prefix: the KV v2 API
    adds it)."""
    key: str | None = Field(None, min_length=1, max_length=256)
    """Only this key of the secret's data, as a top-level key of the layer; all keys when unset."""
    version: int | None = Field(None, ge=1)
    """Pin this version of the secret; the latest when unset."""
    ca_secret_ref: SecretKeyRef | None = None
    """Secret key holding the PEM CA bundle that signs the server's certificate."""
    auth: VaultAuth
    """How to log in."""


class HttpLayer(ApiModel):
    """A document fetched with an HTTP GET."""

    url: Url
    """URL of the document."""
    format: DocumentFormat = "json"
    """Format of the document."""
    headers_secret_ref: SecretRef | None = None
    """A Secret whose keys and values are sent as request headers (e.g. Authorization)."""
    timeout: Duration = "10s"
    """How long a request may take."""


class Layer(ApiModel):
    """One layer of the configuration: named, exactly one source."""

    rules: ClassVar = (
        Rule(
            cel="[has(self.inline), has(self.configMapRef), has(self.secretRef), has(self.vault),"
            " has(self.http)].filter(x, x).size() == 1",
            message="set exactly one of inline, configMapRef, secretRef, vault or http",
            check=lambda x: _exactly_one(x.inline, x.config_map_ref, x.secret_ref, x.vault, x.http),
        ),
    )

    name: Name
    """Name of the layer; status and provenance refer to it."""
    optional: bool = False
    """Skip the layer when its source is missing (not found), instead of failing."""
    inline: dict[str, Any] | None = None
    """Values written here (do not put secrets inline: use secretRef or vault)."""
    config_map_ref: ConfigMapLayer | None = None
    """Values from a ConfigMap."""
    secret_ref: SecretLayer | None = None
    """Values from a Secret."""
    vault: VaultLayer | None = None
    """Values from an OpenBao/Vault KV v2 secret."""
    http: HttpLayer | None = None
    """Values from a document served over HTTP."""


class ConfigSchema(ApiModel):
    """A JSON Schema the configuration must satisfy: exactly one of inline or configMapRef."""

    rules: ClassVar = (
        Rule(
            cel="has(self.inline) != has(self.configMapRef)",
            message="set exactly one of inline or configMapRef",
            check=lambda s: _exactly_one(s.inline, s.config_map_ref),
        ),
    )

    inline: dict[str, Any] | None = None
    """The JSON Schema itself."""
    config_map_ref: ConfigMapKeyRef | None = None
    """A ConfigMap key holding the JSON Schema (JSON or YAML)."""


class Target(ApiModel):
    """Where the merged configuration is written."""

    config_map_name: ObjectName | None = None
    """ConfigMap receiving the non-sensitive values; metadata.name when unset."""
    secret_name: ObjectName | None = None
    """Secret receiving the values at sensitiveKeys; metadata.name when unset."""
    format: TargetFormat = "json"
    """How the configuration is written: one json or yaml document, or env (one KEY=value per leaf,
    keys upper-cased and joined with _)."""
    key: ConfigKey | None = None
    """Key of the document in the ConfigMap and Secret; config.json or config.yaml when unset;
    ignored for env, which writes one key per leaf."""
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """Labels added to the ConfigMap and Secret: label keys and values, as Kubernetes requires."""
    annotations: dict[LabelKey, str] = Field(default_factory=dict, max_length=32)
    """Annotations added to the ConfigMap and Secret."""
    deletion_policy: Literal["Delete", "Retain"] = "Delete"
    """What happens to the ConfigMap and Secret when this resource is deleted."""


class Refresh(ApiModel):
    """How often the sources are read again."""

    rules: ClassVar = (
        Rule(
            # has(): the API server checks the default {} against the rule before filling it.
            cel=f"!has(self.interval) || !{cel_duration_ok('self.interval')}"
            f" || duration(self.interval) >= duration('{MIN_REFRESH}')",
            message=f"refresh interval must be at least {MIN_REFRESH}",
            field=".interval",
            check=lambda r: duration_seconds(r.interval) >= duration_seconds(MIN_REFRESH),
        ),
    )

    interval: Duration = "5m"
    """Time between two reads of the sources (at least 10s)."""


class OnChange(ApiModel):
    """What happens when the merged configuration changes."""

    rules: ClassVar = (
        Rule(
            cel="!has(self.action) || self.action != 'rollout'"
            " || (has(self.selector) && has(self.selector.matchLabels)"
            " && size(self.selector.matchLabels) > 0)",
            message="action rollout requires a selector with at least one matchLabels entry",
            field=".selector",
            check=lambda o: (
                o.action != "rollout"
                or (o.selector is not None and len(o.selector.match_labels) > 0)
            ),
        ),
    )

    action: Literal["notify", "rollout"] = "notify"
    """notify: record an event and bump status.version; rollout: also restart the selected
    workloads (their pod template gets the new content hash as an annotation)."""
    selector: LabelSelector | None = None
    """Workloads in the namespace to roll out (required for rollout)."""
    workload_kinds: Annotated[
        tuple[WorkloadKind, ...],
        Field(min_length=1, max_length=3),
        UniqueItems(),
    ] = ("Deployment", "StatefulSet", "DaemonSet")  # a value, not a factory: it reaches the CRD
    """Kinds of workloads the selector applies to."""


class ConfigSourceSpec(ApiModel):
    """Desired state of a configuration source."""

    layers: Annotated[list[Layer], KeyedBy("name"), Field(min_length=1, max_length=32)]
    """Layers, merged in order: later layers override earlier ones (maps are merged deeply,
    other values replaced)."""
    schema_: ConfigSchema | None = Field(None, alias="schema")
    """JSON Schema the merged configuration must satisfy before it is written."""
    sensitive_keys: Annotated[
        list[JsonPointer],
        Field(max_length=64),
        UniqueItems(),
    ] = Field(default_factory=list)
    """JSON pointers (e.g. /database/password) of values written to the Secret, never the
    ConfigMap."""
    target: Target = Field(default_factory=Target)
    """Where the configuration is written."""
    refresh: Refresh = Field(default_factory=Refresh)
    """How often the sources are read again."""
    on_change: OnChange = Field(default_factory=OnChange)
    """What happens when the configuration changes."""


class LayerStatus(ApiModel):
    """What the last read of one layer gave."""

    name: Name
    """Name of the layer."""
    resolved: bool
    """The source was read (false: missing and optional, or failed)."""
    source: str = Field("", max_length=1024)
    """What was read, e.g. configmap/app-defaults, vault secret/apps/checkout@v3 or a URL."""


class ConfigSourceStatus(ResourceStatus):
    """Observed state of a configuration source."""

    content_hash: str | None = Field(None, pattern=r"^[a-f0-9]{64}$")
    """SHA-256 (hex) of the merged configuration last read (valid or not)."""
    last_good_hash: str | None = Field(None, pattern=r"^[a-f0-9]{64}$")
    """SHA-256 (hex) of the configuration published now: the last one that validated."""
    config_map_name: ObjectName | None = None
    """ConfigMap holding the published plain values."""
    secret_name: ObjectName | None = None
    """Secret holding the published sensitive values, when there are any."""
    version: int | None = Field(None, ge=0)
    """Incremented each time the merged configuration changes."""
    layers: Annotated[list[LayerStatus], KeyedBy("name"), Field(max_length=32)] = Field(
        default_factory=list
    )
    """State of each layer, in spec order."""
    provenance: dict[str, str] = Field(default_factory=dict, max_length=4096)
    """JSON pointer of each leaf value -> name of the layer it came from."""
    last_refresh_time: datetime.datetime | None = None
    """When the sources were last read."""


MAX_NAME = 63
"""A ConfigSource's name is a label value of what it writes (`infra.llmdevops.io/configsource`)."""


class ConfigSource(Resource):
    """An app configuration merged from layers, reconciled by the llm-infra operator."""

    rules: ClassVar = (
        Rule(
            cel=f"size(self.metadata.name) <= {MAX_NAME}",
            message=f"metadata.name of a ConfigSource must be at most {MAX_NAME} characters: the"
            " ConfigMap and Secret it writes carry it as a label value; choose a shorter name",
            field=".metadata.name",
            check=lambda c: c.metadata.name is None or len(c.metadata.name) <= MAX_NAME,
        ),
    )

    crd: ClassVar = CrdInfo(
        kind="ConfigSource",
        plural="configsources",
        short_names=("cfgsrc",),
        version="v1alpha1",
        description="An app configuration merged from ordered layers (inline, ConfigMap, Secret,"
        " OpenBao/Vault, HTTP) into a ConfigMap and a Secret, managed by llm-infra.",
        columns=(
            PrinterColumn(
                "Version", ".status.version", type="integer", description="Content version"
            ),
            PrinterColumn("Hash", ".status.contentHash", description="SHA-256 of the content"),
        ),
    )

    spec: ConfigSourceSpec
    """Desired state."""
    status: ConfigSourceStatus | None = None
    """Observed state, written by the operator."""


__all__ = ["ConfigSource", "ConfigSourceSpec", "ConfigSourceStatus"]
