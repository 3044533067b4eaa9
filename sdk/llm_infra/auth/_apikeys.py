"""API keys: `<prefix>_<lookup id>_<secret>`, shown once, stored only as a hash.

The lookup id finds the record without a scan; the secret is checked against
the stored hash in constant time. Two hashes, chosen by `ApiKeyAuthenticator`:

- argon2id (`crypto.hash_password`, the default): a leaked store stays safe
  even for a weak secret, but every request pays ~tens of milliseconds and
  64 MiB of memory for one verify.
- HMAC-SHA256 with a server-side `pepper`: microseconds per verify. The
  secrets are 256 random bits, so argon2's stretching adds little against
  brute force; the pepper (kept outside the store: config, OpenBao) means a
  leaked store alone verifies nothing. Losing the pepper invalidates every
  HMAC key; rotating it needs a re-issue.

A record says which hash it holds, so a store may mix both (keys made before a
pepper was configured keep working). Stores implement `ApiKeyStore`;
`InMemoryApiKeyStore` is for tests and single-process tools.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import pydantic

from llm_infra import crypto, errors
from llm_infra.auth import _identity

HashAlgorithm = Literal["argon2id", "hmac-sha256"]
Clock = Callable[[], datetime.datetime]

DEFAULT_PREFIX = "llmi"
_PREFIX = re.compile(r"[a-z][a-z0-9]{1,15}")
_LOOKUP_ID = re.compile(r"[0-9a-f]{16}")
_SECRET_BYTES = 32


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ApiKeyRecord(pydantic.BaseModel):
    """What a store keeps of one key: the lookup id and a hash, never the plaintext."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    key_id: str
    owner: str
    scopes: tuple[str, ...] = ()
    algorithm: HashAlgorithm
    secret_hash: str = pydantic.Field(repr=False)
    created_at: datetime.datetime
    expires_at: datetime.datetime | None = None
    revoked_at: datetime.datetime | None = None

    def usable_at(self, now: datetime.datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at


class ApiKeyStore(Protocol):
    """Persistence for API key records, keyed by lookup id."""

    async def get(self, key_id: str) -> ApiKeyRecord | None: ...

    async def put(self, record: ApiKeyRecord) -> None: ...


class InMemoryApiKeyStore:
    """An ApiKeyStore in a dict: tests, single-process tools."""

    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        return self.records.get(key_id)

    async def put(self, record: ApiKeyRecord) -> None:
        self.records[record.key_id] = record


def _hmac_hex(pepper: pydantic.SecretBytes, secret: str) -> str:
    return hmac.new(pepper.get_secret_value(), secret.encode(), hashlib.sha256).hexdigest()


class ApiKeyAuthenticator:
    """Issues, revokes and verifies API keys held in `store`.

    With `pepper` (at least 32 bytes) new keys are hashed with HMAC-SHA256,
    else with argon2id; see the module docstring for the trade-off. Keys come
    in the X-API-Key header, or as a bearer token that starts with ``<prefix>_``.
    """

    def __init__(
        self,
        store: ApiKeyStore,
        *,
        prefix: str = DEFAULT_PREFIX,
        pepper: pydantic.SecretBytes | bytes | None = None,
        clock: Clock = _utcnow,
        concurrent_checks: int = 2,
    ) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise errors.ConfigError(f"API key prefix {prefix!r} must match {_PREFIX.pattern}")
        if isinstance(pepper, bytes):
            pepper = pydantic.SecretBytes(pepper)
        if pepper is not None and len(pepper.get_secret_value()) < 32:
            raise errors.ConfigError("the API key pepper must be at least 32 bytes")
        self.store = store
        self.prefix = prefix
        self._pepper = pepper
        self._clock = clock
        self._checks = asyncio.Semaphore(concurrent_checks)

    # -- issuing -------------------------------------------------------------------------------

    def _hash(self, secret: str) -> tuple[HashAlgorithm, str]:
        if self._pepper is not None:
            return "hmac-sha256", _hmac_hex(self._pepper, secret)
        return "argon2id", crypto.hash_password(secret)

    async def create_key(
        self,
        owner: str,
        scopes: Sequence[str] = (),
        *,
        expires_at: datetime.datetime | None = None,
    ) -> tuple[pydantic.SecretStr, ApiKeyRecord]:
        """A new key: (the plaintext, to show once and never again; the stored record)."""
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        algorithm, secret_hash = self._hash(secret)
        record = ApiKeyRecord(
            key_id=key_id,
            owner=owner,
            scopes=tuple(scopes),
            algorithm=algorithm,
            secret_hash=secret_hash,
            created_at=self._clock(),
            expires_at=expires_at,
        )
        await self.store.put(record)
        return pydantic.SecretStr(f"{self.prefix}_{key_id}_{secret}"), record

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Mark a key revoked from now on; NotFound for an unknown id."""
        record = await self.store.get(key_id)
        if record is None:
            raise errors.NotFound(f"API key {key_id!r} not found")
        revoked = record.model_copy(update={"revoked_at": self._clock()})
        await self.store.put(revoked)
        return revoked

    # -- verifying -----------------------------------------------------------------------------

    def handles(self, credentials: _identity.Credentials) -> bool:
        if credentials.scheme == "apikey":
            return True
        return credentials.secret.get_secret_value().startswith(f"{self.prefix}_")

    def _parse(self, key: str) -> tuple[str, str]:
        prefix, _, rest = key.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != self.prefix or not _LOOKUP_ID.fullmatch(key_id) or not secret:
            raise errors.InvalidCredentials("malformed API key")
        return key_id, secret

    async def _check(self, record: ApiKeyRecord, secret: str) -> bool:
        if record.algorithm != "argon2id":
            return self._verify(record.algorithm, record.secret_hash, secret)
        # argon2id takes ~50 ms of a core and 64 MiB: off the event loop, and at most
        # `concurrent_checks` at once, so a burst of guesses queues instead of taking memory.
        async with self._checks:
            return await asyncio.to_thread(
                self._verify, record.algorithm, record.secret_hash, secret
            )

    def _verify(self, algorithm: HashAlgorithm, secret_hash: str, secret: str) -> bool:
        if algorithm == "argon2id":
            return crypto.verify_password(secret, secret_hash)
        if self._pepper is None:
            # An HMAC record without the pepper cannot be checked: refuse, don't guess.
            return False
        return hmac.compare_digest(_hmac_hex(self._pepper, secret), secret_hash)

    async def authenticate(self, credentials: _identity.Credentials) -> _identity.Identity:
        key_id, secret = self._parse(credentials.secret.get_secret_value())
        record = await self.store.get(key_id)
        # An unknown id is refused before any hashing: a lookup id is no secret (it is
        # printed with the key), and a check per guess would let anyone spend our CPU.
        if record is None:
            raise errors.InvalidCredentials(f"API key {key_id} is not valid")
        if not await self._check(record, secret):
            raise errors.InvalidCredentials(f"API key {key_id} is not valid")
        if not record.usable_at(self._clock()):
            state = "revoked" if record.revoked_at is not None else "expired"
            raise errors.InvalidCredentials(f"API key {key_id} is {state}", identity=record.owner)
        return _identity.Identity(
            subject=record.owner,
            kind="apikey",
            method="apikey",
            claims={"key_id": record.key_id, "scopes": list(record.scopes)},
        )
