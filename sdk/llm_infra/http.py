"""HttpClient: httpx with llm-infra's policy around it, for every SDK call to an HTTP dependency.

    from llm_infra import http

    retry = http.RetryPolicy(attempts=4)
    async with http.HttpClient(base_url="https://api.example", retry=retry) as client:
        response = await client.get("/v1/models")
        async for event in client.stream_sse("POST", "/v1/chat", json=body, idempotency_key=True):
            ...

The policy, not the mechanics, lives here: httpx sends, stamina retries (its
backoff hook returns the Retry-After delay, so no tenacity code of our own),
`llm_infra.errors` maps failures (`from_httpx`) and scrubs secrets (`redact`).
What this module adds:

- Timeouts per phase (httpx) plus a `total` deadline per attempt.
- Retries only for a retryable error (5xx, 429, timeouts, connection errors)
  on an idempotent request (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or any
  request carrying an ``Idempotency-Key``); Retry-After is honoured.
- A circuit breaker per host (`CircuitBreaker`), failing fast with
  `errors.ExternalServiceError` while open.
- An OpenTelemetry client span per attempt (``HTTP GET``) and W3C trace
  context in the outgoing headers.
- Server-sent events (decoded by `llm_infra.jsondoc.SseDecoder`) and line
  streams, split per WHATWG (CR, LF or CRLF only: httpx's `aiter_lines` also
  splits on U+2028 and friends, which SSE must not).
- Request/response log hooks that never print a credential.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, TypedDict, TypeVar, Unpack

import httpx
import stamina
from opentelemetry import propagate, trace

from llm_infra import errors, jsondoc

__all__ = [
    "IDEMPOTENT_METHODS",
    "SENSITIVE_HEADERS",
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitState",
    "HttpClient",
    "RequestOptions",
    "RetryPolicy",
    "SseEvent",
    "Timeouts",
    "log_request",
    "log_response",
    "redact_headers",
    "redact_url",
]

_logger = logging.getLogger("llm_infra.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
# Header names that carry a credential by their shape: X-Auth-Token, X-Amz-Signature, ...
_SENSITIVE_HEADER_NAME = re.compile(r".*(?:token|secret|password|signature|[_-]key)", re.IGNORECASE)
_IDEMPOTENCY_KEY = "Idempotency-Key"
_NEWLINE = re.compile(r"\r\n|\r|\n")

CircuitState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]
_T = TypeVar("_T")


# -- policies ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds per phase (httpx's connect/read/write/pool) and `total` per attempt (None: none).

    For streams, `total` covers the request up to the response headers: a
    stream may last as long as it keeps sending within `read`.
    """

    connect: float | None = 5.0
    read: float | None = 30.0
    write: float | None = 30.0
    pool: float | None = 5.0
    total: float | None = 60.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry: exponential backoff with jitter, or what Retry-After asks.

    `attempts` counts the first try; `total_timeout` (seconds, None: no limit)
    bounds the whole call including waits.
    """

    attempts: int = 3
    wait_initial: float = 0.1
    wait_max: float = 5.0
    jitter: float = 1.0
    total_timeout: float | None = 30.0

    def wait_for(
        self, error: BaseException, *, server_wait: float | None, elapsed: float
    ) -> bool | float:
        """Decide one retry, as a stamina backoff hook answers.

        False: give up and raise `error`. True: retry after stamina's
        exponential backoff with jitter. A float: retry after exactly that many
        seconds (the server's Retry-After, `server_wait`). A Retry-After longer
        than `wait_max` or than what is left of `total_timeout` ends the retries
        at once rather than knocking early: the raised error's `retry_after()`
        tells the caller when to come back.
        """
        if not isinstance(error, errors.InfraError) or not error.is_retryable():
            return False
        if server_wait is None:
            return True
        remaining = float("inf") if self.total_timeout is None else self.total_timeout - elapsed
        if server_wait > min(self.wait_max, remaining):
            return False
        return server_wait

    async def call(
        self,
        attempt: Callable[[int], Awaitable[_T]],
        *,
        server_wait: Callable[[Exception], float | None] = lambda _: None,
        give_up: Callable[[Exception], bool] = lambda _: False,
        clock: Clock = time.monotonic,
    ) -> _T:
        """`await attempt(n)` (n: the retries so far) until it returns or `wait_for` gives up.

        `server_wait` is the delay the failure asked for (a Retry-After), `give_up`
        ends the retries whatever the error says (a request that must not be resent).
        """
        start = clock()

        def backoff(exc: Exception) -> bool | float:
            if give_up(exc):
                return False
            return self.wait_for(exc, server_wait=server_wait(exc), elapsed=clock() - start)

        async for trying in stamina.retry_context(
            on=backoff,
            attempts=self.attempts,
            timeout=self.total_timeout,
            wait_initial=self.wait_initial,
            wait_max=self.wait_max,
            wait_jitter=self.jitter,
        ):
            with trying:
                return await attempt(trying.num - 1)
        raise errors.UnexpectedError("retry loop ended without an outcome")  # stamina re-raises


@dataclasses.dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Open a host's circuit after `failures` consecutive retryable failures, for `reset_after`s."""

    failures: int = 5
    reset_after: float = 30.0


class CircuitBreaker:
    """The circuit of one host: closed, open (fail fast), half-open (one trial call).

    Only retryable failures (5xx, 429, timeouts, connection errors) count; any
    other answer shows the host is up and closes the circuit. Not thread-safe,
    and need not be: asyncio runs `acquire` and the `record_*` calls without
    interleaving.
    """

    def __init__(self, host: str, policy: BreakerPolicy, *, clock: Clock = time.monotonic) -> None:
        self.host = host
        self.policy = policy
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() < self._opened_at + self.policy.reset_after:
            return "open"
        return "half_open"

    def acquire(self) -> None:
        """Allow one call, or raise ExternalServiceError (retry_after set) while open."""
        if self._opened_at is None:
            return
        reopens = self._opened_at + self.policy.reset_after
        now = self._clock()
        if now < reopens:
            raise self._open_error(f"circuit open after {self._failures} failures", reopens - now)
        if self._trial_in_flight:
            raise self._open_error("circuit half-open, trial call in flight", 1.0)
        self._trial_in_flight = True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._trial_in_flight or self._failures >= self.policy.failures:
            self._opened_at = self._clock()
        self._trial_in_flight = False

    def release(self) -> None:
        """End a call that said nothing about the host (cancelled, or failed before sending)."""
        self._trial_in_flight = False

    def _open_error(self, message: str, retry_after: float) -> errors.ExternalServiceError:
        return errors.ExternalServiceError(message, service=self.host, retry_after=retry_after)


# -- server-sent events ------------------------------------------------------------------------


class _LineSplitter:
    """Splits text fed in chunks at CR, LF or CRLF, a CRLF possibly cut between chunks."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        if self._after_cr and text[:1] == "\n":
            text = text[1:]
        if not text:
            return []
        self._after_cr = text.endswith("\r")
        pieces = _NEWLINE.split(text)
        if len(pieces) == 1:
            self._parts.append(text)
            return []
        pieces[0] = "".join(self._parts) + pieces[0]
        self._parts = [pieces[-1]] if pieces[-1] else []
        return pieces[:-1]

    def flush(self) -> list[str]:
        rest = "".join(self._parts)
        self._parts = []
        return [rest] if rest else []


SseEvent = jsondoc.SseEvent
"""One server-sent event (the decoder is `llm_infra.jsondoc.SseDecoder`)."""


# -- logging -----------------------------------------------------------------------------------


def redact_headers(headers: httpx.Headers | Mapping[str, str]) -> dict[str, str]:
    """Headers fit for a log: credential headers masked, every other value scrubbed by redact."""
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else headers.items()
    redacted: dict[str, str] = {}
    for name, value in items:
        lower = name.lower()
        masked = (
            "***"
            if lower in SENSITIVE_HEADERS or _SENSITIVE_HEADER_NAME.fullmatch(lower)
            else errors.redact(value)
        )
        redacted[lower] = f"{redacted[lower]}, {masked}" if lower in redacted else masked
    return redacted


def redact_url(url: httpx.URL | str) -> str:
    """The URL with userinfo and secret query parameters (token=, api_key=, sig=...) masked."""
    return errors.redact(str(url))


async def log_request(request: httpx.Request) -> None:
    """httpx request event hook: one DEBUG line, credentials masked."""
    if _logger.isEnabledFor(logging.DEBUG):
        _logger.debug(
            "HTTP request %s %s headers=%s",
            request.method,
            redact_url(request.url),
            redact_headers(request.headers),
        )


async def log_response(response: httpx.Response) -> None:
    """httpx response event hook: one DEBUG line, credentials masked."""
    if _logger.isEnabledFor(logging.DEBUG):
        _logger.debug(
            "HTTP response %s %s -> %d headers=%s",
            response.request.method,
            redact_url(response.request.url),
            response.status_code,
            redact_headers(response.headers),
        )


# -- the client --------------------------------------------------------------------------------


class RequestOptions(TypedDict, total=False):
    """What a request may carry besides method and URL: httpx's names, and `idempotency_key`.

    `idempotency_key=True` sends a fresh ``Idempotency-Key`` (the same on every
    attempt), a string sends that one; either makes a POST or PATCH retryable.
    """

    params: httpx.QueryParams | Mapping[str, Any] | None
    headers: Mapping[str, str] | None
    content: str | bytes | None
    data: Mapping[str, Any] | None
    json: Any
    idempotency_key: bool | str


@dataclasses.dataclass(slots=True)
class _Call:
    """One logical request across its attempts."""

    request: httpx.Request
    host: str
    idempotent: bool
    server_wait: float | None = None  # the last response's Retry-After
    rejected: bool = False  # the breaker refused: retrying now cannot help


class HttpClient:
    """An async HTTP client with timeouts, retries, a per-host circuit breaker and spans.

    Returns the httpx.Response of a 1xx-3xx answer (redirects are not
    followed); raises `errors.HttpStatusError` for 4xx/5xx, `errors.HttpTimeout`,
    `errors.HttpConnectError` or `errors.HttpError` for transport failures and
    `errors.ExternalServiceError` while a host's circuit is open. `retry=None`
    or `breaker=None` turns either off; `transport` replaces the network (tests:
    httpx.MockTransport); `clock` drives the breaker and the retry budget.
    Request bodies must be replayable (bytes, str, json, form data) for retries.
    """

    def __init__(
        self,
        base_url: str | httpx.URL = "",
        *,
        timeout: Timeouts = Timeouts(),
        retry: RetryPolicy | None = RetryPolicy(),
        breaker: BreakerPolicy | None = BreakerPolicy(),
        http2: bool = False,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.retry = retry
        self.breaker_policy = breaker
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._tracer = trace.get_tracer("llm_infra.http", tracer_provider=tracer_provider)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout.to_httpx(),
            http2=http2,
            headers=headers,
            auth=auth,
            transport=transport,
            event_hooks={"request": [log_request], "response": [log_response]},
        )

    async def __aenter__(self) -> HttpClient:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def circuit(self, host: str) -> CircuitBreaker | None:
        """The breaker of `host` ("name:port" if the port is explicit); None: none yet, or off."""
        return self._breakers.get(host)

    # -- verbs ---------------------------------------------------------------------------------

    async def request(
        self, method: str, url: str | httpx.URL, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """Send one request with the client's policy and return its (read) response."""
        response, span = await self._send(self._call(method, url, options), stream=False)
        span.end()
        return response

    async def get(self, url: str | httpx.URL, **options: Unpack[RequestOptions]) -> httpx.Response:
        return await self.request("GET", url, **options)

    async def post(self, url: str | httpx.URL, **options: Unpack[RequestOptions]) -> httpx.Response:
        return await self.request("POST", url, **options)

    async def put(self, url: str | httpx.URL, **options: Unpack[RequestOptions]) -> httpx.Response:
        return await self.request("PUT", url, **options)

    async def patch(
        self, url: str | httpx.URL, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        return await self.request("PATCH", url, **options)

    async def delete(
        self, url: str | httpx.URL, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        return await self.request("DELETE", url, **options)

    async def stream_lines(
        self, method: str, url: str | httpx.URL, **options: Unpack[RequestOptions]
    ) -> AsyncIterator[str]:
        """The response body's lines (split at CR, LF or CRLF; UTF-8), as they arrive.

        Opening the stream is retried like `request`; once the body flows, a
        failure is raised (mapped), never retried. A last line without a line
        ending is yielded too. The span ends with the stream.
        """
        splitter = _LineSplitter()
        async for text in self._stream_text(self._call(method, url, options)):
            for line in splitter.feed(text):
                yield line
        for line in splitter.flush():
            yield line

    async def stream_sse(
        self, method: str, url: str | httpx.URL, **options: Unpack[RequestOptions]
    ) -> AsyncIterator[SseEvent]:
        """The response's server-sent events (`jsondoc.SseDecoder`), as they arrive.

        Opening the stream is retried as for lines.
        """
        headers = {"Accept": "text/event-stream", **(options.get("headers") or {})}
        decoder = jsondoc.SseDecoder()
        call = self._call(method, url, {**options, "headers": headers})
        async for chunk in self._stream_bytes(call):
            for event in decoder.feed(chunk):
                yield event

    # -- internals -----------------------------------------------------------------------------

    async def _stream_bytes(self, call: _Call) -> AsyncIterator[bytes]:
        response, span = await self._send(call, stream=True)
        try:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            except httpx.HTTPError as exc:
                error = errors.from_httpx(exc)
                error.record_to_span(span)
                raise error from None
        finally:
            await response.aclose()
            span.end()

    async def _stream_text(self, call: _Call) -> AsyncIterator[str]:
        # Lines are UTF-8 whatever the headers say; undecodable bytes become U+FFFD.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in self._stream_bytes(call):
            if text := decoder.decode(chunk):
                yield text
        if text := decoder.decode(b"", final=True):
            yield text

    def _call(self, method: str, url: str | httpx.URL, options: RequestOptions) -> _Call:
        request = self._client.build_request(
            method.upper(),
            url,
            params=options.get("params"),
            headers=options.get("headers"),
            content=options.get("content"),
            data=options.get("data"),
            json=options.get("json"),
        )
        idempotency_key = options.get("idempotency_key", False)
        if idempotency_key is not False and _IDEMPOTENCY_KEY not in request.headers:
            key = uuid.uuid4().hex if idempotency_key is True else idempotency_key
            request.headers[_IDEMPOTENCY_KEY] = key
        idempotent = request.method in IDEMPOTENT_METHODS or _IDEMPOTENCY_KEY in request.headers
        return _Call(request, request.url.netloc.decode("ascii"), idempotent)

    async def _send(self, call: _Call, *, stream: bool) -> tuple[httpx.Response, trace.Span]:
        """The first acceptable response and its still-open span, after any retries."""
        policy = self.retry
        if policy is None or policy.attempts <= 1 or not call.idempotent:
            return await self._attempt(call, 0, stream=stream)
        return await policy.call(
            lambda resends: self._attempt(call, resends, stream=stream),
            server_wait=lambda _: call.server_wait,
            give_up=lambda _: call.rejected,
            clock=self._clock,
        )

    async def _attempt(
        self, call: _Call, resend_count: int, *, stream: bool
    ) -> tuple[httpx.Response, trace.Span]:
        breaker = self._breaker(call.host)
        if breaker is not None:
            try:
                breaker.acquire()
            except errors.ExternalServiceError:
                call.rejected = True
                raise
        # A fresh request per attempt, so each carries its own span's trace context.
        base = call.request
        request = httpx.Request(
            base.method,
            base.url,
            headers=base.headers.copy(),
            stream=base.stream,
            extensions=dict(base.extensions),
        )
        span = self._tracer.start_span(f"HTTP {request.method}", kind=trace.SpanKind.CLIENT)
        if span.is_recording():
            span.set_attributes(
                {
                    "http.request.method": request.method,
                    "url.full": redact_url(request.url),
                    "server.address": request.url.host,
                }
            )
            if request.url.port is not None:
                span.set_attribute("server.port", request.url.port)
            if resend_count:
                span.set_attribute("http.request.resend_count", resend_count)
        propagate.inject(request.headers, context=trace.set_span_in_context(span))
        call.server_wait = None
        try:
            response = await self._exchange(request, stream=stream)
            if span.is_recording():
                span.set_attribute("http.response.status_code", response.status_code)
            if response.is_error:
                call.server_wait = errors.parse_retry_after(response.headers.get("Retry-After"))
                status_error = httpx.HTTPStatusError(
                    response.reason_phrase, request=request, response=response
                )
                raise errors.from_httpx(status_error) from None
        except asyncio.CancelledError:
            if breaker is not None:
                breaker.release()
            span.end()
            raise
        except Exception as exc:  # noqa: BLE001  every failure is mapped, recorded and re-raised
            error = errors.from_httpx(exc)
            if breaker is not None:
                if error.is_retryable():
                    breaker.record_failure()
                elif isinstance(error, errors.HttpStatusError):
                    breaker.record_success()  # the host answered
                else:
                    breaker.release()
            error.record_to_span(span)
            span.end()
            raise error from None
        if breaker is not None:
            breaker.record_success()
        return response, span

    async def _exchange(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        """Send and, unless streaming, read the body, within the `total` deadline."""
        try:
            async with asyncio.timeout(self.timeout.total):
                response = await self._client.send(request, stream=True)
                try:
                    if not stream or response.is_error:
                        await response.aread()
                finally:
                    if not stream or response.is_error:
                        await response.aclose()
                return response
        except TimeoutError:
            raise errors.HttpTimeout(
                f"no complete response within {self.timeout.total}s",
                url=str(request.url),
                method=request.method,
                cause="TimeoutError",
            ) from None

    def _breaker(self, host: str) -> CircuitBreaker | None:
        if self.breaker_policy is None:
            return None
        breaker = self._breakers.get(host)
        if breaker is None:
            breaker = self._breakers[host] = CircuitBreaker(
                host, self.breaker_policy, clock=self._clock
            )
        return breaker
