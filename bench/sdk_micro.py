"""Micro-benchmark: what llm-infra's SDK modules add per call over the libraries they wrap.

Each row times our call and the raw library call on the same inputs, in one process, and reports
microseconds per call and the ratio ours/raw:

* ``config-get``          ``llm_infra.config.get(settings, "db.pool.size")`` vs
  ``settings.db.pool.size`` on one loaded ``InfraSettings`` instance;
* ``canonical-sha256``    ``jsondoc.canonical_sha256(doc)`` vs
  ``hashlib.sha256(rfc8785.dumps(doc)).hexdigest()`` on a ~3 KB chat-completion-like document;
* ``schema-validate``     ``schema.Validator(s).validate(x)`` vs
  ``jsonschema_rs.validator_for(s).validate(x)``, both compiled once, a valid instance;
* ``http-get``            ``HttpClient.get`` vs ``httpx.AsyncClient.get``: sequential GETs over
  keep-alive to a uvicorn/Starlette server on 127.0.0.1 started by this script (HttpClient's span
  is on the no-op tracer: no global TracerProvider is set);
* ``http-get-recording``  the same HttpClient with an SDK TracerProvider recording every span
  (SimpleSpanProcessor + InMemorySpanExporter), against the same raw httpx loop;
* ``span-sdk``            ``otel.llm_span(...)`` vs ``tracer.start_as_current_span(...)`` with the
  same name, kind and attributes, on the tracer of ``init_otel(..., set_global=False)`` with a
  SimpleSpanProcessor + InMemorySpanExporter (cleared before every repeat);
* ``span-noop``           the same pair on the global (no-op, proxy) tracer.

Method: raw and ours run in alternation within each repeat (drift hits both alike). The in-process
rows report the best repeat (``timeit``, gc off, calls per repeat calibrated on the raw call to
~0.2 s); the HTTP rows report the median repeat (``time.perf_counter`` around a loop of requests).

Run::

    python bench/sdk_micro.py [--quick] [--json out.json] [--markdown out.md]

``--quick`` runs tiny counts (a CI smoke run; its numbers mean nothing). The markdown report goes
to stdout (and ``--markdown``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import math
import socket
import statistics
import sys
import threading
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _machine  # bench/_machine.py, next to this script
import httpx
import jsonschema_rs
import pydantic
import rfc8785
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llm_infra import config, jsondoc, otel, schema
from llm_infra.http import HttpClient

HTTP_TARGET = 1.10  # HttpClient.get may cost at most 10 % more than raw httpx per request
OPERATIONS: dict[str, str] = {
    "config-get": 'config.get(settings, "db.pool.size") vs settings.db.pool.size',
    "canonical-sha256": "jsondoc.canonical_sha256(doc) vs sha256(rfc8785.dumps(doc))",
    "schema-validate": "Validator(s).validate(x) vs jsonschema_rs.validator_for(s).validate(x)",
    "http-get": "HttpClient.get vs httpx.AsyncClient.get (no-op tracer), loopback keep-alive",
    "http-get-recording": "HttpClient.get with a recording TracerProvider vs raw httpx",
    "span-sdk": "otel.llm_span vs tracer.start_as_current_span, SDK provider, in-memory export",
    "span-noop": "otel.llm_span vs tracer.start_as_current_span, global no-op tracer",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Row:
    """One comparison: µs per call of the raw library and of our layer, every repeat kept."""

    name: str
    operation: str
    raw_us: float
    ours_us: float
    statistic: str  # "best" or "median" of the repeats
    calls_per_repeat: int
    raw_runs_us: list[float] = field(default_factory=list)
    ours_runs_us: list[float] = field(default_factory=list)
    target: float | None = None
    notes: str = ""

    @property
    def ratio(self) -> float:
        return self.ours_us / self.raw_us

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target


@dataclass(frozen=True)
class Params:
    """Counts: calls per timeit repeat (0: calibrate), repeats, HTTP requests per repeat."""

    quick: bool
    sync_number: int
    sync_repeat: int
    http_requests: int
    http_repeat: int
    http_warmup: int


def params_for(quick: bool) -> Params:
    if quick:
        return Params(True, 200, 2, 20, 2, 5)
    return Params(False, 0, 7, 1000, 9, 300)


# -- in-process pairs --------------------------------------------------------------------------


def compare(
    name: str,
    raw: Callable[[], object],
    ours: Callable[[], object],
    params: Params,
    *,
    before_repeat: Callable[[], None] | None = None,
    notes: str = "",
) -> Row:
    """Best-of-repeats µs per call of `raw` and `ours`, alternating within each repeat."""
    raw_timer, ours_timer = timeit.Timer(raw), timeit.Timer(ours)
    number = params.sync_number
    if number <= 0:  # calibrate on the raw call: ~0.2 s per repeat
        calls, seconds = raw_timer.autorange()
        number = max(1, int(calls * 0.2 / seconds))
    raw_runs: list[float] = []
    ours_runs: list[float] = []
    for _ in range(params.sync_repeat):
        for timer, runs in ((raw_timer, raw_runs), (ours_timer, ours_runs)):
            if before_repeat is not None:
                before_repeat()
            runs.append(timer.timeit(number) / number * 1e6)
    row = Row(
        name=name,
        operation=OPERATIONS[name],
        raw_us=min(raw_runs),
        ours_us=min(ours_runs),
        statistic="best",
        calls_per_repeat=number,
        raw_runs_us=raw_runs,
        ours_runs_us=ours_runs,
        notes=notes,
    )
    log(f"{name}: raw {row.raw_us:.3f} µs, ours {row.ours_us:.3f} µs, x{row.ratio:.2f}")
    return row


class Pool(pydantic.BaseModel):
    size: int = 16
    timeout_s: float = 5.0


class Db(pydantic.BaseModel):
    url: str = "postgresql://db:5432/app"
    pool: Pool = Pool()


class BenchSettings(config.InfraSettings):
    """The settings `config-get` reads: a three-level key."""

    service: str = "bench"
    db: Db = Db()


def bench_config(params: Params) -> Row:
    settings = config.load_settings(BenchSettings, env=False, init={"db": {"pool": {"size": 32}}})
    assert config.get(settings, "db.pool.size") == settings.db.pool.size == 32
    return compare(
        "config-get",
        lambda: settings.db.pool.size,
        lambda: config.get(settings, "db.pool.size"),
        params,
    )


def chat_document() -> dict[str, Any]:
    """A ~3 KB chat-completion request and response, as an audit record would hold them."""
    turns = [
        ("system", "You are a careful assistant for an infrastructure team. Answer briefly."),
        ("user", "Our vector store p99 latency went from 12 ms to 40 ms after the upgrade. Why?"),
        (
            "assistant",
            "Likely causes: the HNSW index was rebuilt with a lower ef_construct, the search "
            "threads default changed, or the payload index is missing for the filtered field.",
        ),
        ("user", "The payload index is there. How do I check the search threads setting?"),
    ]
    return {
        "id": "chatcmpl-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "object": "chat.completion",
        "created": 1795600000,
        "model": "gpt-4o-2024-08-06",
        "request": {
            "model": "gpt-4o",
            "temperature": 0.2,
            "top_p": 0.95,
            "max_tokens": 512,
            "stream": False,
            "messages": [{"role": role, "content": text} for role, text in turns],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_collection_config",
                        "description": "Read the configuration of one vector collection.",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "collection": {"type": "string", "minLength": 1},
                                "fields": {"type": "array", "items": {"type": "string"}},
                            },
                            "required": ["collection"],
                        },
                    },
                }
            ],
            "metadata": {"tenant": "acme", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        },
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_Q2hhdEJlbmNo",
                            "type": "function",
                            "function": {
                                "name": "get_collection_config",
                                "arguments": '{"collection":"docs","fields":["search_threads",'
                                '"hnsw_config","optimizer_config"]}',
                            },
                        }
                    ],
                },
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 187,
            "completion_tokens": 41,
            "total_tokens": 228,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "system_fingerprint": "fp_50cad350e4",
        "annotations": [
            {"kind": "latency_ms", "value": 812.5, "stage": stage}
            for stage in ("queue", "prefill", "decode", "tool_dispatch", "total")
        ],
        "audit": {
            "previous_hash": "0" * 64,
            "sequence": 1048576,
            "labels": {f"label_{i:02d}": f"value number {i} of the record" for i in range(20)},
        },
    }


def bench_canonical(params: Params) -> Row:
    doc = chat_document()
    size = len(rfc8785.dumps(doc))
    assert jsondoc.canonical_sha256(doc) == hashlib.sha256(rfc8785.dumps(doc)).hexdigest()
    return compare(
        "canonical-sha256",
        lambda: hashlib.sha256(rfc8785.dumps(doc)).hexdigest(),
        lambda: jsondoc.canonical_sha256(doc),
        params,
        notes=f"{size:,} B canonical document",
    )


TOOL_CALL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:llm-infra:bench:tool-call",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "name", "arguments", "priority", "tags"],
    "properties": {
        "id": {"type": "string", "pattern": "^call_[A-Za-z0-9]{8,}$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 64},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
        "mode": {"enum": ["sync", "async", "batch"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 16, "uniqueItems": True},
        "arguments": {
            "type": "object",
            "required": ["collection", "limit"],
            "properties": {
                "collection": {"type": "string", "minLength": 1},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                "score_threshold": {"type": "number", "minimum": 0, "maximum": 1},
                "filter": {
                    "type": "object",
                    "properties": {
                        "must": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["key", "match"],
                                "properties": {
                                    "key": {"type": "string"},
                                    "match": {"type": ["string", "integer", "boolean"]},
                                },
                            },
                        }
                    },
                },
            },
        },
    },
}
TOOL_CALL: dict[str, Any] = {
    "id": "call_Q2hhdEJlbmNo",
    "name": "search_documents",
    "priority": 3,
    "mode": "sync",
    "tags": ["rag", "docs", "tenant:acme"],
    "arguments": {
        "collection": "docs",
        "limit": 10,
        "score_threshold": 0.35,
        "filter": {"must": [{"key": "lang", "match": "en"}, {"key": "year", "match": 2026}]},
    },
}


def bench_schema(params: Params) -> Row:
    ours = schema.Validator(TOOL_CALL_SCHEMA)
    raw = jsonschema_rs.validator_for(TOOL_CALL_SCHEMA)
    raw.validate(TOOL_CALL)
    ours.validate(TOOL_CALL)
    return compare(
        "schema-validate",
        lambda: raw.validate(TOOL_CALL),
        lambda: ours.validate(TOOL_CALL),
        params,
        notes="ours calls is_valid first (no error objects on the valid path)",
    )


LLM_ATTRIBUTES: dict[str, Any] = {"temperature": 0.2, "max_tokens": 256}


def bench_span_rows(params: Params) -> list[Row]:
    exporter = InMemorySpanExporter()
    guard = otel.init_otel(
        otel.OtelConfig(metrics_enabled=False),
        set_global=False,
        span_processors=[SimpleSpanProcessor(exporter)],
    )
    try:
        tracer = guard.tracer()
        with otel.llm_span("chat", "gpt-4o", "openai", tracer=tracer, **LLM_ATTRIBUTES):
            pass
        assert len(exporter.get_finished_spans()) == 1
        sdk_row = _span_pair(params, tracer, "span-sdk", exporter.clear, tracer)
        sdk_row.notes = "SimpleSpanProcessor + InMemorySpanExporter, cleared before each repeat"
    finally:
        guard.shutdown()
    noop = trace.get_tracer("bench.raw")
    noop_row = _span_pair(params, noop, "span-noop", None, None)
    noop_row.notes = "no global TracerProvider: both spans are non-recording"
    return [sdk_row, noop_row]


def _span_pair(
    params: Params,
    tracer: trace.Tracer,
    name: str,
    before_repeat: Callable[[], None] | None,
    ours_tracer: trace.Tracer | None,
) -> Row:
    """`llm_span` (on `ours_tracer`; None: its module tracer) vs the same span by hand."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 256,
    }

    def raw() -> None:
        with tracer.start_as_current_span(
            "chat gpt-4o", kind=trace.SpanKind.CLIENT, attributes=dict(attributes)
        ):
            pass

    def ours() -> None:
        with otel.llm_span("chat", "gpt-4o", "openai", tracer=ours_tracer, **LLM_ATTRIBUTES):
            pass

    return compare(name, raw, ours, params, before_repeat=before_repeat)


# -- HTTP --------------------------------------------------------------------------------------


async def _hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "model": "gpt-4o", "tokens": 42})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def loopback_server() -> Iterator[str]:
    """A uvicorn server with a one-route Starlette app in a background thread; yields its URL."""
    app = Starlette(routes=[Route("/v1/ping", _hello)])
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def _http_rows(base_url: str, params: Params) -> list[Row]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    path = "/v1/ping"
    async with (
        httpx.AsyncClient(base_url=base_url) as raw_client,
        HttpClient(base_url=base_url) as ours_client,
        HttpClient(base_url=base_url, tracer_provider=provider) as recording_client,
    ):

        async def raw() -> None:
            (await raw_client.get(path)).raise_for_status()

        async def ours() -> None:
            await ours_client.get(path)

        async def recording() -> None:
            await recording_client.get(path)

        loops: dict[str, Callable[[], Any]] = {"raw": raw, "ours": ours, "recording": recording}
        for fn in loops.values():
            for _ in range(params.http_warmup):
                await fn()
        assert len(exporter.get_finished_spans()) == params.http_warmup
        runs: dict[str, list[float]] = {key: [] for key in loops}
        n = params.http_requests
        for rep in range(params.http_repeat):
            # Rotate the order too, so no variant always runs right after the same other one.
            order = list(loops)[rep % 3 :] + list(loops)[: rep % 3]
            for key in order:
                exporter.clear()
                fn = loops[key]
                start = time.perf_counter()
                for _ in range(n):
                    await fn()
                runs[key].append((time.perf_counter() - start) / n * 1e6)
        provider.shutdown()

    def row(name: str, ours_key: str, target: float | None, notes: str) -> Row:
        result = Row(
            name=name,
            operation=OPERATIONS[name],
            raw_us=statistics.median(runs["raw"]),
            ours_us=statistics.median(runs[ours_key]),
            statistic="median",
            calls_per_repeat=n,
            raw_runs_us=runs["raw"],
            ours_runs_us=runs[ours_key],
            target=target,
            notes=notes,
        )
        log(
            f"{name}: raw {result.raw_us:.1f} µs, ours {result.ours_us:.1f} µs, x{result.ratio:.3f}"
        )
        return result

    return [
        row(
            "http-get",
            "ours",
            HTTP_TARGET,
            "default RetryPolicy and breaker; span on the no-op tracer (no SDK installed)",
        ),
        row(
            "http-get-recording",
            "recording",
            None,
            "SDK TracerProvider, SimpleSpanProcessor + InMemorySpanExporter",
        ),
    ]


def bench_http(params: Params) -> list[Row]:
    with loopback_server() as base_url:
        return asyncio.run(_http_rows(base_url, params))


# -- report ------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """The machine and the versions of the libraries measured."""
    return _machine.machine_info(
        (
            "llm-infra",
            "pydantic",
            "pydantic-settings",
            "orjson",
            "rfc8785",
            "jsonschema-rs",
            "httpx",
            "stamina",
            "uvicorn",
            "starlette",
            "opentelemetry-api",
            "opentelemetry-sdk",
        )
    )


def _us(value: float) -> str:
    return f"{value:,.1f}" if value >= 100 else f"{value:.3f}"


def markdown(rows: Sequence[Row], machine: dict[str, Any], date: str, params: Params) -> str:
    lines = [
        f"sdk_micro {'(--quick: counts too small to mean anything) ' if params.quick else ''}"
        f"run of {date}; {machine['cpu_count']} x {machine['cpu_model']}, "
        f"Python {machine['python']}",
        "",
        "| operation | raw µs | ours µs | ratio | target | notes |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        if r.target is None:
            target = "none set"
        else:
            target = f"<= {r.target:.2f} ({'met' if r.met else 'NOT met'})"
        lines.append(
            f"| {r.name} | {_us(r.raw_us)} | {_us(r.ours_us)} | {r.ratio:.2f} | {target} | "
            f"{r.statistic} of {len(r.raw_runs_us)}, {r.calls_per_repeat:,} calls each"
            f"{'; ' + r.notes if r.notes else ''} |"
        )
    return "\n".join(lines) + "\n"


def run(params: Params) -> dict[str, Any]:
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info()
    rows = [step(params) for step in (bench_config, bench_canonical, bench_schema)]
    rows.extend(bench_http(params))
    rows.extend(bench_span_rows(params))
    for r in rows:
        if not (math.isfinite(r.ratio) and r.raw_us > 0 and r.ours_us > 0):
            raise RuntimeError(f"{r.name}: bad measurement {r}")
    return {
        "date": date,
        "machine": machine,
        "params": asdict(params),
        "rows": [{**asdict(r), "ratio": r.ratio, "met": r.met} for r in rows],
        "markdown": markdown(rows, machine, date, params),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny counts, for a CI smoke run")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--markdown", type=Path, help="write the markdown table here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write its report."""
    args = parse_args(argv)
    report = run(params_for(args.quick))
    _machine.write_report(report, report["markdown"], markdown=args.markdown, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
