"""Authentication and authorization of the control plane's /v1 API: who calls, and may they.

`main.lifespan` builds one `Security` from the settings (`await Security.start(settings)`)
into `app.state.security`; `require(kind)` is the dependency each /v1 router gets in
`main.py`. A request sends ``Authorization: Bearer <token>``: a token that starts with
the API key prefix (``llmi_``) is an API key, checked against stored argon2id hashes (the
standalone admin key in ``<data_dir>/admin-key.json``, keys provisioned in
`Settings.api_keys`); any other token is a JWT, verified against the identity provider's
JWKS with issuer, audience and algorithms pinned from the settings. Then `AccessRule`s
decide per namespace, resource kind and action (read, write, admin).

Failures are `llm_infra.errors.AuthError`s, answered by `problems.py`: 401 (with
``WWW-Authenticate: Bearer``) for missing or bad credentials, 403 naming the namespace,
kind and action. Verifying is `llm_infra.auth`'s and `llm_infra.crypto`'s work; this
module is the policy around it. Health, metrics and the OpenAPI docs stay open: they
are not behind `require`.
"""

from __future__ import annotations

import asyncio
import datetime
import fnmatch
import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic
from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llm_infra import auth, crypto, errors

if TYPE_CHECKING:
    from llm_infra_controlplane.settings import Settings

AuthMode = Literal["api-key", "jwt", "api-key+jwt", "none"]
Action = Literal["read", "write", "admin"]
Kind = Literal["collections", "configs", "auditsinks", "routes"]
"""Resource kinds as the /v1 paths name them (``/v1/namespaces/{ns}/<kind>/...``)."""

ADMIN_KEY_FILE = "admin-key.json"
ADMIN_KEY_OWNER = "llm-infra-admin"
ROTATE_HINT = "llm-infra up --rotate-admin-key"
ACTION_EXTRA = "x-llm-infra-action"
READ_ONLY_ROUTE: dict[str, Any] = {ACTION_EXTRA: "read"}
"""`openapi_extra` of a POST route that only reads (search, count): it needs `read`, not `write`."""

ANONYMOUS = auth.Identity(
    subject="system:anonymous", kind="user", method="apikey", claims={"anonymous": True}
)
"""The principal of every request under auth_mode "none" (llm_infra.auth has no method for it)."""

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Rights nest: whoever may write may read, an admin may do everything.
_IMPLIED: dict[Action, frozenset[Action]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}
# Verified API keys, by the SHA-256 of the key: argon2id costs tens of milliseconds and
# 64 MiB per check, paid once per key and process instead of once per request.
_VERIFIED_CACHE_SIZE = 1024

log = logging.getLogger(__name__)


class AccessRule(pydantic.BaseModel):
    """A grant: `subjects` or members of `groups` may do `actions` on `kinds` in `namespaces`.

    Namespaces and kinds are globs (``team-*``); a subject is an API key's owner or a
    JWT's ``sub``, and ``*`` names every authenticated caller. Grants only, so order never
    matters. `write` includes `read`; `admin` (the collection admin API's PUT and DELETE)
    includes both.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    subjects: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ("*",)
    kinds: tuple[str, ...] = ("*",)
    actions: tuple[Action, ...] = pydantic.Field(min_length=1)

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
            and any(action in _IMPLIED[granted] for granted in self.actions)
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


class _ThreadedVerifier:
    """`crypto.JwksVerifier` fetches its key set with blocking I/O: verify off the event loop."""

    def __init__(self, verifier: crypto.JwksVerifier) -> None:
        self._verifier = verifier

    async def verify(self, token: str) -> Mapping[str, Any]:
        return await asyncio.to_thread(self._verifier.verify, token)


class Security:
    """Authenticates requests and authorizes them against access rules; built once per app."""

    def __init__(
        self,
        mode: AuthMode,
        *,
        api_keys: auth.ApiKeyAuthenticator | None = None,
        jwt: auth.JwtAuthenticator | None = None,
        rules: tuple[AccessRule, ...] = (),
        admin_key_id: str | None = None,
    ) -> None:
        self.mode = mode
        self.rules = rules
        self._api_keys = api_keys
        self._jwt = jwt
        self._admin_key_id = admin_key_id
        self._verified: dict[bytes, auth.Identity] = {}
        self._verifying: dict[bytes, asyncio.Future[auth.Identity]] = {}

    def __repr__(self) -> str:
        return f"Security(mode={self.mode!r}, rules={len(self.rules)})"

    @classmethod
    async def start(cls, settings: Settings) -> Security:
        """Build from `settings`: load (or create and print once) the admin key, set up JWKS."""
        mode = settings.auth_mode
        if mode == "none":
            log.warning(
                "auth_mode=none: the /v1 API accepts every request without credentials;"
                " choose auth_mode api-key or jwt unless nobody else can reach this port"
            )
            return cls(mode)
        api_keys = jwt = None
        admin_key_id = None
        if mode in ("api-key", "api-key+jwt"):
            store = auth.InMemoryApiKeyStore()
            for record in settings.api_keys:
                await store.put(record)
            if settings.standalone_admin_key:
                admin = await ensure_admin_key(settings.data_dir)
                await store.put(admin)
                admin_key_id = admin.key_id
            api_keys = auth.ApiKeyAuthenticator(store)
        if mode in ("jwt", "api-key+jwt"):
            jwt = _jwt_authenticator(settings)
        log.info("auth: %s, %d access rules", mode, len(settings.access_rules))
        return cls(
            mode,
            api_keys=api_keys,
            jwt=jwt,
            rules=tuple(settings.access_rules),
            admin_key_id=admin_key_id,
        )

    async def authenticate(self, headers: Mapping[str, str]) -> auth.Identity:
        """The caller of a request with these headers, or an AuthError (401)."""
        if self.mode == "none":
            return ANONYMOUS
        credentials = auth.Credentials.from_headers(headers)
        if self._api_keys is not None and self._api_keys.handles(credentials):
            return await self._verify_api_key(self._api_keys, credentials)
        if self._jwt is not None and credentials.scheme == "bearer":
            return await self._jwt.authenticate(credentials)
        # Only one scheme is on: say which one the caller should have sent.
        wanted = (
            f"an API key ({auth.DEFAULT_PREFIX}_...)"
            if self._jwt is None
            else "a JWT from the configured identity provider"
        )
        raise errors.InvalidCredentials(
            f"auth_mode is {self.mode}: send 'Authorization: Bearer <token>' with {wanted}"
        )

    async def _verify_api_key(
        self, authenticator: auth.ApiKeyAuthenticator, credentials: auth.Credentials
    ) -> auth.Identity:
        digest = hashlib.sha256(credentials.secret.get_secret_value().encode()).digest()
        identity = self._verified.get(digest)
        if identity is not None:
            record = await authenticator.store.get(str(identity.claims["key_id"]))
            if record is not None and record.usable_at(datetime.datetime.now(datetime.UTC)):
                return identity
        # One argon2 check per key at a time: the requests that arrive while it runs (a burst
        # after a start) wait for its answer instead of each paying ~100 ms of CPU for it.
        pending = self._verifying.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(authenticator.authenticate(credentials))
            self._verifying[digest] = pending
            pending.add_done_callback(lambda _: self._verifying.pop(digest, None))
        identity = await asyncio.shield(pending)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()  # a bound, not an LRU: only misses after it pay argon2 again
        self._verified[digest] = identity
        return identity

    def authorize(
        self, identity: auth.Identity, namespace: str | None, kind: str, action: Action
    ) -> None:
        """Return if a rule (or the admin key) grants `action` on `kind` there; else 403."""
        if self.mode == "none" or self._is_admin_key(identity):
            return
        if any(rule.grants(identity, namespace, kind, action) for rule in self.rules):
            return
        where = f"namespace {namespace!r}" if namespace is not None else "any namespace"
        raise errors.InsufficientPermissions(
            f"{identity.subject!r} may not {action} {kind} in {where}: add an access rule"
            f" (access_rules) granting {action!r} on kind {kind!r} in {where} to this subject"
            " or one of its groups",
            identity=identity.subject,
        )

    def _is_admin_key(self, identity: auth.Identity) -> bool:
        # By key id, not by subject: a JWT whose sub is the admin owner's name gains nothing.
        return (
            self._admin_key_id is not None
            and identity.method == "apikey"
            and identity.claims.get("key_id") == self._admin_key_id
        )


def _jwt_authenticator(settings: Settings) -> auth.JwtAuthenticator:
    for field in ("jwt_jwks_url", "jwt_issuer"):
        if not getattr(settings, field):
            raise errors.ConfigError(
                f"auth_mode {settings.auth_mode} verifies JWTs: set {field} (the identity"
                " provider's JWKS URL and issuer) or choose auth_mode api-key",
                key=field,
            )
    assert settings.jwt_jwks_url is not None  # checked above; narrows for the type checker
    verifier = crypto.JwksVerifier(
        settings.jwt_jwks_url,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        algorithms_allowed=settings.jwt_algorithms,
    )
    return auth.JwtAuthenticator(
        _ThreadedVerifier(verifier), groups_claim=settings.jwt_groups_claim
    )


# -- the router dependency -----------------------------------------------------------------------

# Documents the scheme in the OpenAPI (the docs' "Authorize" button); `Security` does the checking.
_bearer = HTTPBearer(auto_error=False, description="an API key (llmi_...) or a JWT")


def require(kind: Kind, *, writes: Action = "write") -> params.Depends:
    """The dependency of a /v1 router: authenticate, authorize `kind` in the path's namespace.

    GET and HEAD need `read`, other methods `writes` (``"admin"`` for the collection admin
    API), unless the route says otherwise with ``openapi_extra=READ_ONLY_ROUTE``. The caller
    is left in ``request.state.principal`` (`deps.PrincipalDep`).
    """

    async def authorized(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> auth.Identity:
        security: Security = request.app.state.security
        identity = await security.authenticate(request.headers)
        namespace = request.path_params.get("namespace")
        security.authorize(identity, namespace, kind, _action(request, writes))
        request.state.principal = identity
        return identity

    return params.Depends(authorized)


def _action(request: Request, writes: Action) -> Action:
    route = request.scope.get("route")
    declared = (getattr(route, "openapi_extra", None) or {}).get(ACTION_EXTRA)
    if declared in _IMPLIED:
        action: Action = declared
        return action
    return "read" if request.method in _READ_METHODS else writes


# -- the standalone admin key --------------------------------------------------------------------


def admin_key_path(data_dir: Path) -> Path:
    return data_dir / ADMIN_KEY_FILE


async def ensure_admin_key(data_dir: Path) -> auth.ApiKeyRecord:
    """The admin key's record; on the first start, a new key, printed once to stdout.

    Only its argon2id hash is stored (``<data_dir>/admin-key.json``, mode 0600); later
    starts print that it is stored, never the key.
    """
    path = admin_key_path(data_dir)
    if not path.exists():
        return await rotate_admin_key(data_dir)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("%s is readable by others: chmod 600 it", path)
    try:
        record = auth.ApiKeyRecord.model_validate_json(path.read_bytes())
    except pydantic.ValidationError:
        raise errors.ConfigError(
            f"{path} is not an admin key record: delete it or run `{ROTATE_HINT}`",
            key="admin_key",
        ) from None
    print(f"admin key: (stored; see the first start or rotate with `{ROTATE_HINT}`)", flush=True)
    return record


async def rotate_admin_key(data_dir: Path) -> auth.ApiKeyRecord:
    """Replace the admin key with a new one, printed once to stdout; the old key stops working.

    A running control plane keeps the key it loaded until it restarts.
    """
    key, record = await issue_api_key(ADMIN_KEY_OWNER)
    _write_private(admin_key_path(data_dir), record.model_dump_json(indent=2).encode())
    print(f"admin key: {key.get_secret_value()}", flush=True)
    print(
        "  (shown once: keep it now; send it as 'Authorization: Bearer <key>';"
        f" only its hash is stored in {admin_key_path(data_dir)})",
        flush=True,
    )
    return record


async def issue_api_key(owner: str) -> tuple[pydantic.SecretStr, auth.ApiKeyRecord]:
    """A new API key for `owner` (the plaintext, once; the record to store in `api_keys`)."""
    return await auth.ApiKeyAuthenticator(auth.InMemoryApiKeyStore()).create_key(owner)


def _write_private(path: Path, content: bytes) -> None:
    # Created 0600 and renamed into place: no moment where the file is readable by others
    # or half-written.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
