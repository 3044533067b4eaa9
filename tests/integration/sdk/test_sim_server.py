"""llm_infra.sim.FakeOpenAI over real HTTP: uvicorn on 127.0.0.1, llm_infra.http as the client.

Each test gets its own app (and so its own counters and schedule), served by
uvicorn in a background thread on a free port until the test ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn

from llm_infra import http, jsondoc, sim
from tests.servers.asgi import serve_in_thread

Serve = Callable[[sim.FakeOpenAI], str]
CHAT = {"model": "fake-gpt", "messages": [{"role": "user", "content": "stream me a reply"}]}


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a FakeOpenAI under uvicorn; hands back its base URL. Stops every server at the end."""
    with contextlib.ExitStack() as running:

        def start(app: sim.FakeOpenAI) -> str:
            config = uvicorn.Config(
                app, lifespan="on", ws="none", log_level="warning", timeout_graceful_shutdown=1
            )
            return running.enter_context(serve_in_thread(config))

        yield start


async def test_stream_honours_time_to_first_token(serve: Serve) -> None:
    config = sim.FakeOpenAIConfig(ttft_ms=300, inter_token_ms=20)
    url = serve(sim.FakeOpenAI(config))
    async with http.HttpClient(url) as client:
        started = time.monotonic()
        first_token_at: float | None = None
        text: list[str] = []
        events = client.stream_sse("POST", "/v1/chat/completions", json={**CHAT, "stream": True})
        async for delta in jsondoc.aiter_llm_deltas(events):
            content = delta["choices"][0]["delta"].get("content") if delta["choices"] else None
            if content and first_token_at is None:
                first_token_at = time.monotonic() - started
            text.append(content or "")
        total = time.monotonic() - started
    assert "".join(text) == "You said: stream me a reply"
    assert first_token_at is not None
    assert 0.3 <= first_token_at < 2.0
    assert total >= 0.3 + 0.02 * 5  # six tokens, five gaps


async def test_retries_through_a_429_schedule(serve: Serve) -> None:
    app = sim.FakeOpenAI(sim.FakeOpenAIConfig.failing_first(1, status=429, retry_after=1))
    url = serve(app)
    retry = http.RetryPolicy(attempts=3, wait_initial=0.01, wait_max=2.0, jitter=0.0)
    async with http.HttpClient(url, retry=retry) as client:
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", json=CHAT, idempotency_key=True)
        elapsed = time.monotonic() - started
    assert response.json()["choices"][0]["message"]["content"] == "You said: stream me a reply"
    assert app.requests["/v1/chat/completions"] == 2
    assert app.failures_served == 1
    assert 1.0 <= elapsed < 5.0  # waited what Retry-After asked, not the 10 ms backoff


async def test_embeddings_over_http(serve: Serve) -> None:
    url = serve(sim.FakeOpenAI(sim.FakeOpenAIConfig(embedding_dimension=32)))
    async with http.HttpClient(url) as client:
        first = await client.post("/v1/embeddings", json={"input": ["a", "b"]})
        again = await client.post("/v1/embeddings", json={"input": ["a", "b"]})
    assert first.json()["data"] == again.json()["data"]
    assert [len(item["embedding"]) for item in first.json()["data"]] == [32, 32]
