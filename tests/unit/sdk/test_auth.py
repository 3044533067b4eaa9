"""llm_infra.auth without servers: headers, JWTs, API keys, RBAC, OAuth2 client credentials."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import secrets
import urllib.parse
from typing import Any

import httpx
import pydantic
import pytest

import llm_infra.auth
from llm_infra import auth, crypto, errors

JWT_SECRET = "s" * 32 + "-jwt-test-secret"
PEPPER = b"p" * 32


def _jwt_authenticator(**options: Any) -> auth.JwtAuthenticator:
    verifier = crypto.JwtVerifier(
        [crypto.JwtKey.hmac(JWT_SECRET)], issuer="https://idp.test", audience="llm-infra"
    )
    return auth.JwtAuthenticator(verifier, **options)


def _jwt(claims: dict[str, Any], *, expires_in: float = 300) -> str:
    base = {"iss": "https://idp.test", "aud": "llm-infra"}
    return crypto.sign_jwt(base | claims, crypto.JwtKey.hmac(JWT_SECRET), expires_in=expires_in)


def _secret_part(key: str) -> str:
    # <prefix>_<id>_<secret>: the secret may itself contain "_" (urlsafe base64).
    return key.split("_", 2)[-1]


def _assert_no_secret(exc: errors.InfraError, secret: str) -> None:
    for text in (str(exc), repr(exc), json.dumps(exc.to_problem().model_dump(mode="json"))):
        assert secret not in text


def test_all_is_complete() -> None:
    public = {name for name in vars(llm_infra.auth) if not name.startswith("_")}
    modules = {"annotations"} | {name for name in public if name.startswith("_")}
    assert set(auth.__all__) == public - modules


# -- headers -----------------------------------------------------------------------------------


def test_bearer_header_is_parsed() -> None:
    credentials = auth.Credentials.from_headers({"authorization": "Bearer abc.def"})
    assert credentials.scheme == "bearer"
    assert credentials.secret.get_secret_value() == "abc.def"
    assert "abc.def" not in repr(credentials)


def test_api_key_header_is_parsed_case_insensitively() -> None:
    credentials = auth.Credentials.from_headers({"x-api-KEY": "llmi_0123_secret"})
    assert credentials.scheme == "apikey"
    assert credentials.secret.get_secret_value() == "llmi_0123_secret"


def test_authorization_wins_over_api_key() -> None:
    headers = {"Authorization": "bearer tok", "X-API-Key": "key"}
    assert auth.Credentials.from_headers(headers).scheme == "bearer"


def test_missing_headers_raise_missing_credentials() -> None:
    with pytest.raises(errors.MissingCredentials):
        auth.Credentials.from_headers({"accept": "application/json"})


@pytest.mark.parametrize("value", ["Basic dXNlcjpodW50ZXIy", "Bearer ", "Bearer"])
def test_other_schemes_and_empty_tokens_are_invalid(value: str) -> None:
    with pytest.raises(errors.InvalidCredentials) as info:
        auth.Credentials.from_headers({"Authorization": value})
    _assert_no_secret(info.value, "dXNlcjpodW50ZXIy")


# -- JWT ---------------------------------------------------------------------------------------


async def test_jwt_maps_claims_to_identity() -> None:
    authenticator = _jwt_authenticator(groups_claim="realm_access.roles", tenant_claim="org")
    token = _jwt({"sub": "alice", "realm_access": {"roles": ["admin", "dev"]}, "org": "acme"})
    identity = await authenticator.authenticate(auth.Credentials.bearer(token))
    assert identity.subject == "alice"
    assert identity.kind == "user"
    assert identity.method == "jwt"
    assert identity.groups == ("admin", "dev")
    assert identity.tenant == "acme"
    assert identity.claims["iss"] == "https://idp.test"
    with pytest.raises(pydantic.ValidationError):
        identity.subject = "mallory"  # type: ignore[misc]


async def test_client_credentials_jwt_is_a_service() -> None:
    token = _jwt({"sub": "svc-ingest", "client_id": "svc-ingest", "groups": "a b"})
    identity = await _jwt_authenticator().authenticate(auth.Credentials.bearer(token))
    assert identity.kind == "service"
    assert identity.groups == ("a", "b")


async def test_expired_jwt_raises_token_expired() -> None:
    token = _jwt({"sub": "alice"}, expires_in=-3600)
    with pytest.raises(errors.TokenExpired) as info:
        await _jwt_authenticator().authenticate(auth.Credentials.bearer(token))
    _assert_no_secret(info.value, token)


async def test_wrong_audience_raises_invalid_token() -> None:
    token = crypto.sign_jwt(
        {"sub": "alice", "iss": "https://idp.test", "aud": "someone-else"},
        crypto.JwtKey.hmac(JWT_SECRET),
        expires_in=300,
    )
    with pytest.raises(errors.InvalidToken) as info:
        await _jwt_authenticator().authenticate(auth.Credentials.bearer(token))
    _assert_no_secret(info.value, token)


async def test_jwt_without_subject_is_invalid() -> None:
    with pytest.raises(errors.InvalidToken):
        await _jwt_authenticator().authenticate(auth.Credentials.bearer(_jwt({})))


# -- API keys ----------------------------------------------------------------------------------


@pytest.fixture(params=["argon2id", "hmac-sha256"])
def api_keys(request: pytest.FixtureRequest) -> auth.ApiKeyAuthenticator:
    pepper = PEPPER if request.param == "hmac-sha256" else None
    return auth.ApiKeyAuthenticator(auth.InMemoryApiKeyStore(), pepper=pepper)


async def test_created_key_is_shown_once_and_never_stored(
    api_keys: auth.ApiKeyAuthenticator,
) -> None:
    plaintext, record = await api_keys.create_key("ci-bot", ["vectors:read"])
    key = plaintext.get_secret_value()
    prefix, key_id, secret = key.split("_", 2)
    assert (prefix, key_id) == ("llmi", record.key_id)
    assert key not in repr(plaintext)
    assert isinstance(api_keys.store, auth.InMemoryApiKeyStore)
    stored = api_keys.store.records[record.key_id]
    dumped = stored.model_dump_json()
    assert secret not in dumped
    assert key not in dumped
    assert secret not in repr(stored)
    if stored.algorithm == "argon2id":
        assert stored.secret_hash.startswith("$argon2id$")
    else:
        assert len(bytes.fromhex(stored.secret_hash)) == 32


async def test_key_verifies_from_either_header(api_keys: auth.ApiKeyAuthenticator) -> None:
    plaintext, record = await api_keys.create_key("ci-bot", ["vectors:read"])
    key = plaintext.get_secret_value()
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        credentials = auth.Credentials.from_headers(headers)
        assert api_keys.handles(credentials)
        identity = await api_keys.authenticate(credentials)
        assert identity.subject == "ci-bot"
        assert identity.kind == "apikey"
        assert identity.claims == {"key_id": record.key_id, "scopes": ["vectors:read"]}
        assert key not in identity.model_dump_json()


async def test_wrong_secret_and_unknown_id_are_refused(
    api_keys: auth.ApiKeyAuthenticator,
) -> None:
    plaintext, record = await api_keys.create_key("ci-bot")
    wrong = f"llmi_{record.key_id}_{secrets.token_urlsafe(32)}"
    unknown = f"llmi_{'0' * 16}_{secrets.token_urlsafe(32)}"
    for key in (wrong, unknown, "llmi_nope", "other_0123456789abcdef_x"):
        with pytest.raises(errors.InvalidCredentials) as info:
            await api_keys.authenticate(auth.Credentials.api_key(key))
        if len(_secret_part(key)) >= 16:  # "llmi_nope" and "..._x" carry no real secret
            _assert_no_secret(info.value, _secret_part(key))
        _assert_no_secret(info.value, _secret_part(plaintext.get_secret_value()))


async def test_revoked_and_expired_keys_are_refused(api_keys: auth.ApiKeyAuthenticator) -> None:
    plaintext, record = await api_keys.create_key("ci-bot")
    await api_keys.revoke(record.key_id)
    with pytest.raises(errors.InvalidCredentials, match="revoked") as info:
        await api_keys.authenticate(auth.Credentials.api_key(plaintext.get_secret_value()))
    _assert_no_secret(info.value, _secret_part(plaintext.get_secret_value()))

    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    expired, _ = await api_keys.create_key("ci-bot", expires_at=past)
    with pytest.raises(errors.InvalidCredentials, match="expired"):
        await api_keys.authenticate(auth.Credentials.api_key(expired.get_secret_value()))

    with pytest.raises(errors.NotFound):
        await api_keys.revoke("0" * 16)


async def test_hmac_keys_need_the_pepper() -> None:
    store = auth.InMemoryApiKeyStore()
    peppered = auth.ApiKeyAuthenticator(store, pepper=PEPPER)
    plaintext, _ = await peppered.create_key("ci-bot")
    credentials = auth.Credentials.api_key(plaintext.get_secret_value())
    with pytest.raises(errors.InvalidCredentials):
        await auth.ApiKeyAuthenticator(store).authenticate(credentials)
    with pytest.raises(errors.InvalidCredentials):
        await auth.ApiKeyAuthenticator(store, pepper=b"q" * 32).authenticate(credentials)
    # Keys made before the pepper was configured keep working after it is.
    legacy, _ = await auth.ApiKeyAuthenticator(store).create_key("old-bot")
    identity = await peppered.authenticate(auth.Credentials.api_key(legacy.get_secret_value()))
    assert identity.subject == "old-bot"


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(errors.ConfigError):
        auth.ApiKeyAuthenticator(auth.InMemoryApiKeyStore(), pepper=b"short")
    with pytest.raises(errors.ConfigError):
        auth.ApiKeyAuthenticator(auth.InMemoryApiKeyStore(), prefix="has_underscore")


# -- chain -------------------------------------------------------------------------------------


async def test_chain_routes_by_credential_type() -> None:
    api_keys = auth.ApiKeyAuthenticator(auth.InMemoryApiKeyStore(), pepper=PEPPER)
    chain = auth.ChainAuthenticator([_jwt_authenticator(), api_keys])
    plaintext, _ = await api_keys.create_key("ci-bot")
    by_key = await chain.authenticate(auth.Credentials.api_key(plaintext.get_secret_value()))
    assert by_key.method == "apikey"
    # An API key sent as a bearer token: the JWT authenticator refuses, the next one accepts.
    by_bearer = await chain.authenticate(auth.Credentials.bearer(plaintext.get_secret_value()))
    assert by_bearer.subject == "ci-bot"
    by_jwt = await chain.authenticate(auth.Credentials.bearer(_jwt({"sub": "alice"})))
    assert by_jwt.method == "jwt"
    with pytest.raises(errors.InvalidToken):
        await chain.authenticate(auth.Credentials.bearer("garbage"))
    with pytest.raises(errors.TokenExpired):
        await chain.authenticate(auth.Credentials.bearer(_jwt({"sub": "a"}, expires_in=-999)))
    with pytest.raises(errors.InvalidCredentials, match="no authenticator"):
        await auth.ChainAuthenticator([_jwt_authenticator()]).authenticate(
            auth.Credentials.api_key("k")
        )


# -- RBAC --------------------------------------------------------------------------------------


def _identity(subject: str = "alice", groups: tuple[str, ...] = ()) -> auth.Identity:
    return auth.Identity(subject=subject, kind="user", method="jwt", groups=groups)


def test_rbac_exact_group_and_wildcards() -> None:
    authorizer = auth.Authorizer(
        [
            auth.Rule(subjects=("alice",), actions=("get", "list"), namespaces=("team-a",)),
            auth.Rule(
                subjects=("editors",),
                actions=("*",),
                namespaces=("team-*",),
                kinds=("VectorCollection",),
                names=("docs-*",),
            ),
            auth.Rule(subjects=("*",), actions=("get",), kinds=("Model",), names=("public",)),
        ]
    )
    alice, bob, editor = _identity(), _identity("bob"), _identity("eve", ("editors",))
    assert authorizer.allowed(alice, "get", "VectorCollection", "team-a", "x")
    assert authorizer.allowed(alice, "list", "Anything", "team-a")
    assert not authorizer.allowed(alice, "delete", "VectorCollection", "team-a", "x")
    assert not authorizer.allowed(alice, "get", "VectorCollection", "team-b", "x")
    assert authorizer.allowed(editor, "delete", "VectorCollection", "team-b", "docs-1")
    assert not authorizer.allowed(editor, "delete", "VectorCollection", "team-b", "other")
    assert not authorizer.allowed(editor, "delete", "Model", "team-b", "docs-1")
    assert not authorizer.allowed(editor, "list", "VectorCollection", "team-b")  # names: no "*"
    assert not authorizer.allowed(editor, "get", "VectorCollection", None, "docs-1")
    assert authorizer.allowed(bob, "get", "Model", "anywhere", "public")
    assert not authorizer.allowed(bob, "update", "Model", "anywhere", "public")
    authorizer.authorize(editor, "update", "VectorCollection", "team-z", "docs-x")


def test_rbac_denial_names_what_was_denied() -> None:
    authorizer = auth.Authorizer([])
    with pytest.raises(errors.InsufficientPermissions) as info:
        authorizer.authorize(_identity(), "delete", "VectorCollection", "team-a", "docs")
    message = str(info.value)
    for part in ("alice", "delete", "VectorCollection", "team-a", "docs"):
        assert part in message
    assert info.value.status == 403


def test_rules_refuse_unknown_actions() -> None:
    with pytest.raises(pydantic.ValidationError):
        auth.Rule(subjects=("a",), actions=("destroy",))


# -- OAuth2 client credentials -----------------------------------------------------------------


class _TokenServer:
    """A token endpoint behind httpx.MockTransport that counts its calls."""

    def __init__(self, *, status: int = 200, expires_in: int = 60) -> None:
        self.calls = 0
        self.status = status
        self.expires_in = expires_in
        self.forms: list[dict[str, list[str]]] = []
        self.authorizations: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        await asyncio.sleep(0)  # let concurrent callers pile up on the lock
        self.forms.append(urllib.parse.parse_qs(request.content.decode()))
        self.authorizations.append(request.headers["authorization"])
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        body = {
            "access_token": f"token-{self.calls}",
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        return httpx.Response(200, json=body)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client_credentials(
    server: _TokenServer, clock: _Clock, **options: Any
) -> auth.ClientCredentials:
    return auth.ClientCredentials(
        "https://idp.test/token",
        "svc-ingest",
        pydantic.SecretStr("client-secret-value"),
        scope="vectors:read vectors:write",
        audience="llm-infra",
        transport=httpx.MockTransport(server),
        clock=clock,
        **options,
    )


async def test_token_is_cached_until_shortly_before_expiry() -> None:
    server, clock = _TokenServer(expires_in=60), _Clock()
    async with _client_credentials(server, clock, refresh_margin=10) as client:
        assert await client.token() == "token-1"
        clock.now += 49
        assert await client.token() == "token-1"
        clock.now += 2  # 51 s: inside the 10 s margin
        assert await client.token() == "token-2"
        client.invalidate()
        assert await client.token() == "token-3"
    assert server.calls == 3
    assert server.forms[0] == {
        "grant_type": ["client_credentials"],
        "scope": ["vectors:read vectors:write"],
        "audience": ["llm-infra"],
    }
    user, _, password = (
        base64.b64decode(server.authorizations[0].split()[1]).decode().partition(":")
    )
    assert (user, password) == ("svc-ingest", "client-secret-value")


async def test_concurrent_callers_share_one_refresh() -> None:
    server, clock = _TokenServer(), _Clock()
    async with _client_credentials(server, clock) as client:
        tokens = await asyncio.gather(*(client.token() for _ in range(20)))
    assert set(tokens) == {"token-1"}
    assert server.calls == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, errors.InvalidCredentials),
        (400, errors.InvalidCredentials),
        (403, errors.InsufficientPermissions),
    ],
)
async def test_refusals_map_to_auth_errors_without_the_secret(
    status: int, error: type[errors.AuthError]
) -> None:
    server, clock = _TokenServer(status=status), _Clock()
    async with _client_credentials(server, clock) as client:
        with pytest.raises(error) as info:
            await client.token()
    _assert_no_secret(info.value, "client-secret-value")
    _assert_no_secret(info.value, base64.b64encode(b"svc-ingest:client-secret-value").decode())


async def test_answer_without_token_is_invalid() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"token_type": "Bearer"})

    client = auth.ClientCredentials(
        "https://idp.test/token",
        "svc",
        pydantic.SecretStr("client-secret-value"),
        transport=httpx.MockTransport(handler),
    )
    async with client:
        with pytest.raises(errors.InvalidToken):
            await client.token()
