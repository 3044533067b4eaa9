"""Authentication and authorization of the control plane's /v1 API: who calls, and may they.

`main.lifespan` builds one `Security` (`await Security.start(...)`) into
`app.state.security`; `web.auth.require(kind)` asks it on each /v1 request. A
request sends ``Authorization: Bearer <token>``: a token that starts with the
API key prefix (``llmi_``) is an API key, checked against stored argon2id hashes
(the standalone admin key in ``<data_dir>/admin-key.json``, keys provisioned in
`Settings.api_keys`); any other token is a JWT, verified against the identity
provider's JWKS with issuer, audience and algorithms pinned from the settings.
Then `policy.AccessRule`s decide per namespace, resource kind and action.

A caller's subject says how it signed in (`policy.subject_of`): ``apikey:<owner>``
for an API key, ``jwt:<issuer>#<sub>`` for a JWT, so a JWT whose ``sub`` is an
API key owner's name gains nothing of that owner's rules. Failed checks are
counted per client address: past `auth_failures_per_minute` the address gets
429 without any further check, and argon2id checks run at most
`concurrent_key_checks` at a time, so guessing cannot take the CPU or the memory.

Failures are `llm_infra.errors.AuthError`s, answered by `web.problems`: 401
(with ``WWW-Authenticate: Bearer``) for missing or bad credentials, 403 naming
the namespace, kind and action. Verifying is `llm_infra.auth`'s and
`llm_infra.crypto`'s work; this module is the policy around it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from llm_infra import auth, crypto, errors
from llm_infra_controlplane.access import admin_key
from llm_infra_controlplane.access.policy import (
    ANONYMOUS,
    AccessRule,
    Action,
    AuthMode,
    subject_of,
)

# Verified API keys, by the SHA-256 of the key: argon2id costs tens of milliseconds and
# 64 MiB per check, paid once per key and process instead of once per request.
_VERIFIED_CACHE_SIZE = 1024
# Addresses whose failures are remembered; past it the oldest are forgotten first.
_FAILING_CLIENTS = 4096
_FAILURE_WINDOW = 60.0

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class JwtSettings:
    """What JWT modes verify: the identity provider's JWKS, issuer, audience, algorithms."""

    jwks_url: str | None
    issuer: str | None
    audience: str
    algorithms: tuple[str, ...]
    groups_claim: str


class _ThreadedVerifier:
    """`crypto.JwksVerifier` fetches its key set with blocking I/O: verify off the event loop."""

    def __init__(self, verifier: crypto.JwksVerifier) -> None:
        self._verifier = verifier

    async def verify(self, token: str) -> Mapping[str, Any]:
        return await asyncio.to_thread(self._verifier.verify, token)


class FailureLimiter:
    """Failed sign-ins per client address in the last minute; past `limit`, 429 up front."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def check(self, client: str | None) -> None:
        """RateLimited (429, with Retry-After) if `client` failed `limit` times this minute."""
        recent = self._recent(client)
        if recent is not None and len(recent) >= self.limit:
            wait = recent[0] + _FAILURE_WINDOW - self._clock()
            raise errors.RateLimited(
                f"{len(recent)} failed sign-ins from this address in the last minute:"
                " check the credentials, then retry after the Retry-After delay",
                retry_after=max(1.0, wait),
            )

    def failed(self, client: str | None) -> None:
        if client is None:
            return
        recent = self._recent(client)
        if recent is None:
            recent = self._failures[client] = collections.deque(maxlen=self.limit)
            while len(self._failures) > _FAILING_CLIENTS:
                self._failures.popitem(last=False)
        recent.append(self._clock())
        self._failures.move_to_end(client)

    def _recent(self, client: str | None) -> collections.deque[float] | None:
        if client is None or (recent := self._failures.get(client)) is None:
            return None
        horizon = self._clock() - _FAILURE_WINDOW
        while recent and recent[0] < horizon:
            recent.popleft()
        return recent


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
        auth_failures_per_minute: int = 30,
    ) -> None:
        self.mode = mode
        self.rules = rules
        self.failures = FailureLimiter(auth_failures_per_minute)
        self._api_keys = api_keys
        self._jwt = jwt
        self._admin_key_id = admin_key_id
        self._verified: dict[bytes, auth.Identity] = {}
        self._verifying: dict[bytes, asyncio.Future[auth.Identity]] = {}

    def __repr__(self) -> str:
        return f"Security(mode={self.mode!r}, rules={len(self.rules)})"

    @classmethod
    async def start(
        cls,
        mode: AuthMode,
        *,
        api_keys: Sequence[auth.ApiKeyRecord] = (),
        rules: Sequence[AccessRule] = (),
        jwt: JwtSettings | None = None,
        admin_key_dir: Path | None = None,
        auth_failures_per_minute: int = 30,
        concurrent_key_checks: int = 2,
    ) -> Security:
        """Build for `mode`: provisioned keys, the admin key of `admin_key_dir`, the JWKS.

        `admin_key_dir` (standalone) loads the admin key kept there, or creates
        one and prints it once; None (in a cluster) has none.
        """
        if mode == "none":
            log.warning(
                "auth_mode=none: the /v1 API accepts every request without credentials;"
                " choose auth_mode api-key or jwt unless nobody else can reach this port"
            )
            return cls(mode)
        authenticator = jwt_authenticator = None
        admin_key_id = None
        if mode in ("api-key", "api-key+jwt"):
            store = auth.InMemoryApiKeyStore()
            for record in api_keys:
                await store.put(record)
            if admin_key_dir is not None:
                admin = await admin_key.ensure_admin_key(admin_key_dir)
                await store.put(admin)
                admin_key_id = admin.key_id
            authenticator = auth.ApiKeyAuthenticator(store, concurrent_checks=concurrent_key_checks)
        if mode in ("jwt", "api-key+jwt"):
            jwt_authenticator = _jwt_authenticator(mode, jwt)
        log.info("auth: %s, %d access rules", mode, len(rules))
        return cls(
            mode,
            api_keys=authenticator,
            jwt=jwt_authenticator,
            rules=tuple(rules),
            admin_key_id=admin_key_id,
            auth_failures_per_minute=auth_failures_per_minute,
        )

    async def authenticate(
        self, headers: Mapping[str, str], *, client: str | None = None
    ) -> auth.Identity:
        """The caller of a request with these headers, or an AuthError (401, 429).

        `client` is the peer's address: its failures are counted, and past the limit
        it is refused before any check.
        """
        if self.mode == "none":
            return ANONYMOUS
        identity = await self._authenticate(headers, client)
        return identity.model_copy(update={"subject": subject_of(identity)})

    async def _authenticate(self, headers: Mapping[str, str], client: str | None) -> auth.Identity:
        credentials = auth.Credentials.from_headers(headers)
        if self._api_keys is not None and self._api_keys.handles(credentials):
            return await self._verify_api_key(self._api_keys, credentials, client)
        if self._jwt is not None and credentials.scheme == "bearer":
            return await self._jwt.authenticate(credentials)
        # Only one scheme is on: say which one the caller should have sent.
        wanted = (
            f"an API key ({auth.DEFAULT_PREFIX}_...)"
            if self._jwt is None
            else "a JWT from the configured identity provider"
        )
        raise errors.InvalidCredentials(
            f"send 'Authorization: Bearer <token>' with {wanted} (auth_mode {self.mode})"
        )

    async def valid_until(self, identity: auth.Identity) -> float | None:
        """When the caller's credential stops being valid (epoch seconds), if it ever does.

        A JWT's ``exp``; an API key's expiry. Long requests (watches) end then.
        """
        if identity.method == "jwt":
            exp = identity.claims.get("exp")
            return float(exp) if isinstance(exp, int | float) else None
        key_id = identity.claims.get("key_id")
        if identity.method == "apikey" and self._api_keys is not None and key_id is not None:
            record = await self._api_keys.store.get(str(key_id))
            if record is not None and record.expires_at is not None:
                return record.expires_at.timestamp()
        return None

    async def _verify_api_key(
        self,
        authenticator: auth.ApiKeyAuthenticator,
        credentials: auth.Credentials,
        client: str | None,
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
            # Only a check that costs argon2 counts: a verified key (above) and an unknown
            # key id (refused before hashing) never do, so a client sharing the address of
            # a guesser keeps working with its own key.
            self.failures.check(client)
            pending = asyncio.ensure_future(authenticator.authenticate(credentials))
            self._verifying[digest] = pending
            pending.add_done_callback(lambda _: self._verifying.pop(digest, None))
        try:
            identity = await asyncio.shield(pending)
        except errors.AuthError:
            self.failures.failed(client)
            raise
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


def _jwt_authenticator(mode: AuthMode, jwt: JwtSettings | None) -> auth.JwtAuthenticator:
    for field, value in (
        ("jwt_jwks_url", jwt and jwt.jwks_url),
        ("jwt_issuer", jwt and jwt.issuer),
    ):
        if not value:
            raise errors.ConfigError(
                f"auth_mode {mode} verifies JWTs: set {field} (the identity provider's JWKS URL"
                " and issuer) or choose auth_mode api-key",
                key=field,
            )
    # Checked above; narrows for the type checker.
    assert jwt is not None
    assert jwt.jwks_url is not None
    verifier = crypto.JwksVerifier(
        jwt.jwks_url,
        issuer=jwt.issuer,
        audience=jwt.audience,
        algorithms_allowed=jwt.algorithms,
    )
    return auth.JwtAuthenticator(_ThreadedVerifier(verifier), groups_claim=jwt.groups_claim)


__all__ = ["JwtSettings", "Security"]
