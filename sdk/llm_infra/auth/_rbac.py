"""Authorizer: allow-only RBAC rules over (subject or group, namespace, kind, name, action).

Pure policy: no I/O, no clock. A request is allowed when one rule matches it
all; there are no deny rules, so rule order never matters. Patterns are an
exact name, ``*`` (anything) or ``prefix*``. A request without a name (list,
create, watch of a collection) or without a namespace (cluster scope) matches
only ``*`` in that field, as Kubernetes resourceNames do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import pydantic

from llm_infra import errors
from llm_infra.auth import _identity

Action = Literal["get", "list", "create", "update", "delete", "watch"]
ACTIONS: tuple[Action, ...] = ("get", "list", "create", "update", "delete", "watch")


def _matches(pattern: str, value: str | None) -> bool:
    if pattern == "*":
        return True
    if value is None:
        return False
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return pattern == value


def _any_matches(patterns: Iterable[str], value: str | None) -> bool:
    return any(_matches(pattern, value) for pattern in patterns)


class Rule(pydantic.BaseModel):
    """Subjects (user or group names, ``*``) may do `actions` on matching objects."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    subjects: tuple[str, ...]
    actions: tuple[Action | Literal["*"], ...]
    namespaces: tuple[str, ...] = ("*",)
    kinds: tuple[str, ...] = ("*",)
    names: tuple[str, ...] = ("*",)

    def applies_to(self, identity: _identity.Identity) -> bool:
        return any(
            subject == "*" or subject == identity.subject or subject in identity.groups
            for subject in self.subjects
        )

    def allows(
        self,
        identity: _identity.Identity,
        action: str,
        kind: str,
        namespace: str | None,
        name: str | None,
    ) -> bool:
        return (
            self.applies_to(identity)
            and ("*" in self.actions or action in self.actions)
            and _any_matches(self.kinds, kind)
            and _any_matches(self.namespaces, namespace)
            and _any_matches(self.names, name)
        )


class Authorizer:
    """Judges requests against `rules`: allowed if any rule allows, else denied."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    def allowed(
        self,
        identity: _identity.Identity,
        action: str,
        kind: str,
        namespace: str | None = None,
        name: str | None = None,
    ) -> bool:
        return any(rule.allows(identity, action, kind, namespace, name) for rule in self.rules)

    def authorize(
        self,
        identity: _identity.Identity,
        action: str,
        kind: str,
        namespace: str | None = None,
        name: str | None = None,
    ) -> None:
        """Return if allowed; else raise InsufficientPermissions naming subject and request."""
        if self.allowed(identity, action, kind, namespace, name):
            return
        scope = f" in namespace {namespace!r}" if namespace is not None else ""
        target = f"{kind} {name!r}" if name is not None else kind
        raise errors.InsufficientPermissions(
            f"{identity.subject!r} may not {action} {target}{scope}", identity=identity.subject
        )
