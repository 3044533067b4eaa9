"""What every kind shares: object metadata, the status base, and the facts its CRD is made of.

A kind is a model class with `spec`, `status` and a `crd` (`CrdInfo`) that
names its plural, short names and printer columns: the CRD generator, the
operator and the clients read group, version and plural from here, never
from string literals (STYLE rule 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from llm_infra.api._model import ApiModel
from llm_infra.api.conditions import Conditions

GROUP = "infra.llmdevops.io"
CATEGORY = "llm-infra"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class ObjectMeta(ApiModel):
    """The parts of metav1.ObjectMeta the models read; the rest is kept as it came."""

    model_config = ConfigDict(extra="allow")

    # Checked as the API server checks a custom resource's name; a kind that needs less
    # (ConfigSource: a label value) adds a rule of its own.
    name: str | None = Field(None, pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)
    """Name, unique in the namespace: a DNS subdomain (lowercase alphanumerics, '-' and '.')."""
    namespace: str | None = Field(None, pattern=DNS_LABEL, min_length=1, max_length=63)
    """Namespace of the object: a DNS label."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations."""
    generation: int | None = None
    """Spec generation, set by the API server."""
    uid: str | None = None
    """Unique id, set by the API server."""


class ResourceStatus(ApiModel):
    """Status fields every kind has."""

    observed_generation: int | None = Field(None, ge=0)
    """The .metadata.generation the operator last acted on."""
    conditions: Conditions = Field(default_factory=list)
    """Current state, one entry per condition type (Ready first of all)."""


@dataclass(frozen=True)
class PrinterColumn:
    """A column of `kubectl get`."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0

    def as_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


READY = PrinterColumn(
    "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Ready condition"
)
REASON = PrinterColumn(
    "Reason", '.status.conditions[?(@.type=="Ready")].reason', description="Why (not) ready"
)
AGE = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")
MESSAGE = PrinterColumn(
    "Message", '.status.conditions[?(@.type=="Ready")].message', priority=1, description="Details"
)


@dataclass(frozen=True)
class CrdInfo:
    """The facts of a kind's CRD that are not in its schema."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    version: str
    columns: tuple[PrinterColumn, ...] = ()
    description: str = ""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group(self) -> str:
        return GROUP

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    def printer_columns(self) -> list[dict[str, Any]]:
        columns = (READY, REASON, *self.columns, AGE, MESSAGE)
        return [column.as_crd() for column in columns]


class Resource(ApiModel):
    """Base of the four kinds: apiVersion, kind, metadata; subclasses add spec, status and `crd`."""

    crd: ClassVar[CrdInfo]

    api_version: str = ""
    """infra.llmdevops.io/v1alpha1"""
    kind: str = ""
    """The kind."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""

    @model_validator(mode="after")
    def _is_this_kind(self) -> Self:
        # Filled in when built in Python; refused when a manifest names another kind.
        expected = {"api_version": self.crd.api_version, "kind": self.crd.kind}
        for field, value in expected.items():
            given = getattr(self, field)
            if not given:
                setattr(self, field, value)
            elif given != value:
                alias = "apiVersion" if field == "api_version" else field
                raise ValueError(f"{alias} must be {value!r}, not {given!r}")
        return self
