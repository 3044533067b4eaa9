"""Backward compatibility of two schema versions: may a document valid under `old` fail `new`?

Pure and conservative: it reads the keywords most schema edits touch (type,
enum, bounds, required, properties, additionalProperties, items) and recurses
into properties, items, additionalProperties and $defs; it does not prove
compatibility of arbitrary combinators. `_registry` calls it on register.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# keyword -> True when a larger value is tighter (a lower bound), False for an upper bound
_BOUNDS = {
    "minimum": True,
    "exclusiveMinimum": True,
    "minLength": True,
    "minItems": True,
    "minProperties": True,
    "maximum": False,
    "exclusiveMaximum": False,
    "maxLength": False,
    "maxItems": False,
    "maxProperties": False,
}


def check_compatible(
    old_schema: Mapping[str, Any] | bool, new_schema: Mapping[str, Any] | bool
) -> list[str]:
    """Reasons a document valid under `old_schema` may be invalid under `new_schema`; [] if none.

    Each reason starts with the schema location it concerns, as a JSON Pointer
    into the instance's shape (`/properties/name`), `/` for the root.
    """
    reasons: list[str] = []
    _compare(old_schema, new_schema, "", reasons)
    return reasons


def _compare(old: Any, new: Any, at: str, reasons: list[str]) -> None:
    where = at or "/"
    if new is False and old is not False:
        reasons.append(f"{where}: schema now rejects everything")
        return
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return  # `true` or a non-schema on either side: nothing we can compare
    _compare_type(old, new, where, reasons)
    _compare_enum(old, new, where, reasons)
    _compare_bounds(old, new, where, reasons)
    _compare_object(old, new, at, where, reasons)
    old_items, new_items = old.get("items"), new.get("items")
    if old_items is not None and new_items is not None:
        _compare(old_items, new_items, f"{at}/items", reasons)
    elif new_items is not None and old_items is None:
        _compare({}, new_items, f"{at}/items", reasons)
    for defs in ("$defs", "definitions"):
        old_defs, new_defs = old.get(defs), new.get(defs)
        if isinstance(old_defs, Mapping) and isinstance(new_defs, Mapping):
            for name in sorted(old_defs.keys() & new_defs.keys()):
                _compare(old_defs[name], new_defs[name], f"{at}/{defs}/{name}", reasons)


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _compare_type(
    old: Mapping[str, Any], new: Mapping[str, Any], where: str, reasons: list[str]
) -> None:
    new_types = _types(new)
    if new_types is None:
        return
    old_types = _types(old)
    if old_types is None:
        reasons.append(f"{where}: type restricted to {_show(sorted(new_types))} (was any)")
        return
    # Every integer is a number, so integer -> number widens and stays compatible.
    lost = {
        t
        for t in old_types
        if t not in new_types and not (t == "integer" and "number" in new_types)
    }
    if lost:
        reasons.append(
            f"{where}: type changed from {_show(sorted(old_types))} to {_show(sorted(new_types))}"
            f" ({_show(sorted(lost))} no longer accepted)"
        )


def _compare_enum(
    old: Mapping[str, Any], new: Mapping[str, Any], where: str, reasons: list[str]
) -> None:
    if "enum" not in new:
        return
    new_values = {_canonical(v) for v in new["enum"]}
    if "enum" not in old:
        reasons.append(f"{where}: enum added (values now limited to {_show(new['enum'])})")
        return
    removed = [v for v in old["enum"] if _canonical(v) not in new_values]
    if removed:
        reasons.append(f"{where}: enum value(s) removed: {_show(removed)}")


def _compare_bounds(
    old: Mapping[str, Any], new: Mapping[str, Any], where: str, reasons: list[str]
) -> None:
    for keyword, lower in _BOUNDS.items():
        new_bound = _number(new.get(keyword))
        if new_bound is None:
            continue
        old_bound = _number(old.get(keyword))
        if old_bound is None:
            reasons.append(f"{where}: {keyword} {new_bound} added")
        elif (new_bound > old_bound) if lower else (new_bound < old_bound):
            reasons.append(f"{where}: {keyword} tightened from {old_bound} to {new_bound}")


def _compare_object(
    old: Mapping[str, Any], new: Mapping[str, Any], at: str, where: str, reasons: list[str]
) -> None:
    old_required = set(old.get("required", ()))
    reasons.extend(
        f"{where}: property {name!r} is newly required"
        for name in sorted(set(new.get("required", ())) - old_required)
    )
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    old_extra, new_extra = (
        old.get("additionalProperties", True),
        new.get("additionalProperties", True),
    )
    if new_extra is False:
        reasons.extend(
            f"{where}: property {name!r} removed while additionalProperties is false"
            for name in sorted(old_props.keys() - new_props.keys())
        )
        if old_extra is not False:
            reasons.append(f"{where}: additionalProperties turned false")
    elif isinstance(new_extra, Mapping):
        # A property dropped from `properties` now falls under additionalProperties.
        for name in sorted(old_props.keys() - new_props.keys()):
            _compare(old_props[name], new_extra, f"{at}/properties/{name}", reasons)
        if isinstance(old_extra, Mapping):
            _compare(old_extra, new_extra, f"{at}/additionalProperties", reasons)
        elif old_extra is True:
            _compare({}, new_extra, f"{at}/additionalProperties", reasons)
    for name in sorted(old_props.keys() & new_props.keys()):
        _compare(old_props[name], new_props[name], f"{at}/properties/{name}", reasons)


def _number(value: Any) -> float | None:
    # draft-04 spells exclusiveMinimum as a boolean: not a bound of its own
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
