"""FakeOpenAI: a hand-written ASGI app answering like the OpenAI API, deterministically.

Serves ``POST /v1/chat/completions`` (JSON, or SSE chunks ending in
``data: [DONE]`` when ``stream`` is true), ``POST /v1/embeddings`` and
``GET /v1/models``. The reply echoes the last user message; embeddings are
unit vectors derived from a hash of the text. Timing (time to first token,
time between tokens) and a failure schedule come from `FakeOpenAIConfig`.

No web framework on purpose: the SDK must not import one (import-linter), and
three routes need none. Any ASGI server (uvicorn in tests) or
``httpx.ASGITransport`` can run it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pydantic

from llm_infra import errors, jsondoc

__all__ = ["FakeOpenAI", "FakeOpenAIConfig", "ScheduledFailure"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TOKEN = re.compile(r"\S+\s*")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class ScheduledFailure(pydantic.BaseModel):
    """One failed answer: `status` with an OpenAI-style error, and Retry-After if set."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    status: int = pydantic.Field(default=429, ge=400, le=599)
    retry_after: int | None = pydantic.Field(default=None, ge=0)
    message: str = "simulated failure"


class FakeOpenAIConfig(pydantic.BaseModel):
    """How the fake behaves. Latencies are milliseconds.

    `failures` answers the first ``len(failures)`` API requests, in order,
    whatever their route; requests after them succeed.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    models: tuple[str, ...] = ("fake-gpt", "fake-embedding")
    reply_prefix: str = "You said: "
    ttft_ms: float = pydantic.Field(default=0.0, ge=0)
    inter_token_ms: float = pydantic.Field(default=0.0, ge=0)
    embedding_dimension: int = pydantic.Field(default=8, ge=1, le=65536)
    failures: tuple[ScheduledFailure, ...] = ()

    @classmethod
    def failing_first(
        cls, count: int, *, status: int = 429, retry_after: int | None = 1, **fields: Any
    ) -> FakeOpenAIConfig:
        """A config whose first `count` requests fail with `status` (and Retry-After)."""
        failure = ScheduledFailure(status=status, retry_after=retry_after)
        return cls(failures=(failure,) * count, **fields)


class _BadRequest(Exception):  # noqa: N818  internal control flow, never escapes the app
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _error(message: str, kind: str, *, param: str | None = None, code: str | None = None) -> bytes:
    return jsondoc.dumps(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}
    )


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text) or [text]


def _count_tokens(text: str) -> int:
    return len(text.split())


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _embed(text: str, dimension: int, *, model: str = "") -> list[float]:
    """A deterministic unit vector for `text`: blake2b blocks read as signed 32-bit ints."""
    values: list[float] = []
    block = 0
    while len(values) < dimension:
        digest = hashlib.blake2b(f"{model}\0{block}\0{text}".encode(), digest_size=64).digest()
        values.extend(v / 2**31 for v in struct.unpack("<16i", digest))
        block += 1
    values = values[:dimension]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class FakeOpenAI:
    """The ASGI app. `requests` counts API requests per path, `failures_served` the failed ones.

    `sleep` is injectable so unit tests can skip the configured latencies.
    """

    def __init__(
        self,
        config: FakeOpenAIConfig | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config or FakeOpenAIConfig()
        self._sleep = sleep
        self.requests: Counter[str] = Counter()
        self.failures_served = 0
        self._completion_id = 0

    @property
    def total_requests(self) -> int:
        return self.requests.total()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        routes = {
            "/v1/chat/completions": ("POST", self._chat),
            "/v1/embeddings": ("POST", self._embeddings),
            "/v1/models": ("GET", self._models),
        }
        route = routes.get(path)
        if route is None:
            await _respond(send, 404, _error(f"no route {path}", "invalid_request_error"))
            return
        allowed, handler = route
        if method != allowed:
            body = _error(f"{method} not allowed on {path}", "invalid_request_error")
            await _respond(send, 405, body, extra=[(b"allow", allowed.encode())])
            return
        number = self.total_requests
        self.requests[path] += 1
        if number < len(self.config.failures):
            self.failures_served += 1
            await self._fail(send, self.config.failures[number])
            return
        try:
            request = await _read_json(receive) if method == "POST" else {}
            await handler(request, send)
        except _BadRequest as exc:
            body = _error(exc.message, "invalid_request_error", param=exc.param)
            await _respond(send, 400, body)

    # -- routes --------------------------------------------------------------------------------

    async def _chat(self, request: dict[str, Any], send: Send) -> None:
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty array", "messages")
        model = str(request.get("model") or self.config.models[0])
        prompt = " ".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict))
        last_user = next(
            (
                _text_of(m.get("content"))
                for m in reversed(messages)
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        reply = f"{self.config.reply_prefix}{last_user}"
        tokens = _tokens(reply)
        usage = {
            "prompt_tokens": _count_tokens(prompt),
            "completion_tokens": len(tokens),
            "total_tokens": _count_tokens(prompt) + len(tokens),
        }
        self._completion_id += 1
        ident = f"chatcmpl-fake-{self._completion_id}"
        created = int(time.time())
        if request.get("stream") is True:
            options = request.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            await self._stream_chat(
                send, ident, created, model, tokens, usage if include_usage else None
            )
            return
        await self._sleep(self._latency_s(len(tokens)))
        body = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }
        await _respond(send, 200, jsondoc.dumps(body))

    async def _stream_chat(
        self,
        send: Send,
        ident: str,
        created: int,
        model: str,
        tokens: list[str],
        usage: dict[str, int] | None,
    ) -> None:
        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
            body = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return b"data: " + jsondoc.dumps(body) + b"\n\n"

        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # Headers go out at once, as real servers do; the first token waits for the TTFT.
        await self._sleep(self.config.ttft_ms / 1000)
        for index, token in enumerate(tokens):
            if index:
                await self._sleep(self.config.inter_token_ms / 1000)
            delta = {"role": "assistant", "content": token} if index == 0 else {"content": token}
            await _body(send, chunk(delta, None))
        await _body(send, chunk({}, "stop"))
        if usage is not None:
            body = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await _body(send, b"data: " + jsondoc.dumps(body) + b"\n\n")
        await _body(send, b"data: [DONE]\n\n", more=False)

    async def _embeddings(self, request: dict[str, Any], send: Send) -> None:
        raw = request.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(i, str) for i in inputs)
        ):
            raise _BadRequest("'input' must be a string or a non-empty array of strings", "input")
        dimension = request.get("dimensions", self.config.embedding_dimension)
        if (
            not isinstance(dimension, int)
            or isinstance(dimension, bool)
            or not 1 <= dimension <= 65536
        ):
            raise _BadRequest("'dimensions' must be an integer within [1, 65536]", "dimensions")
        model = str(request.get("model") or self.config.models[-1])
        await self._sleep(self.config.ttft_ms / 1000)
        tokens = sum(_count_tokens(text) for text in inputs)
        body = {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": _embed(text, dimension, model=model),
                }
                for i, text in enumerate(inputs)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        await _respond(send, 200, jsondoc.dumps(body))

    async def _models(self, request: dict[str, Any], send: Send) -> None:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "llm-infra-sim"}
            for name in self.config.models
        ]
        await _respond(send, 200, jsondoc.dumps({"object": "list", "data": data}))

    # -- helpers -------------------------------------------------------------------------------

    def _latency_s(self, tokens: int) -> float:
        return (self.config.ttft_ms + self.config.inter_token_ms * max(0, tokens - 1)) / 1000

    async def _fail(self, send: Send, failure: ScheduledFailure) -> None:
        kind = "rate_limit_error" if failure.status == 429 else "server_error"
        code = "rate_limit_exceeded" if failure.status == 429 else None
        extra = []
        if failure.retry_after is not None:
            extra.append((b"retry-after", str(failure.retry_after).encode()))
        await _respond(send, failure.status, _error(failure.message, kind, code=code), extra=extra)

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_json(receive: Receive) -> dict[str, Any]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _BadRequest("client disconnected before sending the body")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        value = jsondoc.loads(b"".join(chunks))
    except errors.SerializationError as exc:
        raise _BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _BadRequest("the request body must be a JSON object")
    return value


async def _respond(
    send: Send, status: int, body: bytes, *, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await _body(send, body, more=False)


async def _body(send: Send, body: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})
