"""llm_infra.http against httpx.MockTransport: retry policy, breaker, spans, redaction, SSE."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest
import stamina
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_infra import errors, http, jsondoc

BASE = "https://api.test"


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    """Stamina's testing mode: no sleeping, the policy's attempts kept."""
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


class Upstream:
    """A scripted upstream: answers `statuses` in order (the last one repeats), records requests."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        headers = self.headers if status >= 400 else {}
        return httpx.Response(status, headers=headers, json={"status": status})

    @property
    def calls(self) -> int:
        return len(self.requests)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state_of(circuit: http.CircuitBreaker) -> http.CircuitState:
    return circuit.state  # a call: mypy must not keep a narrowed property across clock changes


def client_for(
    handler: Callable[[httpx.Request], httpx.Response] | Upstream, **options: object
) -> http.HttpClient:
    options.setdefault("retry", http.RetryPolicy(attempts=3))
    return http.HttpClient(BASE, transport=httpx.MockTransport(handler), **options)  # type: ignore[arg-type]


# -- retries -----------------------------------------------------------------------------------


async def test_get_is_retried_on_503_until_success() -> None:
    upstream = Upstream(503, 503, 200)
    async with client_for(upstream) as client:
        response = await client.get("/models")
    assert response.status_code == 200
    assert upstream.calls == 3


async def test_retries_stop_after_the_policys_attempts() -> None:
    upstream = Upstream(503)
    async with client_for(upstream, breaker=None) as client:
        with pytest.raises(errors.HttpStatusError) as caught:
            await client.get("/models")
    assert caught.value.status_code == 503
    assert upstream.calls == 3


async def test_post_without_idempotency_key_is_not_retried() -> None:
    upstream = Upstream(503, 200)
    async with client_for(upstream) as client:
        with pytest.raises(errors.HttpStatusError):
            await client.post("/jobs", json={"a": 1})
    assert upstream.calls == 1


async def test_post_with_idempotency_key_is_retried_with_the_same_key() -> None:
    upstream = Upstream(503, 200)
    async with client_for(upstream) as client:
        response = await client.post("/jobs", json={"a": 1}, idempotency_key=True)
    assert response.status_code == 200
    keys = [request.headers["Idempotency-Key"] for request in upstream.requests]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert upstream.requests[1].read() == b'{"a":1}'


async def test_post_with_callers_idempotency_key_header_is_retried() -> None:
    upstream = Upstream(502, 201)
    async with client_for(upstream) as client:
        response = await client.post("/jobs", headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 201
    assert [r.headers["Idempotency-Key"] for r in upstream.requests] == ["k-1", "k-1"]


async def test_4xx_is_mapped_and_not_retried() -> None:
    upstream = Upstream(404)
    async with client_for(upstream) as client:
        with pytest.raises(errors.HttpStatusError) as caught:
            await client.get("/missing?token=s3cret")
    assert type(caught.value) is errors.HttpStatusError
    assert caught.value.status_code == 404
    assert caught.value.method == "GET"
    assert "s3cret" not in str(caught.value.url)
    assert upstream.calls == 1


async def test_3xx_is_returned_not_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/elsewhere"})

    async with client_for(handler) as client:
        response = await client.get("/old")
    assert response.status_code == 302


async def test_connect_errors_are_retried_then_mapped() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("connection refused", request=request)

    async with client_for(handler, breaker=None) as client:
        with pytest.raises(errors.HttpConnectError):
            await client.delete("/thing")
    assert calls == 3


async def test_total_timeout_maps_to_http_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    client = http.HttpClient(
        BASE,
        transport=httpx.MockTransport(handler),
        timeout=http.Timeouts(total=0.05),
        retry=None,
    )
    async with client:
        with pytest.raises(errors.HttpTimeout) as caught:
            await client.get("/slow")
    assert caught.value.is_retryable()


# -- Retry-After -------------------------------------------------------------------------------


def _status(code: int) -> errors.HttpStatusError:
    return errors.HttpStatusError(status_code=code)


@pytest.mark.parametrize(
    ("error", "server_wait", "elapsed", "expected"),
    [
        (_status(503), None, 0.0, True),  # stamina's exponential backoff with jitter
        (_status(429), 2.0, 0.0, 2.0),  # exactly what the server asked
        (_status(503), 4.0, 0.0, 4.0),
        (_status(429), 6.0, 0.0, False),  # longer than wait_max: give up, the error says when
        (_status(429), 2.0, 29.0, False),  # longer than the budget left
        (_status(404), None, 0.0, False),
        (ValueError("not ours"), None, 0.0, False),
    ],
)
def test_wait_for_honours_retry_after_within_the_policy(
    error: BaseException, server_wait: float | None, elapsed: float, expected: bool | float
) -> None:
    policy = http.RetryPolicy(attempts=3, wait_max=5.0, total_timeout=30.0)
    assert policy.wait_for(error, server_wait=server_wait, elapsed=elapsed) == expected


async def test_429_with_retry_after_is_retried_with_that_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[bool | float] = []
    wait_for = http.RetryPolicy.wait_for

    def spy(self: http.RetryPolicy, *args: object, **kwargs: object) -> bool | float:
        asked.append(wait_for(self, *args, **kwargs))  # type: ignore[arg-type]
        return asked[-1]

    monkeypatch.setattr(http.RetryPolicy, "wait_for", spy)
    upstream = Upstream(429, 200, headers={"Retry-After": "2"})
    async with client_for(upstream) as client:
        response = await client.get("/limited")
    assert response.status_code == 200
    assert asked == [2.0]


async def test_retry_after_beyond_wait_max_is_raised_at_once() -> None:
    upstream = Upstream(429, 200, headers={"Retry-After": "120"})
    async with client_for(upstream) as client:
        with pytest.raises(errors.HttpStatusError) as caught:
            await client.get("/limited")
    assert caught.value.retry_after() == 120.0
    assert upstream.calls == 1


# -- circuit breaker ---------------------------------------------------------------------------


async def test_breaker_opens_fails_fast_half_opens_and_closes() -> None:
    clock = FakeClock()
    upstream = Upstream(503, 503, 200)
    breaker = http.BreakerPolicy(failures=2, reset_after=10.0)
    async with client_for(upstream, retry=None, breaker=breaker, clock=clock) as client:
        for _ in range(2):
            with pytest.raises(errors.HttpStatusError):
                await client.get("/x")
        circuit = client.circuit("api.test")
        assert circuit is not None
        assert circuit.state == "open"

        clock.now += 4.0
        with pytest.raises(errors.ExternalServiceError) as caught:
            await client.get("/x")
        assert upstream.calls == 2  # failed fast: the transport was not called
        assert caught.value.service == "api.test"
        assert caught.value.retry_after() == pytest.approx(6.0)

        clock.now += 6.0
        assert state_of(circuit) == "half_open"
        response = await client.get("/x")  # the one trial call
        assert response.status_code == 200
        assert state_of(circuit) == "closed"


async def test_breaker_reopens_when_the_trial_fails() -> None:
    clock = FakeClock()
    upstream = Upstream(503)
    breaker = http.BreakerPolicy(failures=1, reset_after=5.0)
    async with client_for(upstream, retry=None, breaker=breaker, clock=clock) as client:
        with pytest.raises(errors.HttpStatusError):
            await client.get("/x")
        clock.now += 5.0
        with pytest.raises(errors.HttpStatusError):
            await client.get("/x")  # trial fails
        circuit = client.circuit("api.test")
        assert circuit is not None
        assert circuit.state == "open"
        assert upstream.calls == 2


async def test_breaker_ignores_4xx_and_stops_retries_once_open() -> None:
    upstream = Upstream(404, 404, 404, 503)
    breaker = http.BreakerPolicy(failures=2, reset_after=30.0)
    retry = http.RetryPolicy(attempts=5)
    async with client_for(upstream, retry=retry, breaker=breaker) as client:
        for _ in range(3):
            with pytest.raises(errors.HttpStatusError):
                await client.get("/x")
        circuit = client.circuit("api.test")
        assert circuit is not None
        assert circuit.state == "closed"
        with pytest.raises(errors.ExternalServiceError):
            await client.get("/x")  # 503, 503: open; the third attempt is refused
    assert upstream.calls == 5


def test_half_open_allows_one_trial_at_a_time() -> None:
    clock = FakeClock()
    circuit = http.CircuitBreaker("h", http.BreakerPolicy(failures=1, reset_after=1.0), clock=clock)
    circuit.record_failure()
    clock.now += 1.0
    circuit.acquire()
    with pytest.raises(errors.ExternalServiceError):
        circuit.acquire()
    circuit.release()  # the trial was cancelled: the next caller may try
    circuit.acquire()
    circuit.record_success()
    assert circuit.state == "closed"


# -- telemetry ---------------------------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A private tracer provider (the global one can be set once per process)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


async def test_a_client_span_per_attempt_with_semconv_attributes(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    upstream = Upstream(503, 200)
    async with client_for(upstream, tracer_provider=provider) as client:
        await client.get("/v1/items?api_key=s3cret")

    first, second = exporter.get_finished_spans()
    assert first.name == second.name == "HTTP GET"
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["http.request.method"] == "GET"
    assert first.attributes["server.address"] == "api.test"
    assert "s3cret" not in str(first.attributes["url.full"])
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["error.type"] == "http.status_error"
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["http.response.status_code"] == 200
    assert "error.type" not in second.attributes
    # W3C trace context of each attempt's span went out with it.
    for request, span in zip(upstream.requests, (first, second), strict=True):
        context = span.get_span_context()
        assert context is not None
        version, trace_id, span_id, _flags = request.headers["traceparent"].split("-")
        assert (version, trace_id, span_id) == (
            "00",
            f"{context.trace_id:032x}",
            f"{context.span_id:016x}",
        )


# -- redaction ---------------------------------------------------------------------------------


def test_redact_headers_masks_credentials() -> None:
    headers = httpx.Headers(
        [
            ("Authorization", "Bearer abc.def"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("Cookie", "session=abc"),
            ("Set-Cookie", "id=1"),
            ("X-Api-Key", "k1"),
            ("Api-Key", "k2"),
            ("X-Vault-Token", "hvs.abcdefghijklmnopqrstuvwx"),
            ("Accept", "application/json"),
            ("X-Note", "password=hunter2"),
        ]
    )
    redacted = http.redact_headers(headers)
    assert redacted["accept"] == "application/json"
    for name in (
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-vault-token",
    ):
        assert redacted[name] == "***"
    assert redacted["x-note"] == "password=***"


def test_redact_url_masks_userinfo_and_query_secrets() -> None:
    url = http.redact_url("https://user:pw@api.test/v1?token=abc&limit=3&api_key=k")
    assert url == "https://***@api.test/v1?token=***&limit=3&api_key=***"


async def test_log_hooks_never_print_secrets(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Set-Cookie": "session=topsecret"})

    caplog.set_level(logging.DEBUG, logger="llm_infra.http")
    headers = {"Authorization": "Bearer topsecret", "X-Api-Key": "topsecret"}
    async with client_for(handler, headers=headers) as client:
        await client.get("/v1?access_token=topsecret")
    messages = [record.getMessage() for record in caplog.records if record.name == "llm_infra.http"]
    assert len(messages) == 2
    assert all("topsecret" not in message for message in messages)
    assert "HTTP response GET" in messages[1]


# -- streams -----------------------------------------------------------------------------------


def test_sse_decoding_follows_whatwg_fed_a_character_at_a_time() -> None:
    decoder = jsondoc.SseDecoder()
    stream = (
        "\ufeff: a comment\r\n"
        "event: add\r\ndata: one\r\ndata:two\r\nid: 7\r\nretry: 1500\r\n\r\n"
        "data:  leading space kept\n\n"
        "event: ignored-no-data\nid: 8\n\n"
        "data\nunknown: field\nretry: soon\nid: bad\0id\n\r"
        "data: cut at the end"
    )
    events = [event for char in stream for event in decoder.feed(char.encode())]
    assert events == [
        http.SseEvent(event="add", data="one\ntwo", id="7", retry=1500),
        http.SseEvent(data=" leading space kept", id="7", retry=1500),
        http.SseEvent(data="", id="8", retry=1500),
    ]


def test_sse_crlf_split_across_chunks_is_one_line_ending() -> None:
    decoder = jsondoc.SseDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == [http.SseEvent(data="a")]
    assert decoder.feed(b"\n") == []


async def test_stream_sse_and_lines_over_a_transport() -> None:
    body = "data: hello\n\nevent: done\ndata: a\u2028b\n\n".encode()

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Accept"] in {"text/event-stream", "*/*"}
        return httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})

    async with client_for(handler) as client:
        events = [event async for event in client.stream_sse("GET", "/events")]
        lines = [line async for line in client.stream_lines("GET", "/events")]
    assert events == [http.SseEvent(data="hello"), http.SseEvent(event="done", data="a\u2028b")]
    assert lines == ["data: hello", "", "event: done", "data: a\u2028b", ""]


async def test_stream_error_status_is_raised_before_any_event() -> None:
    upstream = Upstream(500)
    async with client_for(upstream, breaker=None) as client:
        with pytest.raises(errors.HttpStatusError):
            async for _ in client.stream_sse("GET", "/events"):
                pass
    assert upstream.calls == 3


# -- the module --------------------------------------------------------------------------------


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(http).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == http.__name__
    }
    assert public <= set(http.__all__)
    assert all(hasattr(http, name) for name in http.__all__)
