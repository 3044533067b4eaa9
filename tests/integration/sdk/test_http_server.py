"""llm_infra.http against a real HTTP server: uvicorn serving a tiny Starlette app on 127.0.0.1.

The server runs in a background thread on a free port, started once for this
file. Endpoints fail on cue (`/flaky/{key}?fail=N`, `/limited/{key}`), stream
SSE (`/events`) or take their time (`/slow`), and count their hits (`/hits/{key}`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from llm_infra import errors, http
from tests.servers.asgi import serve_in_thread

_hits: Counter[str] = Counter()


async def flaky(request: Request) -> Response:
    key = request.path_params["key"]
    _hits[key] += 1
    if _hits[key] <= int(request.query_params.get("fail", "0")):
        return PlainTextResponse("try again", status_code=503)
    return JSONResponse({"attempts": _hits[key]})


async def limited(request: Request) -> Response:
    key = request.path_params["key"]
    _hits[key] += 1
    if _hits[key] == 1:
        return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": "1"})
    return JSONResponse({"attempts": _hits[key]})


async def events(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for number in range(3):
            yield f"id: {number}\nevent: tick\ndata: {number}\n\n".encode()
            await asyncio.sleep(0.01)
        yield b": done\ndata: bye\r\n\r\n"

    return StreamingResponse(body(), media_type="text/event-stream")


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("seconds", "1")))
    return PlainTextResponse("late")


async def hits(request: Request) -> Response:
    return JSONResponse({"hits": _hits[request.path_params["key"]]})


_app = Starlette(
    routes=[
        Route("/flaky/{key}", flaky, methods=["GET", "POST"]),
        Route("/limited/{key}", limited),
        Route("/events", events),
        Route("/slow", slow),
        Route("/hits/{key}", hits),
    ]
)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The base URL of the app, served by uvicorn in a thread until the module's tests end."""
    config = uvicorn.Config(
        _app, lifespan="off", ws="none", log_level="warning", timeout_graceful_shutdown=1
    )
    with serve_in_thread(config) as url:
        yield url


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


FAST_RETRY = http.RetryPolicy(attempts=4, wait_initial=0.01, wait_max=2.0, jitter=0.01)


async def test_real_retries_reach_success(server_url: str) -> None:
    async with http.HttpClient(server_url, retry=FAST_RETRY) as client:
        response = await client.get("/flaky/retries", params={"fail": 2})
    assert response.json() == {"attempts": 3}


async def test_post_is_retried_only_with_an_idempotency_key(server_url: str) -> None:
    async with http.HttpClient(server_url, retry=FAST_RETRY) as client:
        with pytest.raises(errors.HttpStatusError) as caught:
            await client.post("/flaky/post", params={"fail": 1})
        assert caught.value.status_code == 503
        response = await client.post("/flaky/post-key", params={"fail": 1}, idempotency_key=True)
    assert response.json() == {"attempts": 2}


async def test_retry_after_is_waited_for(server_url: str) -> None:
    async with http.HttpClient(server_url, retry=FAST_RETRY) as client:
        start = time.monotonic()
        response = await client.get("/limited/wait")
        elapsed = time.monotonic() - start
    assert response.json() == {"attempts": 2}
    assert 1.0 <= elapsed < 2.0


async def test_breaker_opens_and_closes_against_a_real_host(server_url: str) -> None:
    clock = FakeClock()
    breaker = http.BreakerPolicy(failures=2, reset_after=5.0)
    async with http.HttpClient(server_url, retry=None, breaker=breaker, clock=clock) as client:
        for _ in range(2):
            with pytest.raises(errors.HttpStatusError):
                await client.get("/flaky/breaker", params={"fail": 2})
        with pytest.raises(errors.ExternalServiceError) as caught:
            await client.get("/flaky/breaker", params={"fail": 2})
        assert caught.value.retry_after() == pytest.approx(5.0)
        async with http.HttpClient(server_url) as observer:
            assert (await observer.get("/hits/breaker")).json() == {"hits": 2}  # nothing was sent

        clock.now += 5.0
        response = await client.get("/flaky/breaker", params={"fail": 2})
        assert response.json() == {"attempts": 3}
        circuit = client.circuit(server_url.removeprefix("http://"))
        assert circuit is not None
        assert circuit.state == "closed"


async def test_sse_stream_events(server_url: str) -> None:
    async with http.HttpClient(server_url) as client:
        events = [event async for event in client.stream_sse("GET", "/events")]
    assert events == [
        http.SseEvent(event="tick", data="0", id="0"),
        http.SseEvent(event="tick", data="1", id="1"),
        http.SseEvent(event="tick", data="2", id="2"),
        http.SseEvent(data="bye", id="2"),
    ]


async def test_read_timeout_maps_to_http_timeout(server_url: str) -> None:
    timeouts = http.Timeouts(read=0.2)
    async with http.HttpClient(server_url, timeout=timeouts, retry=None) as client:
        with pytest.raises(errors.HttpTimeout) as caught:
            await client.get("/slow", params={"seconds": 1})
    assert caught.value.is_retryable()
    assert caught.value.method == "GET"


async def test_total_timeout_maps_to_http_timeout(server_url: str) -> None:
    timeouts = http.Timeouts(read=10, total=0.2)
    async with http.HttpClient(server_url, timeout=timeouts, retry=None) as client:
        with pytest.raises(errors.HttpTimeout):
            await client.get("/slow", params={"seconds": 1})


async def test_refused_connection_maps_to_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        async with http.HttpClient(f"http://127.0.0.1:{port}", retry=FAST_RETRY) as client:
            with pytest.raises(errors.HttpConnectError):
                await client.get("/")
