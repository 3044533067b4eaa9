"""One request to the control plane: retried while retryable, error answers raised as errors."""

from __future__ import annotations

from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

from llm_infra import errors, http

PROBLEM_JSON = "application/problem+json"

DEFAULT_RETRY = http.RetryPolicy(attempts=5, wait_initial=0.2, wait_max=2.0, total_timeout=10.0)
"""How `ControlPlaneClient` retries by default: a restart or a NATS reconnect, not an outage."""

NO_RETRY = http.RetryPolicy(attempts=1)
"""One attempt: for callers that run their own backoff (the operator's reconcile loop)."""


def pooled_transport() -> httpx.AsyncBaseTransport:
    """httpx's API over aiohttp's connection pool: the client's default transport.

    Measured against a local control plane: 1.0 ms per sequential request
    instead of 2.5 ms with httpx's own pool, and 2.5x the requests/s with 16
    in flight. HTTP/1.1 only; the control plane serves nothing else.
    """
    return AiohttpTransport()


async def send(
    client: httpx.AsyncClient, method: str, path: str, *, retry: http.RetryPolicy, **options: Any
) -> httpx.Response:
    """Send one request, retrying retryable failures within `retry`; raise error answers.

    Retryable: the control plane unreachable or timing out, and 5xx/429 answers
    (503 while NATS reconnects), after their Retry-After when they give one.
    Every route of the API is safe to repeat (writes carry their ids), so any
    method is retried. A 304 is returned as it is: the caller asked for it.
    """

    async def attempt(_: int) -> httpx.Response:
        with errors.translate(errors.from_httpx):
            response = await client.request(method, path, **options)
        raise_for_problem(response)
        return response

    return await retry.call(attempt, server_wait=_retry_after)


def _retry_after(error: Exception) -> float | None:
    return error.retry_after() if isinstance(error, errors.InfraError) else None


class Sender:
    """What the client mixins share: the httpx client and the retry policy its calls use."""

    _http: httpx.AsyncClient
    _retry: http.RetryPolicy

    async def _send(
        self, method: str, path: str, *, retry: http.RetryPolicy | None = None, **options: Any
    ) -> httpx.Response:
        return await send(self._http, method, path, retry=retry or self._retry, **options)


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the error a 4xx/5xx answer describes: its problem document, else its status."""
    if response.status_code < 400:
        return
    if response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        with errors.translate():
            document = response.json()
        raise errors.from_problem(document)
    # Not one of ours (a proxy's error page, say): the status is all there is to go on.
    status = httpx.HTTPStatusError(
        response.reason_phrase, request=response.request, response=response
    )
    raise errors.from_httpx(status) from None
