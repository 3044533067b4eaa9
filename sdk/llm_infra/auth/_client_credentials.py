"""ClientCredentials: an OAuth2 client-credentials token (RFC 6749 §4.4), cached and refreshed.

The HTTP policy (timeouts, breaker, spans, redacted logs) is `llm_infra.http`;
this module adds the grant, the cache and the error mapping. One refresh at a
time: concurrent callers of an expired token wait for the same request.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse
from collections.abc import Callable

import httpx
import pydantic

from llm_infra import errors, http

Clock = Callable[[], float]


class _TokenResponse(pydantic.BaseModel):
    access_token: pydantic.SecretStr
    expires_in: float | None = None


class ClientCredentials:
    """Fetches and caches an access token for `client_id` at `token_url`.

    The secret is sent by HTTP Basic (RFC 6749 §2.3.1). A token is reused until
    `refresh_margin` seconds before it expires (`default_lifetime` when the
    server names no ``expires_in``). 400/401 answers (invalid_client,
    invalid_grant, ...) raise InvalidCredentials, 403 InsufficientPermissions;
    transport failures and 5xx raise `errors.HttpError` subclasses. Give an
    `http` client to share one, or a `transport` (tests: httpx.MockTransport).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: pydantic.SecretStr,
        *,
        scope: str | None = None,
        audience: str | None = None,
        refresh_margin: float = 30.0,
        default_lifetime: float = 300.0,
        http_client: http.HttpClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.audience = audience
        self.refresh_margin = refresh_margin
        self.default_lifetime = default_lifetime
        self._owns_http = http_client is None
        self._http = http_client or http.HttpClient(retry=http.RetryPolicy(), transport=transport)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: pydantic.SecretStr | None = None
        self._refresh_at = 0.0

    async def __aenter__(self) -> ClientCredentials:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def invalidate(self) -> None:
        """Forget the cached token (e.g. after a 401 from the API it was for)."""
        self._token = None

    def _fresh(self) -> str | None:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token.get_secret_value()
        return None

    async def token(self) -> str:
        """A valid access token: the cached one, or a new one (one request for all waiters)."""
        if (cached := self._fresh()) is not None:
            return cached
        async with self._lock:
            # Whoever held the lock before us may have refreshed already.
            if (cached := self._fresh()) is not None:
                return cached
            response = await self._request()
            lifetime = response.expires_in if response.expires_in else self.default_lifetime
            # Never refresh sooner than halfway through a short-lived token.
            margin = min(self.refresh_margin, lifetime / 2)
            self._token = response.access_token
            self._refresh_at = self._clock() + lifetime - margin
            return self._token.get_secret_value()

    async def _request(self) -> _TokenResponse:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        try:
            # A token request changes nothing on the server: safe to retry.
            answer = await self._http.post(
                self.token_url,
                data=form,
                headers={
                    "Authorization": _basic_auth(self.client_id, self._client_secret),
                    "Accept": "application/json",
                },
                idempotency_key=True,
            )
        except errors.HttpStatusError as exc:
            raise _refusal(exc, self.client_id) from None
        try:
            return _TokenResponse.model_validate_json(answer.content)
        except pydantic.ValidationError:
            raise errors.InvalidToken(
                f"the token endpoint {self.token_url} answered without an access_token"
            ) from None


def _basic_auth(client_id: str, client_secret: pydantic.SecretStr) -> str:
    # RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
    user = urllib.parse.quote_plus(client_id)
    password = urllib.parse.quote_plus(client_secret.get_secret_value())
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _refusal(exc: errors.HttpStatusError, client_id: str) -> errors.InfraError:
    if exc.status_code in {400, 401}:
        return errors.InvalidCredentials(
            f"the token endpoint refused client {client_id!r} (HTTP {exc.status_code})",
            identity=client_id,
        )
    if exc.status_code == 403:
        return errors.InsufficientPermissions(
            f"the token endpoint forbids client {client_id!r} this grant", identity=client_id
        )
    return exc
