"""ConfigSource resolution: layers in, a validated document and the ConfigMap/Secret data out.

The "decide" step shared by the operator and standalone mode, free of
Kubernetes: `resolve_config_source` reads the layers (`_layers`), merges them
(RFC 7386, later over earlier), records which layer set each leaf, checks the
JSON Schema, splits off `sensitiveKeys` and renders what the caller writes.
The pure steps are public on their own. The caller publishes `ConfigChanged`
on `config_event_subject(namespace, name)` when `content_hash` moves.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import pydantic
import yaml

from llm_infra import errors, jsondoc, schema
from llm_infra.api.v1alpha1.configsource import ConfigSourceSpec, Target
from llm_infra.config._fetch import HttpLayerPolicy
from llm_infra.config._layers import (
    HttpLayerCache,
    LayerOutcome,
    ObjectReader,
    parse_document,
    read_layers,
)

PROVENANCE_LIMIT = 4096
"""Most provenance entries kept (the status field's limit); `Merged.provenance_truncated` says."""

CONFIG_EVENT_SUBJECT = "llm-infra.config.{namespace}.{name}"
"""NATS subject of a ConfigSource's change events."""

# How a ConfigSource's published ConfigMap and Secret are marked: the operator writes them,
# the control plane finds and checks them by these.
SOURCE_LABEL = "infra.llmdevops.io/configsource"
"""Label naming the ConfigSource an output belongs to."""
HASH_ANNOTATION = "infra.llmdevops.io/content-hash"
"""On each output: `content_hash` of the whole document."""
SECRET_ANNOTATION = "infra.llmdevops.io/secret"  # noqa: S105  an annotation's name
"""On the ConfigMap when the sensitive values went to a Secret: its name (readers wait for it)."""

_ENV_UNSAFE = re.compile(r"[^A-Za-z0-9]")
# Schema keywords whose messages name properties, never values: safe to show for secrets too.
_KEY_ONLY_KEYWORDS = frozenset({"required", "dependentRequired"})


@dataclasses.dataclass(frozen=True)
class Merged:
    """The merged document and, per leaf pointer, the layer that set it (arrays are leaves)."""

    document: dict[str, Any] = dataclasses.field(repr=False)
    provenance: dict[str, str]
    provenance_truncated: bool = False
    """More than PROVENANCE_LIMIT leaves: the first ones (by pointer) are kept."""


@dataclasses.dataclass(frozen=True)
class Resolution:
    """Everything the decide step found; publish `plain_data`/`secret_data` only when `valid`.

    When a required layer failed, the schema is not checked (a partial document
    would only add noise), `content_hash` is None and nothing is rendered: the
    caller keeps its last good output and retries later if `retryable`.
    """

    layers: list[LayerOutcome]
    document: dict[str, Any] = dataclasses.field(repr=False)
    provenance: dict[str, str] = dataclasses.field(repr=False)
    provenance_truncated: bool
    problems: list[str]
    valid: bool
    retryable: bool
    content_hash: str | None
    plain_data: dict[str, str] = dataclasses.field(repr=False)
    secret_data: dict[str, str] = dataclasses.field(repr=False)


async def resolve_config_source(
    spec: ConfigSourceSpec,
    objects: ObjectReader,
    *,
    http_cache: HttpLayerCache | None = None,
    http_client: httpx.AsyncClient | None = None,
    http_policy: HttpLayerPolicy | None = None,
) -> Resolution:
    """Read, merge, validate, split and render `spec`'s configuration.

    `http_policy`: what http layers may fetch (`read_layers`; None: the safe default).
    """
    outcomes = await read_layers(
        spec, objects, http_cache=http_cache, http_client=http_client, http_policy=http_policy
    )
    merged = merge_layers(outcomes)
    failed = [outcome.error for outcome in outcomes if outcome.error is not None]
    problems = [error.message for error in failed]
    retryable = any(error.is_retryable() for error in failed)
    rendered: _Rendered | None = None
    if not problems:
        try:
            rendered = await _check_and_render(spec, objects, outcomes, merged, problems)
        except errors.InfraError as error:  # the schema's ConfigMap, or an unrenderable value
            problems.append(error.message)
            retryable = error.is_retryable()
    return Resolution(
        layers=outcomes,
        document=merged.document,
        provenance=merged.provenance,
        provenance_truncated=merged.provenance_truncated,
        problems=problems,
        valid=rendered is not None,
        retryable=retryable,
        content_hash=rendered.content_hash if rendered else None,
        plain_data=rendered.plain_data if rendered else {},
        secret_data=rendered.secret_data if rendered else {},
    )


@dataclasses.dataclass(frozen=True)
class _Rendered:
    content_hash: str
    plain_data: dict[str, str]
    secret_data: dict[str, str]


async def _check_and_render(
    spec: ConfigSourceSpec,
    objects: ObjectReader,
    outcomes: Sequence[LayerOutcome],
    merged: Merged,
    problems: list[str],
) -> _Rendered | None:
    """Schema problems go to `problems` (and give None); else the data to publish."""
    # Values from Secrets and OpenBao are as secret as sensitiveKeys: schema messages hide them
    # (every pointer such a layer supplied, even where a later layer overrode it).
    secret_layers = {
        layer.name
        for layer in spec.layers
        if layer.secret_ref is not None or layer.vault is not None
    }
    hidden = [*spec.sensitive_keys] + [
        jsondoc.join_pointer(path)
        for outcome in outcomes
        if outcome.name in secret_layers and outcome.data is not None
        for path in _leaf_paths(outcome.data, ())
    ]
    document_schema = await schema_of(spec, objects)
    problems.extend(validate_document(merged.document, document_schema, hidden=hidden))
    if problems:
        return None
    plain, sensitive = split_sensitive(merged.document, spec.sensitive_keys)
    return _Rendered(
        content_hash=content_hash(merged.document),
        plain_data=render(plain, spec.target),
        secret_data=render(sensitive, spec.target) if sensitive else {},
    )


# -- merging -----------------------------------------------------------------------------------


def merge_layers(outcomes: Iterable[LayerOutcome]) -> Merged:
    """RFC 7386 merge of each resolved layer over the ones before, with provenance per leaf."""
    patches: list[tuple[str, Mapping[str, Any]]] = []
    document: dict[str, Any] = {}
    for outcome in outcomes:
        if outcome.resolved and outcome.data is not None:
            document = jsondoc.merge_patch(document, outcome.data)
            patches.append((outcome.name, outcome.data))
    provenance: dict[str, str] = {}
    leaves = sorted((jsondoc.join_pointer(path), path) for path in _leaf_paths(document, ()))
    for pointer, path in leaves[:PROVENANCE_LIMIT]:
        # The last patch reaching a leaf set it: merge patch replaces at every non-object.
        provenance[pointer] = next(
            name for name, patch in reversed(patches) if _reaches(patch, path)
        )
    return Merged(document, provenance, provenance_truncated=len(leaves) > PROVENANCE_LIMIT)


def _leaf_paths(node: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from _leaf_paths(value, (*path, key))
    elif path:  # a scalar, an array or an empty object; the root is no leaf
        yield path


def _reaches(patch: Any, tokens: Sequence[str]) -> bool:
    for token in tokens:
        if not isinstance(patch, Mapping):
            return True  # replaced whole, with all below it
        if token not in patch:
            return False
        patch = patch[token]
    return True


def _tokens(pointer: str) -> list[str]:
    # Pointers here are well-formed (ours, or checked by the ConfigSource model).
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer.split("/")[1:]]


# -- schema ------------------------------------------------------------------------------------


async def schema_of(spec: ConfigSourceSpec, objects: ObjectReader) -> Mapping[str, Any] | None:
    """The JSON Schema `spec.schema` names: inline, or a ConfigMap key in JSON or YAML."""
    if spec.schema_ is None:
        return None
    if spec.schema_.inline is not None:
        return spec.schema_.inline
    ref = spec.schema_.config_map_ref
    if ref is None:
        return None
    values = await objects.config_map(ref.name)
    if values is None or ref.key not in values:
        raise errors.NotFound(
            f"schema: ConfigMap {ref.name} key {ref.key} not found; create it or fix"
            " schema.configMapRef",
            service="kubernetes",
        )
    return parse_document(
        values[ref.key], "yaml", what=f"schema: ConfigMap {ref.name} key {ref.key}"
    )


def validate_document(
    document: Any, document_schema: Mapping[str, Any] | None, *, hidden: Iterable[str] = ()
) -> list[str]:
    """Why `document` fails `document_schema`, one "pointer: message" each ([] when it passes).

    Messages of values at, above or below a `hidden` pointer name the failed
    keyword instead, since validators quote the value. An invalid schema raises
    errors.SchemaError.
    """
    if document_schema is None:
        return []
    validator = schema.Validator(document_schema)
    hidden = list(hidden)
    problems = []
    for issue in validator.errors_of(document):
        pointer = issue.instance_path or "/"
        keyword = _tokens(issue.schema_path)[-1] if issue.schema_path else ""
        if keyword not in _KEY_ONLY_KEYWORDS and _overlaps(issue.instance_path, hidden):
            problems.append(f"{pointer}: fails the schema's {keyword!r} (value hidden: sensitive)")
        else:
            problems.append(f"{pointer}: {issue.message}")
    return problems


def _overlaps(pointer: str, hidden: Iterable[str]) -> bool:
    return any(
        pointer == other or other.startswith(pointer + "/") or pointer.startswith(other + "/")
        for other in hidden
    )


# -- splitting and rendering -------------------------------------------------------------------


def split_sensitive(
    document: Mapping[str, Any], pointers: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain, sensitive): values at `pointers` moved into `sensitive`, in the same nesting.

    Pointers that do not exist are ignored. A pointer into an array moves the
    whole array: removing one element would shift the others.
    """
    plain: dict[str, Any] = copy.deepcopy(dict(document))
    sensitive: dict[str, Any] = {}
    for pointer in pointers:
        path = _existing_prefix(plain, _tokens(pointer))
        if not path:
            continue
        parent = plain
        for token in path[:-1]:
            parent = parent[token]
        value = parent.pop(path[-1])
        target = sensitive
        for token in path[:-1]:
            target = target.setdefault(token, {})
        target[path[-1]] = value
    return plain, sensitive


def _existing_prefix(document: Mapping[str, Any], tokens: Sequence[str]) -> list[str]:
    """The path to move for `tokens`: all of it, up to an array on the way, or [] if absent."""
    node: Any = document
    for depth, token in enumerate(tokens):
        if isinstance(node, list):
            return list(tokens[:depth])
        if not isinstance(node, Mapping) or token not in node:
            return []
        node = node[token]
    return list(tokens)


def render(document: Mapping[str, Any], target: Target) -> dict[str, str]:
    """The data of a ConfigMap or Secret holding `document` as `target.format` says.

    Sorted keys throughout, so equal documents give equal bytes. env writes one
    KEY per leaf (path joined with _, upper-cased, other characters as _);
    strings as they are, other values as JSON.
    """
    if target.format == "json":
        text = jsondoc.dumps(document, indent=True, sort_keys=True).decode() + "\n"
        return {target.key or "config.json": text}
    if target.format == "yaml":
        text = yaml.safe_dump(dict(document), sort_keys=True, allow_unicode=True)
        return {target.key or "config.yaml": text}
    data: dict[str, str] = {}
    origin: dict[str, str] = {}
    for path in sorted(_leaf_paths(document, ())):
        name = _ENV_UNSAFE.sub("_", "_".join(path)).upper()
        pointer = jsondoc.join_pointer(path)
        if name in data:
            raise errors.ConfigError(
                f"env keys collide: {origin[name]} and {pointer} both become {name}; rename one"
                " or use target format json or yaml",
                key=name,
            )
        value = _value_at(document, path)
        data[name] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        origin[name] = pointer
    return dict(sorted(data.items()))


def _value_at(document: Any, path: Sequence[str]) -> Any:
    for token in path:
        document = document[token]
    return document


def content_hash(document: Any) -> str:
    """Hex SHA-256 of the RFC 8785 canonical form: equal documents, equal hashes."""
    return jsondoc.canonical_sha256(document)


# -- change events -----------------------------------------------------------------------------


def config_event_subject(namespace: str, name: str) -> str:
    """The NATS subject a ConfigSource's changes are published on."""
    for part in (namespace, name):
        if not part or any(c in part for c in ". *>\t\r\n"):
            raise errors.ValidationError(
                f"{part!r} cannot be a NATS subject token; use a Kubernetes name",
                field="namespace" if part is namespace else "name",
            )
    return CONFIG_EVENT_SUBJECT.format(namespace=namespace, name=name)


class ConfigChanged(pydantic.BaseModel):
    """A ConfigSource's merged configuration changed to `version` (published on NATS)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    namespace: str
    name: str
    version: int = pydantic.Field(ge=0)
    content_hash: str = pydantic.Field(pattern=r"^[a-f0-9]{64}$")
    previous_hash: str | None = pydantic.Field(None, pattern=r"^[a-f0-9]{64}$")
    time: datetime.datetime = pydantic.Field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC)
    )

    @property
    def subject(self) -> str:
        return config_event_subject(self.namespace, self.name)

    def to_json(self) -> bytes:
        """The event as published: compact JSON, snake_case members."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> ConfigChanged:
        """Parse a published event; a malformed one raises errors.ValidationError."""
        try:
            return cls.model_validate_json(payload)
        except pydantic.ValidationError as exc:
            raise errors.from_exception(exc) from None
