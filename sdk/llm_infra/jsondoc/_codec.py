"""Bytes to values and back: orjson for speed, rfc8785 for the one canonical form.

`dumps`/`loads` are what every llm-infra module uses on the wire; `canonical`
and `canonical_sha256` give the byte-exact RFC 8785 (JCS) form the audit hash
chain and content-addressed caches hash. Library errors become
`errors.SerializationError`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import rfc8785

from llm_infra import errors

_JSON = errors.SerializationFormat.JSON


def dumps(obj: Any, *, indent: bool = False, sort_keys: bool = False) -> bytes:
    """Serialize `obj` to compact UTF-8 JSON (two-space indented when `indent`)."""
    option = (orjson.OPT_INDENT_2 if indent else 0) | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(obj, option=option)
    except orjson.JSONEncodeError as exc:
        raise errors.SerializationError(
            f"cannot encode as JSON: {exc}", data_format=_JSON, cause=type(exc).__name__
        ) from None


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse one JSON document; a syntax error names its line and column."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise errors.SerializationError(
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            data_format=_JSON,
            location=f"line {exc.lineno}, column {exc.colno}",
            cause=type(exc).__name__,
        ) from None


def canonical(obj: Any) -> bytes:
    """The RFC 8785 canonical form: sorted keys, ECMAScript numbers, no whitespace."""
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        # NaN, infinities, integers beyond ±2**53-1 and non-string keys have no JCS form.
        raise errors.SerializationError(
            f"no canonical JSON form: {exc}", data_format=_JSON, cause=type(exc).__name__
        ) from None


def canonical_sha256(obj: Any) -> str:
    """Hex SHA-256 of `canonical(obj)`: a content hash stable across languages."""
    return hashlib.sha256(canonical(obj)).hexdigest()
