"""The control plane's access policy, free of any web framework: who may do what, where.

`AccessRule`s grant actions (read, write, admin) on resource kinds in
namespaces to subjects or groups; `access.service.Security` applies them to
an authenticated caller, and `web.auth.require` is the FastAPI dependency that
asks it. Settings carry the rules (`Settings.access_rules`).
"""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

import pydantic

from llm_infra import auth

AuthMode = Literal["api-key", "jwt", "api-key+jwt", "none"]
Action = Literal["read", "write", "admin"]
Kind = Literal["collections", "configs", "auditsinks", "routes"]
"""Resource kinds as the /v1 paths name them (``/v1/namespaces/{ns}/<kind>/...``)."""

ACTION_EXTRA = "x-llm-infra-action"
READ_ONLY_ROUTE: dict[str, Any] = {ACTION_EXTRA: "read"}
"""`openapi_extra` of a POST route that only reads (search, count): it needs `read`, not `write`."""

ANONYMOUS = auth.Identity(
    subject="system:anonymous", kind="user", method="apikey", claims={"anonymous": True}
)
"""The principal of every request under auth_mode "none" (llm_infra.auth has no method for it)."""

# Rights nest: whoever may write may read, an admin may do everything.
IMPLIED: dict[Action, frozenset[Action]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}


APIKEY_SUBJECT = "apikey:"
JWT_SUBJECT = "jwt:"


def subject_of(identity: auth.Identity) -> str:
    """The caller's subject, saying how it signed in: ``apikey:<owner>``, ``jwt:<iss>#<sub>``.

    One space for both would let a JWT whose ``sub`` is ``alice`` inherit the rules of
    the API key owner alice (or the reverse); the issuer keeps two identity providers'
    ``alice`` apart as well.
    """
    if identity.method == "jwt":
        return f"{JWT_SUBJECT}{identity.claims.get('iss', '')}#{identity.subject}"
    if identity.method == "apikey" and identity is not ANONYMOUS:
        return f"{APIKEY_SUBJECT}{identity.subject}"
    return identity.subject


def _check_subject(subject: str) -> str:
    if subject == "*":
        return subject
    if subject.startswith(APIKEY_SUBJECT) and len(subject) > len(APIKEY_SUBJECT):
        return subject
    issuer, hash_sign, sub = subject.removeprefix(JWT_SUBJECT).rpartition("#")
    if subject.startswith(JWT_SUBJECT) and issuer and hash_sign and sub:
        return subject
    raise ValueError(
        f"subject {subject!r} does not say how the caller signs in: write"
        f" 'apikey:{subject}' for an API key's owner, 'jwt:<issuer>#{subject}' for a JWT's"
        " sub, or '*' for every authenticated caller"
    )


class AccessRule(pydantic.BaseModel):
    """A grant: `subjects` or members of `groups` may do `actions` on `kinds` in `namespaces`.

    Namespaces and kinds are globs (``team-*``). A subject says how the caller signs in:
    ``apikey:<owner>`` (an API key's owner), ``jwt:<issuer>#<sub>`` (a JWT's issuer and
    ``sub``), or ``*`` for every authenticated caller; groups come from JWTs. Grants only,
    so order never matters. `write` includes `read`; `admin` (the collection admin API's
    PUT and DELETE) includes both.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    subjects: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ("*",)
    kinds: tuple[str, ...] = ("*",)
    actions: tuple[Action, ...] = pydantic.Field(min_length=1)

    @pydantic.field_validator("subjects")
    @classmethod
    def _qualified(cls, subjects: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_subject(subject) for subject in subjects)

    @pydantic.model_validator(mode="after")
    def _names_someone(self) -> AccessRule:
        if not self.subjects and not self.groups:
            raise ValueError("an access rule needs subjects or groups (use ['*'] for everyone)")
        return self

    def grants(
        self, identity: auth.Identity, namespace: str | None, kind: str, action: Action
    ) -> bool:
        return (
            self._covers(identity)
            and any(action in IMPLIED[granted] for granted in self.actions)
            and _any_glob(self.kinds, kind)
            and _any_glob(self.namespaces, namespace)
        )

    def _covers(self, identity: auth.Identity) -> bool:
        return (
            "*" in self.subjects
            or identity.subject in self.subjects
            or any(group in self.groups for group in identity.groups)
        )


def _any_glob(patterns: tuple[str, ...], value: str | None) -> bool:
    # A request outside any namespace matches only a rule for every namespace.
    if value is None:
        return "*" in patterns
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


__all__ = [
    "ACTION_EXTRA",
    "ANONYMOUS",
    "APIKEY_SUBJECT",
    "IMPLIED",
    "JWT_SUBJECT",
    "READ_ONLY_ROUTE",
    "AccessRule",
    "Action",
    "AuthMode",
    "Kind",
    "subject_of",
]
