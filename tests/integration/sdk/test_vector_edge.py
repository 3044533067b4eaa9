"""EdgeStore on the embedded Qdrant core: persistence, ownership, indexing, ensure, telemetry."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from llm_infra import errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.vector import CollectionConfig, EdgeStore, F, IndexPolicy, Point
from llm_infra.vector.ensure import ensure_collection

DIM = 16


def points(n: int, start: int = 0) -> list[Point]:
    rng = random.Random(start)
    return [
        Point(i, [rng.gauss(0, 1) for _ in range(DIM)], {"lang": "en" if i % 2 else "de"})
        for i in range(start, start + n)
    ]


async def test_collection_survives_close_and_reopen(tmp_path: Path) -> None:
    config = CollectionConfig(dimensions=DIM, payload_indexes={"lang": "keyword"})
    store = EdgeStore.open(tmp_path / "kb", config, policy=IndexPolicy(None))
    await store.insert_batch(points(500))
    await store.insert("readme", [1.0] * DIM, {"lang": "en"})
    assert await store.optimize() is True
    query = [0.5] * DIM
    before = [h.id for h in await store.search(query, k=10)]
    await store.close()

    reopened = EdgeStore.open(tmp_path / "kb")
    try:
        stats = await reopened.stats()
        assert (stats.points, stats.indexed_vectors) == (
            501,
            501,
        )  # HNSW intact, nothing to rebuild
        assert reopened.config == config
        assert set(reopened.shard.info().payload_schema) == {"lang"}
        assert [h.id for h in await reopened.search(query, k=10)] == before
        record = await reopened.get("readme")
        assert record is not None
        assert record.id == "readme"
    finally:
        await reopened.close()


async def test_second_owner_is_refused_clearly(tmp_path: Path) -> None:
    store = EdgeStore.open(tmp_path / "kb", CollectionConfig(dimensions=DIM))
    try:
        with pytest.raises(errors.CollectionLocked, match="one owner per directory"):
            EdgeStore.open(tmp_path / "kb")
    finally:
        await store.close()
    EdgeStore.open(tmp_path / "kb").shard.close()  # free again once closed


async def test_index_policy_builds_the_graph_without_an_optimize_call(tmp_path: Path) -> None:
    store = EdgeStore.open(
        tmp_path / "kb",
        CollectionConfig(dimensions=DIM),
        policy=IndexPolicy(unindexed_threshold=1000),
    )
    try:
        first = points(600)
        await store.insert_batch(first)
        assert (await store.stats()).indexed_vectors < 600  # below the threshold: exact scan
        hits = await store.search(first[3].vector, k=1)
        assert hits[0].id == 3  # correct before indexing
        await store.insert_batch(points(600, start=600))
        stats = await store.stats()
        assert stats.indexed_vectors == stats.points == 1200
        # Builds space out as the collection grows: 1,000 new points are not yet
        # worth rebuilding next to 1,200 indexed ones; 1,300 are.
        await store.insert_batch(points(1000, start=1200))
        assert (await store.stats()).indexed_vectors == 1200
        await store.insert_batch(points(300, start=2200))
        stats = await store.stats()
        assert stats.indexed_vectors == stats.points == 2500
    finally:
        await store.close()


def spec(**fields: object) -> VectorCollectionSpec:
    return VectorCollectionSpec.model_validate(
        {"vectors": {"size": DIM}, "backend": {"embedded": {}}, **fields}
    )


async def test_ensure_collection_creates_updates_in_place_and_refuses_immutable(
    tmp_path: Path,
) -> None:
    store, created = await ensure_collection(spec(), "kb", directory=tmp_path / "kb")
    assert created.create
    await store.insert_batch(points(50))
    await store.close()

    store, again = await ensure_collection(spec(), "kb", directory=tmp_path / "kb")
    assert again.noop  # idempotent
    await store.close()

    indexed = spec(payloadIndexes=[{"field": "lang", "type": "keyword"}], hnsw={"m": 32})
    store, updated = await ensure_collection(indexed, "kb", directory=tmp_path / "kb")
    assert updated.create_indexes == {"lang": "keyword"}
    assert updated.index_settings
    assert set(store.shard.info().payload_schema) == {"lang"}  # type: ignore[attr-defined]
    assert await store.count(F.eq("lang", "en")) == 25
    await store.close()

    wider = VectorCollectionSpec.model_validate({"vectors": {"size": DIM * 2}})
    with pytest.raises(errors.CollectionConfigMismatch) as refused:
        await ensure_collection(wider, "kb", directory=tmp_path / "kb")
    assert (refused.value.field, refused.value.expected, refused.value.actual) == (
        "dimensions",
        str(DIM * 2),
        str(DIM),
    )
    store, _ = await ensure_collection(indexed, "kb", directory=tmp_path / "kb")
    assert (await store.stats()).points == 50  # nothing was touched
    await store.close()


def _searches_timed() -> float:
    labels = {"backend": "embedded", "operation": "search"}
    count = REGISTRY.get_sample_value("llm_infra_vector_operation_seconds_count", labels)
    return count or 0.0


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def test_each_operation_is_traced_and_timed(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    before = _searches_timed()
    store = EdgeStore.open(
        tmp_path / "kb", CollectionConfig(dimensions=DIM, payload_indexes={"lang": "keyword"})
    )
    try:
        await store.insert_batch(points(20))
        await store.search([1.0] * DIM, k=3, filter=F.eq("lang", "en"))
        with pytest.raises(errors.DimensionMismatch):
            await store.search([1.0] * (DIM - 1))
    finally:
        await store.close()
    finished = {span.name: span for span in spans.get_finished_spans()}
    search = finished["vector.search"]
    assert search.attributes is not None
    assert search.attributes["db.collection.name"] == "kb"
    assert search.attributes["llm_infra.vector.backend"] == "embedded"
    assert search.attributes["llm_infra.vector.k"] == 3
    assert search.attributes["llm_infra.vector.filtered"] is True
    assert search.attributes["llm_infra.vector.dimensions"] == DIM
    assert "vector.insert_batch" in finished
    # One: the search refused at the edge (wrong length) never reached the engine.
    assert _searches_timed() == before + 1


@pytest.mark.parametrize(
    "quantization",
    [{"scalar": {}}, {"product": {"compression": "x8"}}, {"binary": {}}],
    ids=["scalar", "product", "binary"],
)
async def test_quantized_collections_rescore_to_the_right_answer(
    tmp_path: Path, quantization: dict[str, object]
) -> None:
    quantized = spec(quantization=quantization, search={"rescore": True, "oversampling": 4.0})
    store, _ = await ensure_collection(quantized, "q", directory=tmp_path / "q")
    try:
        assert store.config.quantization == next(iter(quantization))
        data = points(2000)
        await store.insert_batch(data)
        await store.optimize()
        for probe in (data[7], data[1234]):
            hits = await store.search(probe.vector, k=1, hnsw_ef=128)
            assert hits[0].id == probe.id
    finally:
        await store.close()


async def test_ensure_collection_on_the_server_api(tmp_path: Path) -> None:
    server_spec = VectorCollectionSpec.model_validate(
        {
            "vectors": {"size": DIM},
            "backend": {"qdrant": {"url": "http://qdrant.example:6333"}},
            "payloadIndexes": [{"field": "lang", "type": "keyword"}],
            "aliases": ["current"],
        }
    )
    store, decided = await ensure_collection(server_spec, "kb", location=":memory:")
    try:
        assert store.backend == "qdrant"
        assert decided.create
        assert decided.add_aliases == ("current",)
        await store.insert_batch(points(10))
        assert await store.count(F.eq("lang", "en")) == 5
    finally:
        await store.close()
