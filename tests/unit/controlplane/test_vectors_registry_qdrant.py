"""CollectionRegistry's Qdrant-backed collections: which store and client serve a VectorCollection.

No network: remote clients are only built (registering never calls the
server), and data calls run on qdrant-client's in-memory local mode.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient

from llm_infra import errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.vector import Point
from llm_infra.vector.server import QdrantStore
from llm_infra_controlplane.vectors.registry import CollectionRegistry

NS = "team-a"
SERVER_A = "https://qdrant-a.invalid:6333"
SERVER_B = "https://qdrant-b.invalid:6333"
KEY = "s3cret-qdrant-key"


def _spec(url: str = SERVER_A, size: int = 4, **extra: Any) -> VectorCollectionSpec:
    return VectorCollectionSpec.model_validate(
        {"vectors": {"size": size, "distance": "Cosine"}, "backend": {"qdrant": {"url": url}}}
        | extra
    )


def _closed(client: AsyncQdrantClient) -> bool:
    # qdrant-client's remote and local backends both keep this flag; it has no public one.
    return bool(getattr(client, "_client")._closed)  # noqa: B009


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[CollectionRegistry]:
    registry = CollectionRegistry(tmp_path / "collections")
    yield registry
    await registry.close()


async def _qdrant_store(registry: CollectionRegistry, name: str) -> QdrantStore:
    store = await registry.store_of(NS, name)
    assert isinstance(store, QdrantStore)
    return store


async def test_a_served_collection_gets_a_qdrant_store_named_as_the_spec_says(
    registry: CollectionRegistry,
) -> None:
    await registry.serve_qdrant(NS, "docs", _spec(size=8), None)
    await registry.serve_qdrant(NS, "named", _spec(collectionName="shared-docs"), None)

    docs = await _qdrant_store(registry, "docs")
    assert (docs.name, docs.config.dimensions, docs.config.distance) == ("team-a.docs", 8, "Cosine")
    assert (await _qdrant_store(registry, "named")).name == "shared-docs"


async def test_serving_again_is_a_no_op_and_a_changed_spec_replaces_the_store(
    registry: CollectionRegistry,
) -> None:
    await registry.serve_qdrant(NS, "docs", _spec(), KEY)
    first = await _qdrant_store(registry, "docs")
    await registry.serve_qdrant(NS, "docs", _spec(), KEY)
    assert await registry.store_of(NS, "docs") is first

    await registry.serve_qdrant(NS, "docs", _spec(search={"hnswEf": 200}), KEY)
    changed = await _qdrant_store(registry, "docs")
    assert changed is not first
    assert changed.config.hnsw_ef == 200
    assert changed.client is first.client  # same server, same key: same client
    assert not _closed(first.client)


async def test_collections_on_one_server_and_key_share_a_client(
    registry: CollectionRegistry,
) -> None:
    await registry.serve_qdrant(NS, "a", _spec(), KEY)
    await registry.serve_qdrant(NS, "b", _spec(), KEY)
    await registry.serve_qdrant(NS, "other-key", _spec(), "another-key")
    await registry.serve_qdrant(NS, "other-server", _spec(SERVER_B), KEY)

    a, b = await _qdrant_store(registry, "a"), await _qdrant_store(registry, "b")
    assert a.client is b.client
    other_key = await _qdrant_store(registry, "other-key")
    other_server = await _qdrant_store(registry, "other-server")
    assert len({id(a.client), id(other_key.client), id(other_server.client)}) == 3


async def test_a_moved_collection_swaps_its_client_and_the_unused_one_is_closed(
    registry: CollectionRegistry,
) -> None:
    await registry.serve_qdrant(NS, "a", _spec(), KEY)
    await registry.serve_qdrant(NS, "b", _spec(), KEY)
    old = (await _qdrant_store(registry, "a")).client

    await registry.serve_qdrant(NS, "a", _spec(SERVER_B), KEY)
    assert (await _qdrant_store(registry, "a")).client is not old
    assert not _closed(old)  # "b" still uses it

    await registry.serve_qdrant(NS, "b", _spec(), "rotated-key")
    assert (await _qdrant_store(registry, "b")).client is not old
    assert _closed(old)


async def test_forget_falls_back_to_the_embedded_lookup_and_closes_the_client(
    registry: CollectionRegistry,
) -> None:
    await registry.serve_qdrant(NS, "docs", _spec(), None)
    client = (await _qdrant_store(registry, "docs")).client

    await registry.forget_qdrant(NS, "docs")
    await registry.forget_qdrant(NS, "docs")  # idempotent

    assert _closed(client)
    with pytest.raises(errors.CollectionNotFound, match="team-a/docs has no embedded collection"):
        await registry.store_of(NS, "docs")


async def test_close_closes_every_qdrant_client(registry: CollectionRegistry) -> None:
    await registry.serve_qdrant(NS, "a", _spec(), None)
    await registry.serve_qdrant(NS, "b", _spec(SERVER_B), None)
    clients = [(await _qdrant_store(registry, n)).client for n in ("a", "b")]

    await registry.close()

    assert all(_closed(client) for client in clients)
    with pytest.raises(errors.CollectionNotFound):
        await registry.store_of(NS, "a")


async def test_an_embedded_spec_is_refused_naming_the_field(registry: CollectionRegistry) -> None:
    embedded = VectorCollectionSpec.model_validate(
        {"vectors": {"size": 4, "distance": "Cosine"}, "backend": {"embedded": {}}}
    )
    with pytest.raises(errors.ValidationError) as refused:
        await registry.serve_qdrant(NS, "docs", embedded, None)
    assert refused.value.field == "spec.backend.qdrant"


async def test_the_api_key_never_shows_in_logs_or_reprs(
    registry: CollectionRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await registry.serve_qdrant(NS, "docs", _spec(), KEY)
    await registry.serve_qdrant(NS, "docs", _spec(SERVER_B), KEY)
    await registry.forget_qdrant(NS, "docs")

    assert "serving Qdrant collection team-a.docs" in caplog.text
    assert KEY not in caplog.text
    assert KEY not in repr(vars(registry))


async def test_local_mode_stands_in_for_every_server(tmp_path: Path) -> None:
    registry = CollectionRegistry(tmp_path / "collections", qdrant_location=":memory:")
    try:
        await registry.serve_qdrant(NS, "a", _spec(SERVER_A), None)
        await registry.serve_qdrant(NS, "b", _spec(SERVER_B), KEY)
        a, b = await _qdrant_store(registry, "a"), await _qdrant_store(registry, "b")
        assert a.client is b.client

        # Not ensured yet (the operator's job): the data call says so.
        with pytest.raises(errors.CollectionNotFound):
            await a.count()
        await QdrantStore.connect("team-a.a", a.config, client=a.client)  # as the operator would
        await a.insert_batch([Point("x", [1.0, 0.0, 0.0, 0.0]), Point(2, [0.0, 1.0, 0.0, 0.0])])
        hits = await a.search([1.0, 0.1, 0.0, 0.0], k=1)
        assert [h.id for h in hits] == ["x"]
        assert await a.count() == 2
    finally:
        await registry.close()


async def test_registering_an_unreachable_server_calls_nothing(
    registry: CollectionRegistry,
) -> None:
    # .invalid never resolves: any call at registration would fail here.
    await registry.serve_qdrant(NS, "docs", _spec("http://nowhere.invalid:6333"), None)

    assert (await _qdrant_store(registry, "docs")).name == "team-a.docs"


async def test_one_collection_of_one_server_serves_one_vectorcollection(
    registry: CollectionRegistry,
) -> None:
    await registry.serve_qdrant(NS, "docs", _spec(collectionName="shared"), KEY)

    for namespace, name in ((NS, "other"), ("team-b", "docs")):
        with pytest.raises(errors.CollectionOwned) as taken:
            await registry.serve_qdrant(namespace, name, _spec(collectionName="shared"), None)
        assert f"serves VectorCollection {NS}/docs" in taken.value.message
        assert taken.value.status == 409
    # The same name on another server is another collection; a released claim is free again.
    await registry.serve_qdrant(
        "team-b", "docs", _spec("http://other:6333", collectionName="shared"), None
    )
    await registry.forget_qdrant(NS, "docs")
    await registry.serve_qdrant(NS, "other", _spec(collectionName="shared"), None)
    assert (await _qdrant_store(registry, "other")).name == "shared"


async def test_moving_to_another_collection_releases_the_old_claim(
    registry: CollectionRegistry,
) -> None:
    await registry.serve_qdrant(NS, "docs", _spec(collectionName="v1"), None)
    await registry.serve_qdrant(NS, "docs", _spec(collectionName="v2"), None)
    await registry.serve_qdrant(NS, "next", _spec(collectionName="v1"), None)
    assert (await _qdrant_store(registry, "next")).name == "v1"
