"""JSONPath queries (RFC 9535) through python-jsonpath in its strict, RFC-only mode.

Compiled paths are cached; a path that does not parse raises
`errors.ValidationError` naming it. Documents are parsed values: a `str`
document is a JSON string, never JSON text to parse (the library would parse it).
"""

from __future__ import annotations

import functools
from typing import Any

import jsonpath

from llm_infra import errors

# Strict: RFC 9535 syntax and functions only, no python-jsonpath extensions.
_ENV = jsonpath.JSONPathEnvironment(strict=True, unicode_escape=True)


@functools.lru_cache(maxsize=512)
def _compile(path: str) -> jsonpath.JSONPath | jsonpath.CompoundJSONPath:
    try:
        return _ENV.compile(path)
    except jsonpath.JSONPathError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise errors.ValidationError(
            f"invalid JSONPath {path!r}: {detail}", field=path, cause=type(exc).__name__
        ) from None


def query_all(doc: Any, path: str) -> list[Any]:
    """Every value `path` selects in `doc`, in RFC 9535 result order (the values, not copies)."""
    compiled = _compile(path)
    if isinstance(doc, str):
        # A string has no children, so only the bare root query selects anything.
        segments = getattr(compiled, "segments", None)
        return [doc] if segments == () else []
    try:
        return compiled.findall(doc)
    except jsonpath.JSONPathError as exc:
        raise errors.ValidationError(
            f"JSONPath {path!r} failed: {exc}", field=path, cause=type(exc).__name__
        ) from None


def query(doc: Any, path: str) -> Any | None:
    """The first value `path` selects in `doc`, or None (also when that value is null)."""
    found = query_all(doc, path)
    return found[0] if found else None
