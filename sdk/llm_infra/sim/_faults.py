"""FaultTransport: an httpx transport that delays requests and injects faults, reproducibly.

Every random choice comes from one `random.Random(seed)`, drawn in a fixed
order per request (fault, then latency), so a seed replays the same sequence
of faults and delays for the same sequence of requests. A `schedule` overrides
the dice for the first requests ("fail twice, then succeed").
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

import httpx

from llm_infra import jsondoc

__all__ = ["Fault", "FaultKind", "FaultTransport", "Latency", "Reply", "Simulator", "Sleep"]

Sleep = Callable[[float], Awaitable[None]]
FaultKind = Literal["ok", "status", "rate_limited", "reset", "truncate"]
LatencyKind = Literal["none", "fixed", "uniform", "normal", "lognormal"]
WeightedFault = tuple[float, "Fault"]


# -- latency -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Latency:
    """A delay distribution in milliseconds; `sample` answers seconds, never negative.

    Build one with `none`, `fixed`, `uniform`, `normal` or `lognormal`.
    """

    kind: LatencyKind = "none"
    a: float = 0.0
    b: float = 0.0

    @classmethod
    def none(cls) -> Latency:
        return cls()

    @classmethod
    def fixed(cls, ms: float) -> Latency:
        return cls("fixed", ms)

    @classmethod
    def uniform(cls, low_ms: float, high_ms: float) -> Latency:
        if high_ms < low_ms:
            raise ValueError(f"uniform latency needs low <= high, got {low_ms} > {high_ms}")
        return cls("uniform", low_ms, high_ms)

    @classmethod
    def normal(cls, mean_ms: float, sd_ms: float) -> Latency:
        """Gaussian, clamped at zero (a negative draw means no delay)."""
        return cls("normal", mean_ms, sd_ms)

    @classmethod
    def lognormal(cls, median_ms: float, sigma: float) -> Latency:
        """Median `median_ms`, shape `sigma`: the long tail real services show."""
        if median_ms <= 0:
            raise ValueError(f"lognormal latency needs a positive median, got {median_ms}")
        return cls("lognormal", median_ms, sigma)

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds (always draws one number, so sequences stay aligned)."""
        match self.kind:
            case "none":
                rng.random()
                ms = 0.0
            case "fixed":
                rng.random()
                ms = self.a
            case "uniform":
                ms = rng.uniform(self.a, self.b)
            case "normal":
                ms = rng.gauss(self.a, self.b)
            case "lognormal":
                ms = rng.lognormvariate(math.log(self.a), self.b)
        return max(0.0, ms) / 1000.0


# -- faults ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """What happens to one request. Build with `ok`, `status`, `rate_limited`, `reset`, `truncate`.

    - ``status``: answer `status_code` with an OpenAI-style error body, unsent.
    - ``rate_limited``: answer 429 with ``Retry-After: retry_after``, unsent.
    - ``reset``: raise httpx.ConnectError before sending (`during="connect"`),
      or httpx.RemoteProtocolError as if the peer hung up (`during="response"`).
    - ``truncate``: send, then cut the response body after `after_bytes`
      bytes; `abrupt` raises httpx.RemoteProtocolError there (a dropped
      connection), otherwise the body just ends early.
    """

    kind: FaultKind = "ok"
    status_code: int = 200
    retry_after: float | None = None
    during: Literal["connect", "response"] = "connect"
    after_bytes: int = 0
    abrupt: bool = True

    @classmethod
    def ok(cls) -> Fault:
        return cls()

    @classmethod
    def status(cls, status_code: int) -> Fault:
        if not 400 <= status_code <= 599:
            raise ValueError(f"a status fault needs a 4xx or 5xx status, got {status_code}")
        return cls("status", status_code)

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0) -> Fault:
        return cls("rate_limited", 429, retry_after=retry_after)

    @classmethod
    def reset(cls, during: Literal["connect", "response"] = "connect") -> Fault:
        return cls("reset", during=during)

    @classmethod
    def truncate(cls, after_bytes: int, *, abrupt: bool = True) -> Fault:
        if after_bytes < 0:
            raise ValueError(f"after_bytes must be >= 0, got {after_bytes}")
        return cls("truncate", after_bytes=after_bytes, abrupt=abrupt)


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """The response a FaultTransport without an inner transport answers with."""

    status_code: int = 200
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    content: bytes = b""

    @classmethod
    def of(
        cls,
        status_code: int = 200,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """A reply with a JSON body (`json`) or raw `content` (str is UTF-8 encoded)."""
        merged = dict(headers or {})
        if json is not None:
            body = jsondoc.dumps(json)
            merged.setdefault("content-type", "application/json")
        elif isinstance(content, str):
            body = content.encode()
        else:
            body = content or b""
        return cls(status_code, merged, body)


def _retry_after_header(seconds: float) -> str:
    # Retry-After is delta-seconds: whole seconds, rounded up so a client never knocks early.
    return str(math.ceil(seconds))


def _error_body(status_code: int, message: str) -> bytes:
    kind = "rate_limit_error" if status_code == 429 else "server_error"
    return jsondoc.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})


class _CutStream(httpx.AsyncByteStream):
    """The first `limit` bytes of `inner`, then an end or a dropped connection."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int, *, abrupt: bool) -> None:
        self._inner = inner
        self._limit = limit
        self._abrupt = abrupt

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self._limit
        async for chunk in self._inner:
            if len(chunk) > left:
                if left:
                    yield chunk[:left]
                if self._abrupt:
                    raise httpx.RemoteProtocolError(
                        "peer closed connection without sending complete message body (simulated)"
                    )
                return
            left -= len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


# -- the transport -----------------------------------------------------------------------------


class FaultTransport(httpx.AsyncBaseTransport):
    """An httpx transport that delays and breaks requests, reproducibly from `seed`.

    Request n (from 0) gets `schedule[n]` if there is one, else a fault drawn
    from `errors` (weights, then faults; default a 503) with probability
    `error_rate`, else none; then a delay drawn from `latency`, slept with
    `sleep` before anything else happens. Requests that pass (or are only
    truncated) go to `inner`, or, without one, get `reply`. `history` lists
    the fault of every request so far (``Fault.ok()`` when none), `delays` the
    seconds slept.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        seed: int,
        latency: Latency = Latency(),
        error_rate: float = 0.0,
        errors: Sequence[WeightedFault] = ((1.0, Fault.status(503)),),
        schedule: Sequence[Fault] | None = None,
        reply: Reply = Reply(),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be within [0, 1], got {error_rate}")
        if error_rate and not errors:
            raise ValueError("a positive error_rate needs at least one fault in errors")
        self.inner = inner
        self.seed = seed
        self.latency = latency
        self.error_rate = error_rate
        self.errors = tuple(errors)
        self.schedule = tuple(schedule or ())
        self.reply = reply
        self._sleep = sleep
        self._rng = random.Random(seed)  # noqa: S311  reproducible faults, not secrets
        self.history: list[Fault] = []
        self.delays: list[float] = []

    def next_fault(self) -> tuple[Fault, float]:
        """Decide the next request's fault and delay (seconds), recording both."""
        number = len(self.history)
        # Always draw twice per request, so a schedule or error_rate=0 keeps delays aligned.
        roll, pick = self._rng.random(), self._rng.random()
        if number < len(self.schedule):
            fault = self.schedule[number]
        elif roll < self.error_rate:
            fault = self._weighted(pick)
        else:
            fault = Fault.ok()
        delay = self.latency.sample(self._rng)
        self.history.append(fault)
        self.delays.append(delay)
        return fault, delay

    def _weighted(self, pick: float) -> Fault:
        total = sum(weight for weight, _ in self.errors)
        point = pick * total
        for weight, fault in self.errors:
            point -= weight
            if point < 0:
                return fault
        return self.errors[-1][1]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault, delay = self.next_fault()
        if delay > 0:
            await self._sleep(delay)
        match fault.kind:
            case "status":
                return self._error(request, fault.status_code, "simulated server error")
            case "rate_limited":
                response = self._error(request, 429, "simulated rate limit")
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = _retry_after_header(fault.retry_after)
                return response
            case "reset" if fault.during == "connect":
                raise httpx.ConnectError("connection reset by peer (simulated)", request=request)
            case "reset":
                raise httpx.RemoteProtocolError(
                    "server disconnected without sending a response (simulated)", request=request
                )
        response = await self._pass(request)
        if fault.kind != "truncate":
            return response
        if not isinstance(response.stream, httpx.AsyncByteStream):
            raise TypeError("an async transport answered with a sync stream")
        headers = httpx.Headers(response.headers)
        headers.pop("content-length", None)
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=_CutStream(response.stream, fault.after_bytes, abrupt=fault.abrupt),
            request=request,
            extensions=response.extensions,
        )

    async def _pass(self, request: httpx.Request) -> httpx.Response:
        if self.inner is not None:
            return await self.inner.handle_async_request(request)
        return httpx.Response(
            self.reply.status_code,
            headers=self.reply.headers,
            stream=httpx.ByteStream(self.reply.content),
            request=request,
        )

    @staticmethod
    def _error(request: httpx.Request, status_code: int, message: str) -> httpx.Response:
        return httpx.Response(
            status_code,
            headers={"content-type": "application/json"},
            content=_error_body(status_code, message),
            request=request,
        )

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()


# -- the builder -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Simulator:
    """An immutable builder of `FaultTransport`: each ``with_*`` returns a new Simulator."""

    seed: int = 0
    latency: Latency = Latency()
    error_rate: float = 0.0
    errors: tuple[WeightedFault, ...] = ((1.0, Fault.status(503)),)
    schedule: tuple[Fault, ...] = ()
    reply: Reply = Reply()
    inner: httpx.AsyncBaseTransport | None = None
    sleep: Sleep = asyncio.sleep

    def with_latency(self, latency: Latency | float) -> Simulator:
        """A distribution, or a fixed delay in milliseconds."""
        chosen = latency if isinstance(latency, Latency) else Latency.fixed(latency)
        return dataclasses.replace(self, latency=chosen)

    def with_failure_rate(self, rate: float, *faults: Fault | WeightedFault) -> Simulator:
        """Fail a `rate` share of requests with `faults` (weight 1 unless given as (w, fault))."""
        weighted = tuple(f if isinstance(f, tuple) else (1.0, f) for f in faults)
        return dataclasses.replace(self, error_rate=rate, errors=weighted or self.errors)

    def with_schedule(self, *faults: Fault) -> Simulator:
        """The faults of the first requests, in order; `Fault.ok()` lets one through."""
        return dataclasses.replace(self, schedule=faults)

    def with_response(
        self,
        status_code: int = 200,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Simulator:
        """What requests that pass are answered with when there is no inner transport."""
        reply = Reply.of(status_code, json=json, content=content, headers=headers)
        return dataclasses.replace(self, reply=reply)

    def with_inner(self, inner: httpx.AsyncBaseTransport) -> Simulator:
        """Forward requests that pass to `inner` (e.g. httpx.ASGITransport(FakeOpenAI()))."""
        return dataclasses.replace(self, inner=inner)

    def with_sleep(self, sleep: Sleep) -> Simulator:
        return dataclasses.replace(self, sleep=sleep)

    def transport(self) -> FaultTransport:
        return FaultTransport(
            self.inner,
            seed=self.seed,
            latency=self.latency,
            error_rate=self.error_rate,
            errors=self.errors,
            schedule=self.schedule,
            reply=self.reply,
            sleep=self.sleep,
        )
