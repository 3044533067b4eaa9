"""SchemaRegistry: named schemas in semver versions, immutable once registered.

A version's body never changes (re-registering the same body is a no-op, a
different body is refused); `get` without a version answers the latest by
semver precedence. With `require_backward_compatible=True` a new version must
accept every document its predecessor accepted (`_compat.check_compatible`).
In memory: a process builds its registry at startup and injects it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_infra import errors
from llm_infra.schema import _compat, _validator

# semver.org 2.0.0, without build metadata folded into precedence
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)

_PrecedenceKey = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """One version of a named schema and its compiled validator."""

    name: str
    version: str
    schema: Mapping[str, Any]
    validator: _validator.Validator

    @property
    def schema_id(self) -> str:
        return f"{self.name}@{self.version}"


def semver_key(version: str) -> _PrecedenceKey:
    """Sort key with semver precedence: 1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0."""
    match = _SEMVER.match(version)
    if match is None:
        raise errors.ValidationError(
            f"not a semantic version: {version!r}", field="version", expected="MAJOR.MINOR.PATCH"
        )
    major, minor, patch, pre, _build = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    # Numeric identifiers sort before alphanumeric ones, numerically among themselves.
    idents = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")
    )
    return (int(major), int(minor), int(patch), 0, idents)


class SchemaRegistry:
    """Versions of named schemas; validate documents against a version or the latest."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, RegisteredSchema]] = {}

    def register(
        self,
        name: str,
        version: str,
        schema: Mapping[str, Any],
        *,
        require_backward_compatible: bool = False,
    ) -> RegisteredSchema:
        """Add `name@version`; errors.SchemaError when that version exists with another body.

        With `require_backward_compatible`, the closest lower version must accept
        nothing the new one rejects, else errors.SchemaError lists the reasons.
        """
        key = semver_key(version)
        schema_id = f"{name}@{version}"
        # Our own copy: a caller mutating its dict must not change a published version.
        body = copy.deepcopy(dict(schema))
        versions = self._versions.get(name, {})
        existing = versions.get(version)
        if existing is not None:
            if _canonical(existing.schema) == _canonical(body):
                return existing
            raise errors.SchemaError(
                f"version {version} of {name!r} is already registered with a different body;"
                " publish a new version instead",
                schema_id=schema_id,
            )
        if require_backward_compatible:
            previous = [v for v in versions.values() if semver_key(v.version) < key]
            if previous:
                predecessor = max(previous, key=lambda v: semver_key(v.version))
                reasons = _compat.check_compatible(predecessor.schema, body)
                if reasons:
                    raise errors.SchemaError(
                        f"not backward compatible with {predecessor.version}: "
                        + "; ".join(reasons),
                        schema_id=schema_id,
                    )
        registered = RegisteredSchema(
            name, version, body, _validator.Validator(body, schema_id=schema_id)
        )
        self._versions.setdefault(name, {})[version] = registered
        return registered

    def get(self, name: str, version: str | None = None) -> RegisteredSchema:
        """`name@version`, or the latest version by semver precedence when `version` is None."""
        versions = self._versions.get(name)
        if not versions:
            raise errors.SchemaError(f"no schema named {name!r}", schema_id=name)
        if version is None:
            return versions[max(versions, key=semver_key)]
        found = versions.get(version)
        if found is None:
            known = ", ".join(self.versions(name))
            raise errors.SchemaError(
                f"{name!r} has no version {version} (known: {known})", schema_id=f"{name}@{version}"
            )
        return found

    def versions(self, name: str) -> list[str]:
        """The registered versions of `name`, oldest first; [] for an unknown name."""
        return sorted(self._versions.get(name, {}), key=semver_key)

    def names(self) -> list[str]:
        return sorted(self._versions)

    def validate(self, name: str, instance: Any, version: str | None = None) -> RegisteredSchema:
        """Raise errors.SchemaViolation unless the instance fits; returns the version used."""
        registered = self.get(name, version)
        registered.validator.validate(instance)
        return registered


def _canonical(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))
