"""Validator: one schema compiled once by jsonschema-rs, errors mapped to our error tree.

Neighbours: `_registry` keeps versions of schemas and builds one `Validator` per
version; `errors.SchemaViolation` / `errors.SchemaError` are what callers catch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from llm_infra import errors

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# A violation message lists at most this many errors; `errors_of` has them all.
_MESSAGE_ERRORS = 10


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One reason an instance fails its schema; both paths are JSON Pointers ("" is the root)."""

    instance_path: str
    schema_path: str
    message: str


def json_pointer(parts: Sequence[str | int]) -> str:
    """RFC 6901 pointer for a path: ["items", 2, "a/b"] -> "/items/2/a~1b"."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def schema_id_of(schema: Mapping[str, Any] | bool) -> str | None:
    """The name a schema goes by in errors: its `$id`, else its `title`."""
    if isinstance(schema, Mapping):
        for key in ("$id", "title"):
            value = schema.get(key)
            if isinstance(value, str) and value:
                return value
    return None


class Validator:
    """A JSON Schema compiled once; draft from `$schema`, 2020-12 when it names none.

    Formats are annotations (the 2020-12 default), so an `"email"` that is not
    one passes; enforce formats with a pattern where it matters.
    """

    __slots__ = ("_compiled", "schema", "schema_id")

    def __init__(self, schema: Mapping[str, Any] | bool, *, schema_id: str | None = None) -> None:
        self.schema = schema
        self.schema_id = schema_id or schema_id_of(schema)
        compiled_from: dict[str, Any] | bool = (
            dict(schema) if isinstance(schema, Mapping) else schema
        )
        try:
            # Check against the draft's metaschema first: validator_for accepts
            # some invalid schemas (a wrong type in a keyword nobody reads yet).
            if isinstance(compiled_from, dict):
                jsonschema_rs.meta.validate(compiled_from)
            self._compiled = jsonschema_rs.validator_for(compiled_from)
        except jsonschema_rs.ValidationError as exc:
            raise errors.SchemaError(
                f"invalid schema: {exc.message}",
                schema_id=self.schema_id,
                path=json_pointer(exc.instance_path) or None,
            ) from None
        except (jsonschema_rs.ReferencingError, ValueError) as exc:
            raise errors.SchemaError(f"invalid schema: {exc}", schema_id=self.schema_id) from None

    def is_valid(self, instance: Any) -> bool:
        """True when the instance satisfies the schema (the fast path: no error objects)."""
        try:
            return self._compiled.is_valid(instance)
        except ValueError as exc:  # a set, a datetime, ...: not a JSON value at all
            raise _not_json(exc) from None

    def errors_of(self, instance: Any) -> list[SchemaIssue]:
        """Every error, in the order jsonschema-rs finds them; [] for a valid instance."""
        if self.is_valid(instance):
            return []
        return [
            SchemaIssue(
                instance_path=json_pointer(error.instance_path),
                schema_path=json_pointer(error.schema_path),
                message=error.message,
            )
            for error in self._compiled.iter_errors(instance)
        ]

    def validate(self, instance: Any) -> None:
        """Raise errors.SchemaViolation listing the errors; `path` is the first one's pointer."""
        issues = self.errors_of(instance)
        if not issues:
            return
        shown = "; ".join(
            f"{issue.instance_path or '/'}: {issue.message}" for issue in issues[:_MESSAGE_ERRORS]
        )
        more = len(issues) - _MESSAGE_ERRORS
        if more > 0:
            shown += f"; and {more} more"
        noun = "error" if len(issues) == 1 else "errors"
        raise errors.SchemaViolation(
            f"{len(issues)} {noun}: {shown}",
            schema_id=self.schema_id,
            path=issues[0].instance_path,
        )

    def __repr__(self) -> str:
        return f"Validator(schema_id={self.schema_id!r})"


def _not_json(exc: ValueError) -> errors.ValidationError:
    return errors.ValidationError(
        f"instance is not a JSON value: {exc}", expected="a JSON value", actual=str(exc)
    )
