"""Simulated dependencies for tests and benchmarks: a fault-injecting transport, a fake OpenAI.

    from llm_infra import http, sim

    transport = (
        sim.Simulator(seed=1)
        .with_latency(sim.Latency.uniform(5, 20))
        .with_failure_rate(0.1, sim.Fault.status(503), (2, sim.Fault.rate_limited(retry_after=1)))
        .with_response(200, json={"ok": True})
        .transport()
    )
    async with http.HttpClient("http://sim", transport=transport) as client: ...

- `FaultTransport` wraps any `httpx.AsyncBaseTransport` (or answers itself)
  and, from a seed, delays requests and injects faults: statuses, 429 with
  Retry-After, connection resets, bodies cut short.
- `Simulator` is the immutable builder for it.
- `FakeOpenAI` is a plain ASGI app speaking enough of the OpenAI API (chat,
  streamed chat, embeddings, models) for clients to be tested against, via
  ``httpx.ASGITransport`` or any ASGI server. It deliberately uses no web
  framework: workloads import the SDK, and the SDK imports none.

Modules: `_faults` (latency, faults, transport, builder), `_openai` (the fake server).
"""

from llm_infra.sim._faults import (
    Fault,
    FaultKind,
    FaultTransport,
    Latency,
    Reply,
    Simulator,
    Sleep,
)
from llm_infra.sim._openai import FakeOpenAI, FakeOpenAIConfig, ScheduledFailure

__all__ = [
    "FakeOpenAI",
    "FakeOpenAIConfig",
    "Fault",
    "FaultKind",
    "FaultTransport",
    "Latency",
    "Reply",
    "ScheduledFailure",
    "Simulator",
    "Sleep",
]
