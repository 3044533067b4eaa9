"""Who is calling and with what: `Identity`, `Credentials`, the `Authenticator` protocol, the chain.

Credentials are parsed once at the edge (`Credentials.from_headers`) and the
authenticators (`_jwt`, `_apikeys`, `_kube`) turn them into an `Identity` that
the `Authorizer` (`_rbac`) judges. An Identity never holds the credential.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import pydantic

from llm_infra import errors

IdentityKind = Literal["user", "service", "apikey", "serviceaccount"]
AuthMethod = Literal["jwt", "apikey", "serviceaccount_token"]
CredentialScheme = Literal["bearer", "apikey"]

API_KEY_HEADER = "X-API-Key"


class Identity(pydantic.BaseModel):
    """An authenticated caller. `claims` carries what the authenticator learnt, never a secret."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    subject: str
    kind: IdentityKind
    method: AuthMethod
    groups: tuple[str, ...] = ()
    tenant: str | None = None
    """The tenant claim of a JWT, or the namespace of a Kubernetes ServiceAccount."""
    namespace: str | None = None
    claims: Mapping[str, Any] = pydantic.Field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """A credential as presented: a bearer token or an API key. repr() shows no secret."""

    scheme: CredentialScheme
    secret: pydantic.SecretStr

    @classmethod
    def bearer(cls, token: str) -> Credentials:
        return cls("bearer", pydantic.SecretStr(token))

    @classmethod
    def api_key(cls, key: str) -> Credentials:
        return cls("apikey", pydantic.SecretStr(key))

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Credentials:
        """Parse ``Authorization: Bearer <token>`` or ``X-API-Key: <key>`` (names case-insensitive).

        Authorization wins when both are sent. Neither header: MissingCredentials;
        another scheme (Basic, ...) or an empty value: InvalidCredentials.
        """
        lowered = {name.lower(): value for name, value in headers.items()}
        authorization = lowered.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                # The scheme is a word of the protocol, not a secret; Basic's value stays unsaid.
                raise errors.InvalidCredentials(
                    f"unsupported authorization scheme {scheme[:20]!r}: expected Bearer"
                )
            if not token.strip():
                raise errors.InvalidCredentials("empty bearer token")
            return cls.bearer(token.strip())
        api_key = lowered.get(API_KEY_HEADER.lower())
        if api_key is not None:
            if not api_key.strip():
                raise errors.InvalidCredentials(f"empty {API_KEY_HEADER} header")
            return cls.api_key(api_key.strip())
        raise errors.MissingCredentials(
            f"no credentials given: send 'Authorization: Bearer <token>' or '{API_KEY_HEADER}'"
        )


@runtime_checkable
class Authenticator(Protocol):
    """Turns credentials into an Identity, or raises an `errors.AuthError`."""

    def handles(self, credentials: Credentials) -> bool:
        """Whether this authenticator understands credentials of this kind (no I/O)."""
        ...

    async def authenticate(self, credentials: Credentials) -> Identity: ...


class ChainAuthenticator:
    """Tries each authenticator that handles the credentials, in order; the first success wins.

    InvalidToken and InvalidCredentials mean "not mine or not valid": the next
    authenticator gets its turn and, if every one refuses, the last refusal is
    raised. Any other error (TokenExpired after a good signature, an
    unreachable API server) is final and raised at once.
    """

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self.authenticators = tuple(authenticators)

    def handles(self, credentials: Credentials) -> bool:
        return any(auth.handles(credentials) for auth in self.authenticators)

    async def authenticate(self, credentials: Credentials) -> Identity:
        refusal: errors.AuthError | None = None
        for authenticator in self.authenticators:
            if not authenticator.handles(credentials):
                continue
            try:
                return await authenticator.authenticate(credentials)
            except (errors.InvalidToken, errors.InvalidCredentials) as exc:
                refusal = exc
        if refusal is not None:
            raise refusal
        raise errors.InvalidCredentials(
            f"no authenticator accepts {credentials.scheme} credentials"
        )
