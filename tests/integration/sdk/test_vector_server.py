"""QdrantStore on qdrant-client's local mode (the stand-in for a server), and its error mapping."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient

from llm_infra import errors
from llm_infra.vector import CollectionConfig, F, Point
from llm_infra.vector.server import QdrantStore

CONFIG = CollectionConfig(dimensions=8, payload_indexes={"lang": "keyword", "year": "integer"})


def _vectors(n: int) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(n, 8)).astype(np.float32)


async def test_crud_search_and_reopen_in_local_mode() -> None:
    client = AsyncQdrantClient(location=":memory:")
    vecs = _vectors(50)
    async with await QdrantStore.connect("docs", CONFIG, client=client) as store:
        assert store.last_plan.create
        bad = vecs[2].copy()
        bad[0] = math.nan
        points = [Point(i, vecs[i], {"lang": ["de", "en"][i % 2], "year": i}) for i in range(48)]
        points += [Point("doc-a", vecs[48], {"lang": "en", "year": 30}), Point(-1, vecs[49])]
        points += [Point(100, bad), Point(101, vecs[3][:4])]
        result = await store.insert_batch(points)
        assert result.inserted == 49
        assert set(result.failed) == {-1, 100, 101}
        assert isinstance(result.failed[101], errors.DimensionMismatch)

        hits = await store.search(vecs[5], k=3, filter=F.eq("lang", "en") & F.gte("year", 5))
        assert hits[0].id == 5
        assert all(h.payload and h.payload["lang"] == "en" for h in hits)
        batch = await store.search_batch([vecs[1], vecs[48]], k=2, with_vector=True)
        assert [b[0].id for b in batch] == [1, "doc-a"]
        assert batch[0][0].vector is not None
        assert len(batch[0][0].vector) == 8

        record = await store.get("doc-a")
        assert record is not None
        assert record.id == "doc-a"
        assert record.payload == {"lang": "en", "year": 30}
        await store.update_metadata("doc-a", {"tag": 1})
        await store.update_metadata("doc-a", {"only": 2}, replace=True)
        record = await store.get("doc-a")
        assert record is not None
        assert record.payload == {"only": 2}
        with pytest.raises(errors.NotFound):
            await store.update_metadata(999, {"x": 1})

        assert await store.count(F.eq("lang", "en")) == 24  # doc-a's payload was replaced
        await store.delete([1, 3])
        await store.delete(filter=F.eq("lang", "de"))
        assert await store.count() == 23
        stats = await store.stats()
        assert (stats.points, stats.dimensions, stats.disk_bytes) == (23, 8, None)
        assert await store.optimize() is False

    reopened = await QdrantStore.connect("docs", client=client)
    assert reopened.config.dimensions == 8
    assert reopened.last_plan.noop
    assert (await QdrantStore.connect("docs", CONFIG, client=client)).last_plan.noop
    with pytest.raises(errors.CollectionConfigMismatch):
        await QdrantStore.connect("docs", CollectionConfig(dimensions=4), client=client)
    with pytest.raises(errors.CollectionNotFound):
        await QdrantStore.connect("missing", client=client)
    await client.close()


async def test_aliases_and_close() -> None:
    config = CollectionConfig(dimensions=4, aliases=("current",), quantization="scalar")
    store = await QdrantStore.connect("v1", config, location=":memory:")
    aliases = await store.client.get_collection_aliases("v1")
    assert [a.alias_name for a in aliases.aliases] == ["current"]
    await store.close()
    with pytest.raises(errors.VectorError, match="closed"):
        await store.count()


async def test_unreachable_server_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(errors.VectorUnavailable) as caught:
        await QdrantStore.connect("docs", CONFIG, url=f"http://127.0.0.1:{port}")
    assert caught.value.is_retryable()
