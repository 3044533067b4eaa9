"""llm_infra.sim without a network: FaultTransport faults and delays; FakeOpenAI via ASGI."""

from __future__ import annotations

import math
import statistics
from collections.abc import AsyncIterator

import httpx
import pytest

from llm_infra import http, jsondoc, sim

BASE = "http://sim.test"
SSE = b"".join(f'data: {{"n": {n}}}\n\n'.encode() for n in range(5)) + b"data: [DONE]\n\n"


class SleepRecorder:
    """An injected sleep: records the seconds asked for, sleeps not at all."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


async def send_many(transport: httpx.AsyncBaseTransport, count: int) -> list[int | str]:
    """Each request's status, or the name of the exception it raised."""
    outcomes: list[int | str] = []
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        for _ in range(count):
            try:
                response = await client.get("/")
                outcomes.append(response.status_code)
            except httpx.TransportError as exc:
                outcomes.append(type(exc).__name__)
    return outcomes


def mixed(seed: int, sleep: SleepRecorder | None = None) -> sim.FaultTransport:
    return (
        sim.Simulator(seed=seed)
        .with_latency(sim.Latency.uniform(1, 50))
        .with_failure_rate(
            0.5, sim.Fault.status(503), (2, sim.Fault.rate_limited(2)), sim.Fault.reset()
        )
        .with_response(200, json={"ok": True})
        .with_sleep(sleep or SleepRecorder())
        .transport()
    )


# -- FaultTransport ----------------------------------------------------------------------------


def test_public_names_are_exported() -> None:
    public = {name for name in vars(sim) if not name.startswith("_")} - {"annotations"}
    assert set(sim.__all__) <= public
    assert {"FaultTransport", "Simulator", "Fault", "Latency", "FakeOpenAI"} <= set(sim.__all__)


async def test_same_seed_same_faults_and_delays() -> None:
    first, second, other = SleepRecorder(), SleepRecorder(), SleepRecorder()
    a, b, c = mixed(7, first), mixed(7, second), mixed(8, other)
    outcomes_a, outcomes_b = await send_many(a, 40), await send_many(b, 40)
    await send_many(c, 40)
    assert outcomes_a == outcomes_b
    assert a.history == b.history
    assert first.calls == second.calls
    assert a.history != c.history
    assert {503, 429, 200, "ConnectError"} <= set(outcomes_a)


async def test_error_rate_is_roughly_honoured() -> None:
    transport = sim.FaultTransport(seed=3, error_rate=0.2, sleep=SleepRecorder())
    outcomes = await send_many(transport, 500)
    share = outcomes.count(503) / len(outcomes)
    assert 0.14 < share < 0.26
    assert set(outcomes) == {200, 503}


@pytest.mark.parametrize(
    ("latency", "low", "high", "mean_low", "mean_high"),
    [
        (sim.Latency.fixed(25), 0.025, 0.025, 0.025, 0.025),
        (sim.Latency.uniform(10, 30), 0.010, 0.030, 0.018, 0.022),
        (sim.Latency.normal(100, 10), 0.040, 0.160, 0.097, 0.103),
        (sim.Latency.lognormal(50, 0.5), 0.0, math.inf, 0.050, 0.064),
    ],
)
async def test_latency_distributions(
    latency: sim.Latency, low: float, high: float, mean_low: float, mean_high: float
) -> None:
    sleep = SleepRecorder()
    transport = sim.FaultTransport(seed=11, latency=latency, sleep=sleep)
    await send_many(transport, 400)
    assert len(sleep.calls) == 400
    assert all(low <= s <= high for s in sleep.calls)
    assert mean_low <= statistics.fmean(sleep.calls) <= mean_high
    if latency.kind == "lognormal":  # the median is the parameter; the mean sits above it
        assert 0.045 <= statistics.median(sleep.calls) <= 0.055


async def test_normal_latency_never_negative() -> None:
    sleep = SleepRecorder()
    transport = sim.FaultTransport(seed=1, latency=sim.Latency.normal(1, 50), sleep=sleep)
    await send_many(transport, 100)
    assert transport.delays
    assert min(transport.delays) >= 0.0
    assert len(sleep.calls) < 100  # zero delays are not slept


async def test_rate_limited_carries_retry_after() -> None:
    transport = sim.Simulator(seed=1).with_schedule(sim.Fault.rate_limited(1.5)).transport()
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        response = await client.get("/")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"  # whole seconds, rounded up
    assert response.json()["error"]["type"] == "rate_limit_error"


async def test_status_fault_answers_with_an_error_body() -> None:
    transport = sim.Simulator(seed=1).with_schedule(sim.Fault.status(502)).transport()
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        response = await client.get("/")
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "server_error"


async def test_resets_raise_transport_errors() -> None:
    transport = (
        sim.Simulator(seed=1)
        .with_schedule(sim.Fault.reset(), sim.Fault.reset(during="response"))
        .transport()
    )
    assert await send_many(transport, 3) == ["ConnectError", "RemoteProtocolError", 200]


async def test_schedule_fails_first_then_succeeds() -> None:
    transport = (
        sim.Simulator(seed=1)
        .with_schedule(sim.Fault.status(500), sim.Fault.status(500), sim.Fault.ok())
        .with_failure_rate(0.0)
        .with_response(201, json={"done": True})
        .transport()
    )
    assert await send_many(transport, 5) == [500, 500, 201, 201, 201]
    assert [f.kind for f in transport.history] == ["status", "status", "ok", "ok", "ok"]


async def test_schedule_keeps_the_random_tail_aligned() -> None:
    plain = sim.FaultTransport(seed=5, error_rate=0.5, sleep=SleepRecorder())
    scheduled = sim.FaultTransport(
        seed=5, error_rate=0.5, schedule=[sim.Fault.ok()] * 3, sleep=SleepRecorder()
    )
    await send_many(plain, 20)
    await send_many(scheduled, 20)
    assert plain.history[3:] == scheduled.history[3:]


async def test_truncated_sse_raises_mid_event() -> None:
    transport = (
        sim.Simulator(seed=1)
        .with_schedule(sim.Fault.truncate(after_bytes=25))
        .with_response(200, content=SSE, headers={"content-type": "text/event-stream"})
        .transport()
    )
    decoder = jsondoc.SseDecoder()
    events: list[jsondoc.SseEvent] = []

    async def read(response: httpx.Response) -> None:
        async for chunk in response.aiter_raw():
            events.extend(decoder.feed(chunk))

    async with (
        httpx.AsyncClient(base_url=BASE, transport=transport) as client,
        client.stream("GET", "/") as response,
    ):
        assert "content-length" not in response.headers
        with pytest.raises(httpx.RemoteProtocolError):
            await read(response)
    assert [e.data for e in events] == ['{"n": 0}']  # the second event was cut mid-way


async def test_clean_truncation_just_ends_early() -> None:
    transport = (
        sim.Simulator(seed=1)
        .with_schedule(sim.Fault.truncate(after_bytes=40, abrupt=False))
        .with_response(200, content=SSE)
        .transport()
    )
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        response = await client.get("/")
    assert response.content == SSE[:40]
    deltas = list(jsondoc.iter_llm_deltas(jsondoc.SseDecoder().feed(response.content)))
    assert deltas == [{"n": 0}, {"n": 1}]  # no [DONE]: the client can tell


async def test_wraps_an_inner_transport() -> None:
    inner = httpx.MockTransport(lambda request: httpx.Response(200, text=request.url.path))
    transport = sim.FaultTransport(inner, seed=2, schedule=[sim.Fault.status(503)])
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        assert (await client.get("/a")).status_code == 503
        assert (await client.get("/b")).text == "/b"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        sim.FaultTransport(seed=1, error_rate=1.5)
    with pytest.raises(ValueError, match="4xx or 5xx"):
        sim.Fault.status(200)
    with pytest.raises(ValueError, match="low <= high"):
        sim.Latency.uniform(5, 1)


# -- FakeOpenAI --------------------------------------------------------------------------------


@pytest.fixture
async def openai() -> AsyncIterator[tuple[sim.FakeOpenAI, httpx.AsyncClient]]:
    app = sim.FakeOpenAI(sim.FakeOpenAIConfig(embedding_dimension=16))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        yield app, client


CHAT = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hello there world"}]}


async def test_chat_completion(openai: tuple[sim.FakeOpenAI, httpx.AsyncClient]) -> None:
    app, client = openai
    response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "You said: hello there world",
    }
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert app.requests["/v1/chat/completions"] == 1


async def test_chat_completion_stream(openai: tuple[sim.FakeOpenAI, httpx.AsyncClient]) -> None:
    _, client = openai
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    decoder = jsondoc.SseDecoder()
    events: list[jsondoc.SseEvent] = []
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"] == "text/event-stream"
        async for chunk in response.aiter_bytes():
            events.extend(decoder.feed(chunk))
    assert events[-1].data == "[DONE]"
    deltas = list(jsondoc.iter_llm_deltas(events))
    text = "".join(d["choices"][0]["delta"].get("content", "") for d in deltas if d["choices"])
    assert text == "You said: hello there world"
    assert deltas[0]["choices"][0]["delta"]["role"] == "assistant"
    assert deltas[-2]["choices"][0]["finish_reason"] == "stop"
    assert deltas[-1]["usage"]["completion_tokens"] == 5


async def test_stream_latencies_are_slept() -> None:
    sleep = SleepRecorder()
    config = sim.FakeOpenAIConfig(ttft_ms=200, inter_token_ms=10)
    transport = httpx.ASGITransport(app=sim.FakeOpenAI(config, sleep=sleep))
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 200
    assert sleep.calls == [0.2, 0.01, 0.01, 0.01, 0.01]


async def test_embeddings_are_deterministic(
    openai: tuple[sim.FakeOpenAI, httpx.AsyncClient],
) -> None:
    _, client = openai
    request = {"model": "fake-embedding", "input": ["alpha", "beta", "alpha"]}
    first = (await client.post("/v1/embeddings", json=request)).json()
    again = (await client.post("/v1/embeddings", json=request)).json()
    vectors = [item["embedding"] for item in first["data"]]
    assert [item["embedding"] for item in again["data"]] == vectors
    assert all(len(v) == 16 for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(math.fsum(x * x for x in vectors[0]), 1.0)
    sized = await client.post("/v1/embeddings", json={"input": "alpha", "dimensions": 3})
    assert len(sized.json()["data"][0]["embedding"]) == 3


async def test_models(openai: tuple[sim.FakeOpenAI, httpx.AsyncClient]) -> None:
    _, client = openai
    body = (await client.get("/v1/models")).json()
    assert [m["id"] for m in body["data"]] == ["fake-gpt", "fake-embedding"]


@pytest.mark.parametrize(
    ("path", "content", "param"),
    [
        ("/v1/chat/completions", b"{not json", None),
        ("/v1/chat/completions", b"[1, 2]", None),
        ("/v1/chat/completions", b'{"messages": []}', "messages"),
        ("/v1/embeddings", b'{"input": 3}', "input"),
    ],
)
async def test_bad_requests_get_400(
    openai: tuple[sim.FakeOpenAI, httpx.AsyncClient], path: str, content: bytes, param: str | None
) -> None:
    _, client = openai
    response = await client.post(path, content=content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_unknown_route_and_method(
    openai: tuple[sim.FakeOpenAI, httpx.AsyncClient],
) -> None:
    _, client = openai
    assert (await client.get("/v1/nothing")).status_code == 404
    response = await client.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_failure_schedule() -> None:
    config = sim.FakeOpenAIConfig(
        failures=(
            sim.ScheduledFailure(status=429, retry_after=3),
            sim.ScheduledFailure(status=500),
        )
    )
    app = sim.FakeOpenAI(config)
    async with httpx.AsyncClient(base_url=BASE, transport=httpx.ASGITransport(app=app)) as client:
        limited = await client.post("/v1/chat/completions", json=CHAT)
        broken = await client.get("/v1/models")
        fine = await client.post("/v1/chat/completions", json=CHAT)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert broken.status_code == 500
    assert "retry-after" not in broken.headers
    assert fine.status_code == 200
    assert app.failures_served == 2
    assert app.total_requests == 3
    assert app.requests == {"/v1/chat/completions": 2, "/v1/models": 1}


async def test_fault_transport_in_front_of_the_fake() -> None:
    app = sim.FakeOpenAI()
    transport = (
        sim.Simulator(seed=1)
        .with_inner(httpx.ASGITransport(app=app))
        .with_schedule(sim.Fault.reset(), sim.Fault.ok())
        .transport()
    )
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/v1/models")
        assert (await client.get("/v1/models")).status_code == 200
    assert app.total_requests == 1  # the reset never reached the server


def test_config_helper() -> None:
    config = sim.FakeOpenAIConfig.failing_first(2, status=503, retry_after=None, ttft_ms=5)
    assert [f.status for f in config.failures] == [503, 503]
    assert config.ttft_ms == 5


async def test_http_client_retries_through_the_fault_transport() -> None:
    transport = (
        sim.Simulator(seed=1)
        .with_schedule(sim.Fault.status(503), sim.Fault.reset())
        .with_response(200, json={"ok": True})
        .transport()
    )
    retry = http.RetryPolicy(attempts=3, wait_initial=0.001, wait_max=0.01, jitter=0.0)
    async with http.HttpClient(BASE, retry=retry, transport=transport) as client:
        response = await client.get("/v1/models")
    assert response.json() == {"ok": True}
    assert [f.kind for f in transport.history] == ["status", "reset", "ok"]
