"""JwtAuthenticator: bearer JWTs checked by a `llm_infra.crypto` verifier, mapped to Identity.

Verification (signature, exp/nbf, issuer, audience) belongs to the verifier
(`crypto.JwtVerifier`, `crypto.JwksVerifier`); this module is the policy that
turns verified claims into an `Identity`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from llm_infra import errors
from llm_infra.auth import _identity


class TokenVerifier(Protocol):
    """What `crypto.JwtVerifier` and `crypto.JwksVerifier` offer: verified claims, or an AuthError.

    `verify` may be sync (local keys) or async (a JWKS fetched over HTTP).
    """

    def verify(self, token: str) -> Mapping[str, Any] | Awaitable[Mapping[str, Any]]: ...


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path (``realm_access.roles``), or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _names(value: Any) -> tuple[str, ...]:
    """Groups as a JSON list of strings or a space-separated string (as OAuth `scope` is)."""
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    return ()


class JwtAuthenticator:
    """Authenticates bearer JWTs with `verifier` and maps claims to an Identity.

    `sub` is the subject (required); `groups_claim` (a dotted path, e.g.
    ``realm_access.roles``) gives the groups; `tenant_claim` the tenant. The
    kind is "service" for a client-credentials token (RFC 9068 §2.2: `sub`
    equals `client_id`/`azp`), else "user".
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        groups_claim: str = "groups",
        tenant_claim: str = "tenant",
    ) -> None:
        self.verifier = verifier
        self.groups_claim = groups_claim
        self.tenant_claim = tenant_claim

    def handles(self, credentials: _identity.Credentials) -> bool:
        return credentials.scheme == "bearer"

    async def authenticate(self, credentials: _identity.Credentials) -> _identity.Identity:
        if not self.handles(credentials):
            raise errors.InvalidCredentials("a JWT is sent as a bearer token")
        verified = self.verifier.verify(credentials.secret.get_secret_value())
        claims = await verified if inspect.isawaitable(verified) else verified
        return self.identity_from_claims(claims)

    def identity_from_claims(self, claims: Mapping[str, Any]) -> _identity.Identity:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise errors.InvalidToken("the token has no 'sub' claim")
        tenant = _claim(claims, self.tenant_claim)
        client = claims.get("client_id", claims.get("azp"))
        return _identity.Identity(
            subject=subject,
            kind="service" if client == subject else "user",
            method="jwt",
            groups=_names(_claim(claims, self.groups_claim)),
            tenant=str(tenant) if tenant is not None else None,
            claims=dict(claims),
        )
