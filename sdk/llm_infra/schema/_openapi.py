"""Schemas for OpenAPI 3.1 documents and from pydantic models.

OpenAPI 3.1 speaks JSON Schema 2020-12, so a schema moves in unchanged except
for where its `$ref`s point: every `$defs` entry is hoisted into
`components.schemas` and `#/$defs/X` becomes `#/components/schemas/X`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from llm_infra import errors
from llm_infra.schema import _validator

COMPONENTS_PREFIX = "#/components/schemas/"
_DEFS_KEYS = ("$defs", "definitions")
# Document-level keywords that would change how `#/components/...` refs resolve.
_DOCUMENT_KEYS = ("$schema", "$id")


def from_model(
    model: type[pydantic.BaseModel],
    *,
    mode: Literal["validation", "serialization"] = "validation",
) -> dict[str, Any]:
    """The model's JSON Schema (pydantic emits draft 2020-12), with `$schema` saying so."""
    return {"$schema": _validator.DRAFT_2020_12, **model.model_json_schema(mode=mode)}


def openapi_components(schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`{"schemas": {...}}` for an OpenAPI 3.1 `components` object.

    Each schema's `$defs` (and `definitions`), at any depth, are hoisted beside
    it and its refs rewritten; `#` (a schema referring to itself) points at its
    own component. Two definitions with one name and different bodies raise
    errors.SchemaError; identical ones are shared. Output keys are sorted.
    """
    hoisted: dict[str, dict[str, Any]] = {}
    for name, schema in schemas.items():
        _add(hoisted, name, _hoist(schema, name, hoisted), origin=name)
    return {"schemas": {name: hoisted[name] for name in sorted(hoisted)}}


def _hoist(
    schema: Mapping[str, Any], own_name: str, hoisted: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    body = copy.deepcopy(dict(schema))
    for key in _DOCUMENT_KEYS:
        body.pop(key, None)
    definitions: dict[str, Any] = {}
    for key in _DEFS_KEYS:
        definitions.update(body.pop(key, {}))
    for def_name, definition in definitions.items():
        if isinstance(definition, Mapping):
            _add(hoisted, def_name, _hoist(definition, def_name, hoisted), origin=own_name)
        else:
            _add(hoisted, def_name, definition, origin=own_name)
    result: dict[str, Any] = _rewrite_refs(body, own_name)
    return result


def _rewrite_refs(node: Any, own_name: str) -> Any:
    if isinstance(node, Mapping):
        rewritten = {key: _rewrite_refs(value, own_name) for key, value in node.items()}
        ref = rewritten.get("$ref")
        if isinstance(ref, str):
            rewritten["$ref"] = _rewrite_ref(ref, own_name)
        return rewritten
    if isinstance(node, list):
        return [_rewrite_refs(item, own_name) for item in node]
    return node


def _rewrite_ref(ref: str, own_name: str) -> str:
    for key in _DEFS_KEYS:
        prefix = f"#/{key}/"
        if ref.startswith(prefix):
            return COMPONENTS_PREFIX + ref[len(prefix) :]
    if ref == "#" or ref.startswith("#/"):
        return COMPONENTS_PREFIX + own_name + ref[1:]
    return ref  # another document's URI: OpenAPI resolves it as it is


def _add(hoisted: dict[str, Any], name: str, schema: Any, *, origin: str) -> None:
    existing = hoisted.get(name)
    if existing is not None and _canonical(existing) != _canonical(schema):
        raise errors.SchemaError(
            f"two different schemas named {name!r} (one from {origin!r}); rename one $defs entry",
            schema_id=name,
            path=COMPONENTS_PREFIX[1:] + name,
        )
    hoisted[name] = schema


def _canonical(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))
