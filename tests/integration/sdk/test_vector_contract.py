"""The VectorStore contract, run on every backend: embedded (qdrant-edge), qdrant-client local mode,
and a real Qdrant server when QDRANT_URL is set. Results are also compared across backends.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llm_infra import errors
from llm_infra.vector import (
    CollectionConfig,
    EdgeStore,
    F,
    IndexPolicy,
    MetadataFilter,
    Point,
    QdrantStore,
    UnindexedFilterWarning,
    VectorStore,
    normalize,
)

DIM = 8
CONFIG = CollectionConfig(
    dimensions=DIM,
    payload_indexes={"lang": "keyword", "year": "integer", "body": "text", "score": "float"},
)
BACKENDS = ["embedded", "local"] + (["server"] if os.environ.get("QDRANT_URL") else [])
LANGS = ("en", "de", "fr")


async def open_store(kind: str, workdir: Path, config: CollectionConfig = CONFIG) -> VectorStore:
    name = f"contract_{uuid.uuid4().hex[:8]}"
    if kind == "embedded":
        return EdgeStore.open(workdir / name, config, policy=IndexPolicy(None))
    if kind == "local":
        return await QdrantStore.connect(name, config, location=":memory:")
    return await QdrantStore.connect(
        name, config, url=os.environ["QDRANT_URL"], api_key=os.environ.get("QDRANT_API_KEY")
    )


def dataset(n: int = 200, seed: int = 11) -> list[Point]:
    rng = random.Random(seed)
    return [
        Point(
            i,
            [rng.gauss(0, 1) for _ in range(DIM)],
            {
                "lang": LANGS[i % 3],
                "year": 2000 + i % 25,
                "score": round(i / n, 3),
                "body": f"chunk {i} about {'retrieval' if i % 4 == 0 else 'routing'}",
            },
        )
        for i in range(n)
    ]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    opened = await open_store(request.param, tmp_path)
    yield opened
    await opened.close()


def cosine_top(points: list[Point], query: list[float], k: int, keep: Any = None) -> list[int]:
    q = np.asarray(normalize(query))
    scored = [
        (float(np.dot(np.asarray(normalize(list(p.vector))), q)), p.id)
        for p in points
        if keep is None or keep(p.payload or {})
    ]
    return [int(pid) for _, pid in sorted(scored, key=lambda s: -s[0])[:k]]


async def test_batch_with_bad_points_stores_the_good_ones(store: VectorStore) -> None:
    good = dataset(20)
    bad = [
        Point(100, [math.nan] * DIM),
        Point(101, [1.0] * (DIM - 1)),
        Point(102, []),
        Point(-5, [1.0] * DIM),
    ]
    result = await store.insert_batch([*good[:10], *bad, *good[10:]])
    assert result.inserted == 20
    assert {pid: type(err) for pid, err in result.failed.items()} == {
        100: errors.InvalidVector,
        101: errors.DimensionMismatch,
        102: errors.InvalidVector,
        -5: errors.ValidationError,
    }
    assert await store.count() == 20
    with pytest.raises(errors.DimensionMismatch):
        await store.insert(200, [1.0, 2.0])


async def test_exact_search_matches_brute_force(store: VectorStore) -> None:
    points = dataset()
    await store.insert_batch(points)
    await store.optimize()
    rng = random.Random(3)
    for _ in range(5):
        query = [rng.gauss(0, 1) for _ in range(DIM)]
        hits = await store.search(query, k=10, exact=True)
        assert [h.id for h in hits] == cosine_top(points, query, 10)
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
        assert hits[0].payload is not None
        assert set(hits[0].payload) == {"lang", "year", "score", "body"}


FILTERS: list[tuple[str, MetadataFilter, Any]] = [
    ("eq", F.eq("lang", "de"), lambda p: p["lang"] == "de"),
    ("ne", F.ne("lang", "de"), lambda p: p["lang"] != "de"),
    ("range", F.gte("year", 2010) & F.lt("year", 2015), lambda p: 2010 <= p["year"] < 2015),
    ("in", F.in_("lang", ["en", "fr"]), lambda p: p["lang"] in ("en", "fr")),
    ("not", ~F.eq("lang", "en"), lambda p: p["lang"] != "en"),
    (
        "or",
        F.eq("lang", "en") | F.gt("year", 2020),
        lambda p: p["lang"] == "en" or p["year"] > 2020,
    ),
    ("float", F.lte("score", 0.25), lambda p: p["score"] <= 0.25),
    ("text", F.contains("body", "retrieval"), lambda p: "retrieval" in p["body"]),
]


@pytest.mark.parametrize(("label", "query_filter", "keep"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_filters_select_what_python_selects(
    store: VectorStore, label: str, query_filter: MetadataFilter, keep: Any
) -> None:
    points = dataset()
    await store.insert_batch(points)
    expected = [p for p in points if keep(p.payload)]
    assert await store.count(query_filter) == len(expected), label
    query = [1.0] * DIM
    hits = await store.search(query, k=5, filter=query_filter, exact=True)
    assert [h.id for h in hits] == cosine_top(points, query, 5, keep)


async def test_ids_of_every_kind_come_back_as_inserted(store: VectorStore) -> None:
    some_uuid = uuid.uuid4()
    await store.insert_batch(
        [
            Point(7, [1.0] + [0.0] * (DIM - 1), {"lang": "en"}),
            Point(some_uuid, [0.0, 1.0] + [0.0] * (DIM - 2)),
            Point("docs/guide.md#intro", [0.0, 0.0, 1.0] + [0.0] * (DIM - 3), {"lang": "de"}),
        ]
    )
    record = await store.get("docs/guide.md#intro", with_vector=True)
    assert record is not None
    assert (record.id, record.payload) == ("docs/guide.md#intro", {"lang": "de"})
    assert record.vector == pytest.approx([0.0, 0.0, 1.0] + [0.0] * (DIM - 3))
    hits = await store.search([0.0, 0.0, 1.0] + [0.0] * (DIM - 3), k=3, exact=True)
    assert hits[0].id == "docs/guide.md#intro"
    assert {str(h.id) for h in hits} == {"7", str(some_uuid), "docs/guide.md#intro"}
    assert await store.get(12345) is None


async def test_update_metadata_merges_or_replaces(store: VectorStore) -> None:
    await store.insert("a-string-id", [1.0] * DIM, {"lang": "en", "year": 2001})
    await store.update_metadata("a-string-id", {"year": 2024, "tag": "x"})
    merged = await store.get("a-string-id")
    assert merged is not None
    assert merged.payload == {"lang": "en", "year": 2024, "tag": "x"}
    await store.update_metadata("a-string-id", {"only": True}, replace=True)
    replaced = await store.get("a-string-id")
    assert replaced is not None
    assert (replaced.id, replaced.payload) == ("a-string-id", {"only": True})
    with pytest.raises(errors.NotFound):
        await store.update_metadata("missing", {"a": 1})


async def test_delete_by_ids_and_by_filter(store: VectorStore) -> None:
    points = dataset(60)
    await store.insert_batch(points)
    await store.delete([0, 1, 2])
    assert await store.count() == 57
    assert await store.get(1) is None
    await store.delete(filter=F.eq("lang", "de"))
    assert await store.count(F.eq("lang", "de")) == 0
    assert await store.count() == 57 - sum(
        1 for p in points[3:] if p.payload and p.payload["lang"] == "de"
    )
    with pytest.raises(errors.ValidationError):
        await store.delete()


async def test_search_batch_equals_single_searches(store: VectorStore) -> None:
    await store.insert_batch(dataset())
    rng = random.Random(5)
    queries = [[rng.gauss(0, 1) for _ in range(DIM)] for _ in range(4)]
    batched = await store.search_batch(queries, k=5, exact=True)
    singles = [await store.search(q, k=5, exact=True) for q in queries]
    assert [[h.id for h in hits] for hits in batched] == [[h.id for h in hits] for hits in singles]


async def test_stats_and_bad_queries(store: VectorStore) -> None:
    await store.insert_batch(dataset(30))
    stats = await store.stats()
    assert (stats.points, stats.dimensions, stats.distance) == (30, DIM, "Cosine")
    with pytest.raises(errors.DimensionMismatch):
        await store.search([1.0] * (DIM + 1))
    with pytest.raises(errors.InvalidVector):
        await store.search([math.inf] * DIM)
    with pytest.raises(errors.ValidationError):
        await store.search([1.0] * DIM, k=0)


async def test_filter_on_unindexed_field_warns_with_the_fix(store: VectorStore) -> None:
    await store.insert_batch(dataset(10))
    with pytest.warns(UnindexedFilterWarning, match="spec.payloadIndexes"):
        await store.search([1.0] * DIM, k=3, filter=F.eq("unindexed", "x"))


async def test_backends_agree(tmp_path: Path) -> None:
    points = dataset(300, seed=21)
    stores = [await open_store(kind, tmp_path) for kind in BACKENDS]
    try:
        for opened in stores:
            await opened.insert_batch(points)
            await opened.optimize()
        rng = random.Random(9)
        for _ in range(5):
            query = [rng.gauss(0, 1) for _ in range(DIM)]
            for query_filter in (None, F.eq("lang", "fr") & F.gte("year", 2005)):
                answers = [
                    [h.id for h in await s.search(query, k=10, filter=query_filter, exact=True)]
                    for s in stores
                ]
                assert all(answer == answers[0] for answer in answers), answers
    finally:
        for opened in stores:
            await opened.close()
