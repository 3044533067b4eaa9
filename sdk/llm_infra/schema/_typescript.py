"""TypeScript declarations from a JSON Schema, for front ends that send our documents.

Deterministic: the same schema gives the same text (named types sorted, keys in
schema order). `$defs` / `definitions` become named exports, `$ref`s to them
become their names; anything it cannot express becomes `unknown`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_INDENT = "  "
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_PRIMITIVES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "null": "null",
}
_LOCAL_REF = re.compile(r"^#/(?:\$defs|definitions)/([^/]+)$")


def to_typescript(schema: Mapping[str, Any] | bool, name: str) -> str:
    """`export interface`/`export type` declarations: one per $defs entry, then `name`."""
    blocks: list[str] = []
    if isinstance(schema, Mapping):
        for defs in ("$defs", "definitions"):
            for def_name, definition in sorted(schema.get(defs, {}).items()):
                blocks.append(_declaration(definition, type_name(def_name)))
    blocks.append(_declaration(schema, type_name(name)))
    return "\n\n".join(blocks) + "\n"


def type_name(name: str) -> str:
    """A TypeScript identifier for a schema name: "user-profile" -> "UserProfile"."""
    words = re.split(r"[^A-Za-z0-9]+", name)
    joined = "".join(word[:1].upper() + word[1:] for word in words if word)
    if not joined:
        return "Anonymous"
    return f"_{joined}" if joined[0].isdigit() else joined


def _declaration(schema: Any, name: str) -> str:
    doc = _doc_comment(schema, "")
    if isinstance(schema, Mapping) and _is_interface(schema):
        return f"{doc}export interface {name} {_object_body(schema, '')}"
    return f"{doc}export type {name} = {_render(schema, '')};"


def _is_interface(schema: Mapping[str, Any]) -> bool:
    return _types_of(schema) == ["object"] and "properties" in schema and not _has_union(schema)


def _has_union(schema: Mapping[str, Any]) -> bool:
    return any(key in schema for key in ("oneOf", "anyOf", "allOf", "enum", "const", "$ref"))


def _doc_comment(schema: Any, indent: str) -> str:
    if not isinstance(schema, Mapping) or not isinstance(schema.get("description"), str):
        return ""
    lines = schema["description"].replace("*/", "*\\/").strip().splitlines()
    if len(lines) == 1:
        return f"{indent}/** {lines[0]} */\n"
    body = "".join(f"{indent} *{' ' + line if line else ''}\n" for line in lines)
    return f"{indent}/**\n{body}{indent} */\n"


def _types_of(schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("type")
    if declared is None:
        return []
    return [declared] if isinstance(declared, str) else list(declared)


def _render(schema: Any, indent: str) -> str:
    """The type expression for a schema; `indent` is the current line's indentation."""
    if schema is True or schema == {}:
        return "unknown"
    if schema is False:
        return "never"
    if not isinstance(schema, Mapping):
        return "unknown"
    if "$ref" in schema:
        match = _LOCAL_REF.match(schema["$ref"])
        return type_name(match.group(1)) if match else "unknown"
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return _union([json.dumps(value) for value in schema["enum"]])
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return _union([_render(option, indent) for option in schema[combinator]])
    if "allOf" in schema:
        parts = [_wrap(_render(part, indent)) for part in schema["allOf"]]
        return " & ".join(dict.fromkeys(parts))
    types = _types_of(schema)
    if not types:
        if "properties" in schema or "additionalProperties" in schema:
            types = ["object"]
        elif "items" in schema or "prefixItems" in schema:
            types = ["array"]
        else:
            return "unknown"
    return _union([_render_type(kind, schema, indent) for kind in types])


def _render_type(kind: str, schema: Mapping[str, Any], indent: str) -> str:
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    if kind == "array":
        if "prefixItems" in schema:
            members = [_render(item, indent) for item in schema["prefixItems"]]
            rest = schema.get("items", True)
            if rest is not False:
                members.append(f"...{_wrap(_render(rest, indent))}[]")
            return f"[{', '.join(members)}]"
        return f"{_wrap(_render(schema.get('items', True), indent))}[]"
    if kind == "object":
        if "properties" not in schema and "additionalProperties" not in schema:
            return "Record<string, unknown>"
        return _object_body(schema, indent)
    return "unknown"


def _object_body(schema: Mapping[str, Any], indent: str) -> str:
    inner = indent + _INDENT
    required = set(schema.get("required", ()))
    lines: list[str] = []
    member_types: list[str] = []
    for prop, prop_schema in schema.get("properties", {}).items():
        rendered = _render(prop_schema, inner)
        optional = prop not in required
        key = prop if _IDENTIFIER.match(prop) else json.dumps(prop)
        lines.append(
            f"{_doc_comment(prop_schema, inner)}{inner}{key}{'?' if optional else ''}: {rendered};"
        )
        member_types.append(rendered)
        if optional:
            member_types.append("undefined")
    extra = schema.get("additionalProperties")
    if extra is not None and extra is not False:
        value = _render(extra, inner)
        if member_types:
            # TypeScript checks every named property against the index signature.
            value = _union([value, *member_types])
            if "\n" in value:
                value = "unknown"
        lines.append(f"{inner}[key: string]: {value};")
    if not lines:
        return "{}"
    return "{\n" + "\n".join(lines) + f"\n{indent}}}"


def _union(options: list[str]) -> str:
    unique = list(dict.fromkeys(options))
    if "unknown" in unique:
        return "unknown"
    return " | ".join(unique) if unique else "never"


def _wrap(expression: str) -> str:
    """Parenthesize a top-level union or intersection, so `[]` or `&` binds to all of it."""
    depth = 0
    quoted = False
    for index, char in enumerate(expression):
        if quoted:
            quoted = char != '"' or expression[index - 1] == "\\"
        elif char == '"':
            quoted = True
        elif char in "{[(<":
            depth += 1
        elif char in "}])>":
            depth -= 1
        elif depth == 0 and char in "|&" and expression[index - 1 : index + 2] == f" {char} ":
            return f"({expression})"
    return expression
