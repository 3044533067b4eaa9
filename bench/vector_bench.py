"""Vector search benchmark: `llm_infra.vector` EdgeStore against the engines it wraps and its peers.

What it measures, in one process on the same data:

* recall@10 against exact ground truth (numpy, cosine) and single-thread queries per second
  (one query at a time, a timed Python loop) at each `--ef`, for

  - ``edgestore``        ``llm_infra.vector.EdgeStore.search`` (the async API, one query per call)
  - ``edgestore-batch``  ``EdgeStore.search_batch`` with batches of ``--batch`` queries
  - ``edge-raw``         raw ``qdrant_edge`` ``EdgeShard.query`` with the same data and parameters
  - ``edge-raw-batch``   raw ``EdgeShard.query_batch`` (the ceiling for ``edgestore-batch``)
  - ``hnswlib``          hnswlib (M 16, ef_construction 100, cosine, 1 query thread), if installed
  - ``qdrant-local``     qdrant-client local mode (``QdrantClient(":memory:")``) on the first
    ``--local-n`` points with its own ground truth; it is exact brute force, so it ignores ef and
    is reported once;

* ingest rate (vectors/s, before any index is built) and index build time (``optimize``) for
  EdgeStore and raw qdrant-edge, and the build time of hnswlib.

Data: ``--n`` x ``--dim`` float32 vectors from a seeded Gaussian mixture (64 centres); the queries
are fresh draws from the same mixture, never points of the data set.

Run::

    python bench/vector_bench.py [--n 100000] [--dim 128] [--queries 1000] [--local-n 20000]
                                 [--ef 64,128,256] [--json out.json] [--markdown out.md]

The markdown report goes to stdout (and ``--markdown``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _machine  # bench/_machine.py, next to this script
import numpy as np
import numpy.typing as npt
import qdrant_edge as qe

if TYPE_CHECKING:
    from llm_infra.vector import EdgeStore

K = 10
CENTRES = 64
SPREAD = 0.5  # noise sigma relative to unit-variance centres: recall@10 ~0.97-0.98 at ef 64
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
FULL_SCAN_THRESHOLD = 10_000  # KB; CollectionConfig's default, used for the raw shard too
INGEST_BATCH = 1_000
# Warm-up queries (distinct draws) before each engine and ef: a freshly optimized shard runs its
# first few hundred queries 2-3x slower. Then the query loop runs REPEATS times; QPS is the median.
WARMUP_QUERIES = 1_000
REPEATS = 5
TARGETS = {
    "edgestore_vs_raw_qps": 0.9,
    "batch_vs_single_qps": 1.5,
    "ingest_vectors_per_s": 20_000.0,
    "recall_at_10_ef64": 0.98,
}

Matrix = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]


# -- results -----------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """Recall and single-thread throughput of one engine at one ef (None: ef not applicable)."""

    ef: int | None
    recall_at_10: float
    qps: float
    """Median of `qps_runs`."""
    queries: int
    qps_runs: list[float] = field(default_factory=list)


@dataclass
class EngineResult:
    """Everything measured for one engine; `status` is "ok" or why it did not run."""

    engine: str
    description: str
    status: str = "ok"
    points: int = 0
    ingest_vectors_per_s: float | None = None
    build_seconds: float | None = None
    searches: list[SearchResult] = field(default_factory=list)
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def at(self, ef: int) -> SearchResult | None:
        """The search result at `ef` (or the ef-less one)."""
        for s in self.searches:
            if s.ef is None or s.ef == ef:
                return s
        return None


def _log(message: str) -> None:
    print(f"[vector_bench] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _timer() -> Iterator[list[float]]:
    box: list[float] = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start


# -- data and ground truth ---------------------------------------------------------------------


def make_data(n: int, dim: int, queries: int, seed: int) -> tuple[Matrix, Matrix, Matrix]:
    """Data, query and warm-up vectors: independent draws of one seeded Gaussian mixture."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CENTRES, dim)).astype(np.float32)

    def draw(count: int) -> Matrix:
        labels = rng.integers(0, CENTRES, size=count)
        noise = rng.normal(scale=SPREAD, size=(count, dim)).astype(np.float32)
        out: Matrix = (centres[labels] + noise).astype(np.float32)
        return out

    data, measured = draw(n), draw(queries)
    return data, measured, draw(WARMUP_QUERIES)


def normalize(x: Matrix) -> Matrix:
    """Rows scaled to unit length (cosine similarity becomes a dot product)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: Matrix = (x / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return out


def ground_truth(data: Matrix, queries: Matrix, k: int = K, chunk: int = 100) -> Ids:
    """Exact top-`k` ids by cosine similarity, best first (queries processed in chunks)."""
    d = normalize(data)
    q = normalize(queries)
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), chunk):
        scores = q[start : start + chunk] @ d.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start : start + chunk] = np.take_along_axis(top, order, axis=1)
    return out


def recall_at_k(found: Sequence[Sequence[int]], truth: Ids, k: int = K) -> float:
    """Mean fraction of the true top-`k` present in each result list."""
    total = 0
    for ids, true in zip(found, truth, strict=True):
        total += len(set(ids[:k]) & {int(t) for t in true[:k]})
    return total / (k * len(truth))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _result(
    ef: int | None, found: list[list[int]], truth: Ids, seconds: list[float]
) -> SearchResult:
    runs = [len(found) / s for s in seconds]
    return SearchResult(ef, recall_at_k(found, truth), statistics.median(runs), len(found), runs)


def _measure(
    run: Callable[[], list[list[int]]],
    warmup: Callable[[], object],
    truth: Ids,
    ef: int | None,
    repeats: int = REPEATS,
) -> SearchResult:
    warmup()
    seconds: list[float] = []
    found: list[list[int]] = []
    for _ in range(repeats):
        with _timer() as t:
            found = run()
        seconds.append(t[0])
    return _result(ef, found, truth, seconds)


# -- engines -----------------------------------------------------------------------------------


def _edge_raw_config(dim: int) -> qe.EdgeConfig:
    # The same shard config EdgeStore derives from its CollectionConfig (llm_infra.vector.edge).
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine, on_disk=False),
        hnsw_config=qe.HnswIndexConfig(
            m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_THRESHOLD
        ),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
        max_search_threads=1,
    )


def _read(hits: Sequence[Any]) -> list[int]:
    # Read what EdgeStore hands back (id, score, payload): qdrant-edge converts
    # each field from Rust on access, so a loop that reads only ids would
    # leave out work that every real caller does.
    ids = []
    for hit in hits:
        hit.score, hit.payload  # noqa: B018 - read for their conversion cost, not their value
        ids.append(int(hit.id))
    return ids


def build_edge_raw(
    data_lists: list[list[float]], workdir: Path, single: EngineResult, batched: EngineResult
) -> qe.EdgeShard:
    """Raw qdrant-edge shard: upsert in batches (timed), then optimize (timed)."""
    shard = qe.EdgeShard.create(str(workdir / "edge-raw"), _edge_raw_config(len(data_lists[0])))
    with _timer() as t_ingest:
        for start in range(0, len(data_lists), INGEST_BATCH):
            points = [
                qe.Point(i, data_lists[i], {"c": i % 10})
                for i in range(start, min(start + INGEST_BATCH, len(data_lists)))
            ]
            shard.update(qe.UpdateOperation.upsert_points(points))
    with _timer() as t_build:
        shard.optimize()
    for result in (single, batched):
        result.points = len(data_lists)
        result.ingest_vectors_per_s = len(data_lists) / t_ingest[0]
        result.build_seconds = t_build[0]
    return shard


def raw_search(shard: qe.EdgeShard, queries: Sequence[list[float]], ef: int) -> list[list[int]]:
    """One `EdgeShard.query` per query (with_payload like EdgeStore's default)."""
    params = qe.SearchParams(hnsw_ef=ef)
    out: list[list[int]] = []
    for q in queries:
        hits = shard.query(
            qe.QueryRequest(limit=K, query=qe.Query.Nearest(q), params=params, with_payload=True)
        )
        out.append(_read(hits))
    return out


def raw_search_batch(
    shard: qe.EdgeShard, queries: Sequence[list[float]], ef: int, batch: int
) -> list[list[int]]:
    """`EdgeShard.query_batch` over chunks of `batch` queries."""
    params = qe.SearchParams(hnsw_ef=ef)
    out: list[list[int]] = []
    for chunk in _chunks(queries, batch):
        requests = [
            qe.QueryRequest(limit=K, query=qe.Query.Nearest(q), params=params, with_payload=True)
            for q in chunk
        ]
        out.extend(_read(hits) for hits in shard.query_batch(qe.QueryBatchRequest(requests)))
    return out


async def build_edgestore(
    data_lists: list[list[float]], workdir: Path, single: EngineResult, batched: EngineResult
) -> EdgeStore:
    """EdgeStore: insert_batch (timed, no auto-indexing), then optimize (timed).

    Also times the same ingest with the default IndexPolicy (the store optimizes by itself every
    20k unindexed points, inside insert_batch): what a caller who never calls optimize() sees.
    """
    from llm_infra.vector import CollectionConfig, EdgeStore, IndexPolicy, Point

    config = CollectionConfig(
        dimensions=len(data_lists[0]),
        distance="Cosine",
        hnsw_m=HNSW_M,
        hnsw_ef_construct=HNSW_EF_CONSTRUCT,
        full_scan_threshold=FULL_SCAN_THRESHOLD,
    )

    async def ingest(store: EdgeStore) -> tuple[float, int]:
        failed = 0
        with _timer() as t_ingest:
            for start in range(0, len(data_lists), INGEST_BATCH):
                result = await store.insert_batch(
                    [
                        Point(id=i, vector=data_lists[i], payload={"c": i % 10})
                        for i in range(start, min(start + INGEST_BATCH, len(data_lists)))
                    ]
                )
                failed += len(result.failed)
        return t_ingest[0], failed

    auto = EdgeStore.open(str(workdir / "edgestore-auto"), config)
    try:
        auto_seconds, _ = await ingest(auto)
    finally:
        await auto.close()

    store = EdgeStore.open(
        str(workdir / "edgestore"), config, policy=IndexPolicy(unindexed_threshold=None)
    )
    ingest_seconds, failed = await ingest(store)
    with _timer() as t_build:
        await store.optimize()
    for r in (single, batched):
        r.points = len(data_lists)
        r.ingest_vectors_per_s = len(data_lists) / ingest_seconds
        r.build_seconds = t_build[0]
        r.extra["ingest_default_index_policy_vectors_per_s"] = len(data_lists) / auto_seconds
        if failed:
            r.note = f"{failed} points refused by insert_batch"
    return store


async def store_search(
    store: EdgeStore, queries: Sequence[list[float]], ef: int
) -> list[list[int]]:
    """One `await store.search` per query."""
    out: list[list[int]] = []
    for q in queries:
        hits = await store.search(q, k=K, hnsw_ef=ef)
        out.append([int(h.id) for h in hits])
    return out


async def store_search_batch(
    store: EdgeStore, queries: Sequence[list[float]], ef: int, batch: int
) -> list[list[int]]:
    """`await store.search_batch` over chunks of `batch` queries."""
    out: list[list[int]] = []
    for chunk in _chunks(queries, batch):
        for hits in await store.search_batch(list(chunk), k=K, hnsw_ef=ef):
            out.append([int(h.id) for h in hits])  # noqa: PERF401
    return out


async def bench_edge(
    data_lists: list[list[float]],
    query_lists: list[list[float]],
    warm: list[list[float]],
    truth: Ids,
    efs: Sequence[int],
    batch: int,
    workdir: Path,
) -> list[EngineResult]:
    """Raw qdrant-edge and EdgeStore, both open at once and timed in alternation.

    Each repeat runs the four query loops (EdgeStore, EdgeStore batch, raw, raw batch) one after
    the other, so drift on a shared machine hits all of them alike and their ratios stay honest.
    """
    store_1 = EngineResult("edgestore", "llm_infra.vector EdgeStore.search, one query per call")
    store_b = EngineResult(
        "edgestore-batch", f"llm_infra.vector EdgeStore.search_batch, {batch} queries per call"
    )
    raw_1 = EngineResult("edge-raw", "qdrant_edge EdgeShard.query, one query per call")
    raw_b = EngineResult(
        "edge-raw-batch", f"qdrant_edge EdgeShard.query_batch, {batch} queries per call"
    )
    store_ok = True
    try:
        import llm_infra.vector as vector

        getattr(vector, "EdgeStore")  # noqa: B009  (fail here, not halfway, if it is missing)
    except (ImportError, AttributeError) as exc:
        store_ok = False
        for r in (store_1, store_b):
            r.status = f"not available ({type(exc).__name__}: {exc})"

    _log("raw qdrant-edge: ingest and optimize")
    shard = build_edge_raw(data_lists, workdir, raw_1, raw_b)
    store: EdgeStore | None = None
    try:
        if store_ok:
            _log("EdgeStore: ingest and optimize")
            store = await build_edgestore(data_lists, workdir, store_1, store_b)
        _log("qdrant-edge and EdgeStore: queries")
        for ef in efs:
            loops: list[tuple[EngineResult, Callable[[Sequence[list[float]]], Any]]] = [
                (raw_1, partial(raw_search, shard, ef=ef)),
                (raw_b, partial(raw_search_batch, shard, ef=ef, batch=batch)),
            ]
            if store is not None:
                loops[:0] = [
                    (store_1, partial(store_search, store, ef=ef)),
                    (store_b, partial(store_search_batch, store, ef=ef, batch=batch)),
                ]

            async def call(
                fn: Callable[[Sequence[list[float]]], Any], queries: Sequence[list[float]]
            ) -> list[list[int]]:
                out = fn(queries)
                ids: list[list[int]] = await out if asyncio.iscoroutine(out) else out
                return ids

            for _, fn in loops:
                await call(fn, warm)
            seconds: dict[str, list[float]] = {r.engine: [] for r, _ in loops}
            found: dict[str, list[list[int]]] = {}
            for _ in range(REPEATS):
                for result, fn in loops:
                    with _timer() as t:
                        found[result.engine] = await call(fn, query_lists)
                    seconds[result.engine].append(t[0])
            for result, _ in loops:
                result.searches.append(
                    _result(ef, found[result.engine], truth, seconds[result.engine])
                )
    finally:
        shard.close()
        if store is not None:
            await store.close()
    return [store_1, store_b, raw_1, raw_b]


def bench_hnswlib(
    data: Matrix, queries: Matrix, warm: Matrix, truth: Ids, efs: Sequence[int]
) -> EngineResult:
    """hnswlib, built on all cores (like qdrant-edge's optimize), queried on one thread."""
    result = EngineResult(
        "hnswlib",
        f"hnswlib M {HNSW_M}, ef_construction {HNSW_EF_CONSTRUCT}, cosine, knn_query one at a time",
    )
    try:
        import hnswlib  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        result.status = "not installed"
        return result
    index = hnswlib.Index(space="cosine", dim=data.shape[1])
    index.init_index(
        max_elements=len(data), ef_construction=HNSW_EF_CONSTRUCT, M=HNSW_M, random_seed=100
    )
    with _timer() as t_build:
        index.add_items(data, np.arange(len(data)), num_threads=-1)
    result.points = len(data)
    result.build_seconds = t_build[0]
    result.note = "build on all cores; queries on 1 thread"
    index.set_num_threads(1)
    for ef in efs:
        index.set_ef(ef)

        def run(qs: Matrix) -> list[list[int]]:
            return [[int(i) for i in index.knn_query(q, k=K)[0][0]] for q in qs]

        result.searches.append(_measure(lambda: run(queries), lambda: run(warm), truth, ef))
    return result


def bench_qdrant_local(
    data_lists: list[list[float]],
    query_lists: list[list[float]],
    warm: list[list[float]],
    truth: Ids,
) -> EngineResult:
    """qdrant-client local mode (in-memory, exact brute force) on a prefix of the data."""
    result = EngineResult(
        "qdrant-local",
        f'qdrant-client QdrantClient(":memory:") on the first {len(data_lists):,} points',
    )
    try:
        from qdrant_client import QdrantClient, models
    except ImportError:
        result.status = "not installed"
        return result
    client = QdrantClient(":memory:")
    try:
        client.create_collection(
            "bench",
            vectors_config=models.VectorParams(
                size=len(data_lists[0]), distance=models.Distance.COSINE
            ),
        )
        with warnings.catch_warnings():
            # Local mode warns that it is not meant for more than 20k points: we know.
            warnings.simplefilter("ignore", UserWarning)
            with _timer() as t_ingest:
                for start in range(0, len(data_lists), INGEST_BATCH):
                    client.upsert(
                        "bench",
                        points=[
                            models.PointStruct(id=i, vector=data_lists[i], payload={"c": i % 10})
                            for i in range(start, min(start + INGEST_BATCH, len(data_lists)))
                        ],
                    )
        result.points = len(data_lists)
        result.ingest_vectors_per_s = len(data_lists) / t_ingest[0]
        result.note = "exact brute force: ef does not apply; own ground truth on this subset"

        def run(queries: Sequence[list[float]]) -> list[list[int]]:
            return [
                [
                    int(p.id)
                    for p in client.query_points(
                        "bench", query=q, limit=K, with_payload=True
                    ).points
                ]
                for q in queries
            ]

        result.searches.append(
            _measure(lambda: run(query_lists), lambda: run(warm[:5]), truth, None, repeats=1)
        )
    finally:
        client.close()
    return result


# -- report ------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """The machine and the versions of the engines measured."""
    return _machine.machine_info(
        ("llm-infra", "qdrant-edge-py", "hnswlib", "qdrant-client", "numpy")
    )


def ratios(engines: dict[str, EngineResult], efs: Sequence[int]) -> list[dict[str, Any]]:
    """The ratios with targets: EdgeStore vs raw, batch vs single, ingest, recall at ef 64."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, target: float) -> None:
        out.append(
            {
                "name": name,
                "value": value,
                "target": target,
                "met": None if value is None else value >= target,
            }
        )

    store, store_b, raw = engines["edgestore"], engines["edgestore-batch"], engines["edge-raw"]
    ok = store.status == "ok"
    for ef in efs:
        s, r, b = store.at(ef), raw.at(ef), store_b.at(ef)
        add(
            f"EdgeStore QPS / raw edge QPS, ef {ef}",
            s.qps / r.qps if ok and s and r else None,
            TARGETS["edgestore_vs_raw_qps"],
        )
        add(
            f"EdgeStore batch QPS / single QPS, ef {ef}",
            b.qps / s.qps if ok and s and b else None,
            TARGETS["batch_vs_single_qps"],
        )
    add(
        "EdgeStore ingest, vectors/s",
        store.ingest_vectors_per_s if ok else None,
        TARGETS["ingest_vectors_per_s"],
    )
    s64 = store.at(64) if 64 in efs else None
    add(
        "EdgeStore recall@10 at ef 64",
        s64.recall_at_10 if ok and s64 else None,
        TARGETS["recall_at_10_ef64"],
    )
    return out


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def markdown(report: dict[str, Any], engines: dict[str, EngineResult]) -> str:
    """The report as markdown tables: search, ingest/build, ratios."""
    p = report["params"]
    m = report["machine"]
    lines = [
        f"## Vector benchmark: {p['n']:,} x {p['dim']} (cosine), {p['queries']:,} queries, k {K}",
        "",
        f"{report['date']} · {m['cpu_model']} · {m['cpu_count']} CPUs · {m['ram_gib']} GiB ·"
        f" Python {m['python']} · "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v is not None),
        "",
        "| engine | ef | recall@10 | QPS (1 thread) | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for e in engines.values():
        if e.status != "ok":
            lines.append(f"| {e.engine} | - | - | - | {e.status} |")
            continue
        for s in e.searches:
            ef = "n/a" if s.ef is None else str(s.ef)
            note = e.note if s is e.searches[0] else ""
            if e.engine == "qdrant-local":
                note = f"{e.points:,} points; " + note
            lines.append(f"| {e.engine} | {ef} | {s.recall_at_10:.4f} | {_fmt(s.qps)} | {note} |")
    lines += [
        "",
        "| engine | points | ingest (vectors/s) | index build (s) |"
        " ingest with default IndexPolicy (vectors/s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for e in engines.values():
        if e.engine.endswith("-batch"):
            continue
        if e.status != "ok":
            lines.append(f"| {e.engine} | - | - | - | {e.status} |")
            continue
        auto = e.extra.get("ingest_default_index_policy_vectors_per_s")
        lines.append(
            f"| {e.engine} | {e.points:,} | {_fmt(e.ingest_vectors_per_s)} |"
            f" {_fmt(e.build_seconds, 2)} | {_fmt(auto)} |"
        )
    lines += ["", "| ratio | value | target | met |", "|---|---:|---:|---|"]
    for r in report["ratios"]:
        value = r["value"]
        shown = "-" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.3f}")
        target = f"{r['target']:,.0f}" if r["target"] >= 100 else f">= {r['target']}"
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        lines.append(f"| {r['name']} | {shown} | {target} | {met} |")
    return "\n".join(lines) + "\n"


# -- main --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the data, run every engine, and return the JSON-able report."""
    efs = [int(x) for x in str(args.ef).split(",") if x.strip()]
    _log(f"data: {args.n:,} x {args.dim}, {args.queries:,} queries, seed {args.seed}")
    data, queries, warmup = make_data(args.n, args.dim, args.queries, args.seed)
    with _timer() as t_gt:
        truth = ground_truth(data, queries)
        local_n = min(args.local_n, args.n)
        local_truth = ground_truth(data[:local_n], queries)
    _log(f"ground truth: {t_gt[0]:.1f} s")
    data_lists: list[list[float]] = data.tolist()
    query_lists: list[list[float]] = queries.tolist()
    warm_lists: list[list[float]] = warmup.tolist()

    engines: dict[str, EngineResult] = {}
    with tempfile.TemporaryDirectory(prefix="vector_bench_") as tmp:
        work = Path(tmp)
        edge = asyncio.run(
            bench_edge(data_lists, query_lists, warm_lists, truth, efs, args.batch, work)
        )
        engines.update((e.engine, e) for e in edge)
    _log("hnswlib")
    engines["hnswlib"] = bench_hnswlib(data, queries, warmup, truth, efs)
    _log(f"qdrant-client local mode ({local_n:,} points)")
    engines["qdrant-local"] = bench_qdrant_local(
        data_lists[:local_n], query_lists, warm_lists, local_truth
    )

    order = [
        "edgestore",
        "edgestore-batch",
        "edge-raw",
        "edge-raw-batch",
        "hnswlib",
        "qdrant-local",
    ]
    engines = {name: engines[name] for name in order}
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "params": {
            "n": args.n,
            "dim": args.dim,
            "queries": args.queries,
            "local_n": local_n,
            "ef": efs,
            "k": K,
            "batch": args.batch,
            "seed": args.seed,
            "centres": CENTRES,
            "spread": SPREAD,
            "hnsw_m": HNSW_M,
            "hnsw_ef_construct": HNSW_EF_CONSTRUCT,
            "full_scan_threshold_kb": FULL_SCAN_THRESHOLD,
            "ingest_batch": INGEST_BATCH,
            "warmup_queries": WARMUP_QUERIES,
            "repeats": REPEATS,
            "ground_truth_seconds": t_gt[0],
        },
        "engines": {name: asdict(e) for name, e in engines.items()},
    }
    report["ratios"] = ratios(engines, efs)
    report["markdown"] = markdown(report, engines)
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000, help="data vectors")
    parser.add_argument("--dim", type=int, default=128, help="dimensions")
    parser.add_argument("--queries", type=int, default=1_000, help="query vectors")
    parser.add_argument(
        "--local-n", type=int, default=20_000, help="points given to qdrant-client local mode"
    )
    parser.add_argument("--ef", default="64,128,256", help="comma-separated hnsw_ef values")
    parser.add_argument("--batch", type=int, default=100, help="queries per search_batch call")
    parser.add_argument("--seed", type=int, default=42, help="seed of the data and queries")
    parser.add_argument("--json", type=Path, help="write the full report as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the markdown tables here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write its report."""
    args = parse_args(argv)
    report = run(args)
    _machine.write_report(report, report["markdown"], markdown=args.markdown, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
