"""Authentication and authorization for llm-infra services: who is calling, and may they.

    from llm_infra import auth, crypto

    authenticator = auth.ChainAuthenticator([
        auth.ApiKeyAuthenticator(store, pepper=settings.api_key_pepper),
        auth.JwtAuthenticator(crypto.JwksVerifier(jwks_url, audience="llm-infra")),
        auth.ServiceAccountAuthenticator(audiences=["llm-infra"]),
    ])
    identity = await authenticator.authenticate(auth.Credentials.from_headers(request.headers))
    auth.Authorizer(rules).authorize(identity, "get", "VectorCollection", "team-a", "docs")

Every failure is an `errors.AuthError` (MissingCredentials, InvalidCredentials,
InvalidToken, TokenExpired, InsufficientPermissions) whose message never
quotes a credential. Neighbours: `llm_infra.crypto` verifies JWTs and hashes
secrets, `llm_infra.http` carries the OAuth2 token request, `llm_infra.kube`
the TokenReview. The web framework binding lives in the control plane, not here.
Modules: `_identity` (Identity, Credentials, the protocol, the chain), `_jwt`,
`_apikeys`, `_kube`, `_rbac`, `_client_credentials`.
"""

from llm_infra.auth._apikeys import (
    DEFAULT_PREFIX,
    ApiKeyAuthenticator,
    ApiKeyRecord,
    ApiKeyStore,
    HashAlgorithm,
    InMemoryApiKeyStore,
)
from llm_infra.auth._client_credentials import ClientCredentials
from llm_infra.auth._identity import (
    API_KEY_HEADER,
    Authenticator,
    AuthMethod,
    ChainAuthenticator,
    Credentials,
    CredentialScheme,
    Identity,
    IdentityKind,
)
from llm_infra.auth._jwt import JwtAuthenticator, TokenVerifier
from llm_infra.auth._kube import ServiceAccountAuthenticator, identity_from_user_info
from llm_infra.auth._rbac import ACTIONS, Action, Authorizer, Rule

__all__ = [
    "ACTIONS",
    "API_KEY_HEADER",
    "DEFAULT_PREFIX",
    "Action",
    "ApiKeyAuthenticator",
    "ApiKeyRecord",
    "ApiKeyStore",
    "AuthMethod",
    "Authenticator",
    "Authorizer",
    "ChainAuthenticator",
    "ClientCredentials",
    "CredentialScheme",
    "Credentials",
    "HashAlgorithm",
    "Identity",
    "IdentityKind",
    "InMemoryApiKeyStore",
    "JwtAuthenticator",
    "Rule",
    "ServiceAccountAuthenticator",
    "TokenVerifier",
    "identity_from_user_info",
]
