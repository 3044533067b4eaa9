"""Dot-key access into loaded settings: ``get(settings, "db.pool.size")``.

A key walks model fields by name, mapping keys and sequence indexes. Absent
and None read the same: `get` gives None, `get_or` the default, `require`
raises ConfigMissing naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from llm_infra import errors

_ABSENT = object()


def get(settings: pydantic.BaseModel, key: str) -> Any:
    """The value at dot path `key`, or None when it is absent or None."""
    return get_or(settings, key, None)


def get_or(settings: pydantic.BaseModel, key: str, default: Any) -> Any:
    """The value at dot path `key`, or `default` when it is absent or None."""
    value = _lookup(settings, key)
    return default if value is _ABSENT or value is None else value


def require(settings: pydantic.BaseModel, key: str) -> Any:
    """The value at dot path `key`; ConfigMissing naming the key when it is absent or None."""
    value = _lookup(settings, key)
    if value is _ABSENT or value is None:
        raise errors.ConfigMissing(f"no value for '{key}'", key=key)
    return value


def _lookup(settings: pydantic.BaseModel, key: str) -> Any:
    value: Any = settings
    for part in key.split("."):
        if isinstance(value, pydantic.BaseModel):
            # Fields only: not methods or properties that happen to share the name.
            value = getattr(value, part) if part in type(value).model_fields else _ABSENT
        elif isinstance(value, Mapping):
            value = value.get(part, _ABSENT)
        elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
            index = int(part) if part.lstrip("-").isdigit() else None
            in_range = index is not None and -len(value) <= index < len(value)
            value = value[index] if index is not None and in_range else _ABSENT
        else:
            value = _ABSENT
        if value is _ABSENT:
            return _ABSENT
    return value
