"""The collection admin API, in process: the real app and real EdgeStores in a temp dir.

Driven through `ControlPlaneClient` over httpx's ASGI transport (no socket),
plus raw requests where the wire shape itself is the point (problem documents).
qdrant-edge runs in process, so real shards are fine in a unit test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from qdrant_client import AsyncQdrantClient

from llm_infra import errors, vector
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.client import ControlPlaneClient
from llm_infra.vector import CollectionConfig, EdgeStore, Point, QdrantStore
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings, default_data_dir
from llm_infra_controlplane.vectors.registry import CollectionRegistry

URL = "/v1/namespaces/team-a/collections/docs"


def _spec(size: int = 4, **extra: Any) -> VectorCollectionSpec:
    return VectorCollectionSpec.model_validate(
        {"vectors": {"size": size, "distance": "Cosine"}, **extra}
    )


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(
        Settings(data_dir=tmp_path / "data", auth_mode="none")
    )  # auth: controlplane/test_access.py
    # httpx's ASGI transport sends no lifespan events: run the app's lifespan here.
    async with app.router.lifespan_context(app):
        yield app


def _registry(app: FastAPI) -> CollectionRegistry:
    registry: CollectionRegistry = app.state.collections
    return registry


async def test_put_creates_then_is_idempotent(
    cp: ControlPlaneClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = await cp.ensure_collection("team-a", "docs", _spec(), "team-a-docs")
    assert (created.created, created.changes) == (True, ["create collection"])
    assert (created.namespace, created.name, created.collection_name) == (
        "team-a",
        "docs",
        "team-a-docs",
    )
    assert (created.points_count, created.config.dimensions, created.config.distance) == (
        0,
        4,
        "Cosine",
    )
    assert (
        tmp_path / "data" / "collections" / "team-a" / "team-a-docs" / "collection.json"
    ).is_file()

    again = await cp.ensure_collection("team-a", "docs", _spec(), "team-a-docs")
    assert (again.created, again.changes) == (False, [])
    # The wire speaks the CRD's camelCase.
    wire = (await http.get(URL, params={"collectionName": "team-a-docs"})).json()
    assert {"collectionName", "pointsCount", "indexedVectorsCount"} <= wire.keys()
    assert wire["config"]["payloadIndexes"] == {}


async def test_a_mutable_change_is_applied_and_kept(cp: ControlPlaneClient) -> None:
    await cp.ensure_collection("team-a", "docs", _spec(), "team-a-docs")
    indexed = _spec(payloadIndexes=[{"field": "lang", "type": "keyword"}])

    changed = await cp.ensure_collection("team-a", "docs", indexed, "team-a-docs")

    assert (changed.created, changed.changes) == (False, ["create payload index lang (keyword)"])
    assert changed.config.payload_indexes == {"lang": "keyword"}
    info = await cp.collection_info("team-a", "docs", "team-a-docs")
    assert info is not None
    assert info.config.payload_indexes == {"lang": "keyword"}


async def test_dimensions_change_is_refused_with_the_field_and_touches_nothing(
    app: FastAPI, cp: ControlPlaneClient, http: httpx.AsyncClient
) -> None:
    await cp.ensure_collection("team-a", "docs", _spec(4), "team-a-docs")
    store = await _registry(app).store_of("team-a", "docs")
    await store.insert_batch([Point(i, [1.0, float(i), 0.0, 0.5]) for i in range(3)])

    with pytest.raises(errors.CollectionConfigMismatch) as refused:
        await cp.ensure_collection("team-a", "docs", _spec(8), "team-a-docs")
    assert (refused.value.field, refused.value.expected, refused.value.actual) == (
        "dimensions",
        "8",
        "4",
    )

    body = {"collectionName": "team-a-docs", "spec": _spec(8).model_dump(by_alias=True)}
    response = await http.put(URL, json=body)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "vector.config_mismatch"
    assert problem["fields"] == [{"field": "dimensions", "expected": "8", "actual": "4"}]

    info = await cp.collection_info("team-a", "docs", "team-a-docs")
    assert info is not None
    assert (info.config.dimensions, info.points_count) == (4, 3)


async def test_get_of_a_missing_collection_is_404(
    cp: ControlPlaneClient, http: httpx.AsyncClient
) -> None:
    assert await cp.collection_info("team-a", "docs", "nothing-here") is None
    response = await http.get(URL, params={"collectionName": "nothing-here"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "vector.collection_not_found"


async def test_the_default_engine_name_is_the_vectorcollection_name_in_its_namespace(
    cp: ControlPlaneClient, tmp_path: Path
) -> None:
    await cp.ensure_collection(
        "team-a", "docs", _spec(), _spec().engine_collection("team-a", "docs")
    )
    info = await cp.collection_info("team-a", "docs")
    assert info is not None
    assert info.collection_name == "docs"
    assert (tmp_path / "data" / "collections" / "team-a" / "docs").is_dir()
    assert await cp.drop_collection("team-a", "docs") is True


async def test_delete_closes_removes_and_is_idempotent(
    app: FastAPI, cp: ControlPlaneClient, tmp_path: Path
) -> None:
    await cp.ensure_collection("team-a", "docs", _spec(), "team-a-docs")
    await _registry(app).store_of("team-a", "docs")  # open: the drop must close it first

    assert await cp.drop_collection("team-a", "docs", "team-a-docs") is True
    assert not (tmp_path / "data" / "collections" / "team-a" / "team-a-docs").exists()
    assert await cp.collection_info("team-a", "docs", "team-a-docs") is None
    assert await cp.drop_collection("team-a", "docs", "team-a-docs") is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"collectionName": "c", "spec": {"vectors": {"size": 0}}}, "spec.vectors.size"),
        ({"spec": {"vectors": {"size": 4}}}, "collectionName"),
        ({"collectionName": "../escape", "spec": {"vectors": {"size": 4}}}, "collectionName"),
        (
            {
                "collectionName": "c",
                "spec": {"vectors": {"size": 4}, "tier": "warm", "quantization": {"binary": {}}},
            },
            "spec.quantization",
        ),
    ],
)
async def test_a_bad_body_is_a_422_problem_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await http.put(URL, json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("validation.error", field)
    assert field in {issue["field"] for issue in problem["errors"]}


async def test_the_client_raises_the_servers_validation_error(cp: ControlPlaneClient) -> None:
    with pytest.raises(errors.ValidationError) as rejected:
        await cp.collection_info("team-a", "docs", "not/a/name")
    assert rejected.value.field == "collectionName"


async def test_framework_errors_are_problems_too(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_shutdown_closes_every_store(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, auth_mode="none"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with ControlPlaneClient("http://cp", transport=transport) as cp:
            await cp.ensure_collection("team-a", "docs", _spec(), "team-a-docs")
    # One owner per directory: this open fails with CollectionLocked unless it was closed.
    store = EdgeStore.open(tmp_path / "collections" / "team-a" / "team-a-docs")
    await store.close()


async def test_non_problem_error_answers_raise_the_http_status() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    transport = httpx.MockTransport(gateway)
    async with ControlPlaneClient("http://cp", transport=transport) as cp:
        with pytest.raises(errors.HttpStatusError) as failed:
            await cp.collection_info("team-a", "docs")
    assert failed.value.status_code == 502
    assert failed.value.is_retryable()


async def test_the_token_is_sent_and_stays_out_of_the_repr() -> None:
    seen: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"dropped": False})

    transport = httpx.MockTransport(server)
    async with ControlPlaneClient("http://cp", token="s3cr3t-value", transport=transport) as cp:
        assert "s3cr3t" not in repr(cp)
        assert await cp.drop_collection("team-a", "docs") is False
    assert seen == ["Bearer s3cr3t-value"]


def test_data_dir_comes_from_the_environment_else_the_xdg_data_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLM_INFRA_DATA_DIR", str(tmp_path / "mine"))
    assert Settings().data_dir == tmp_path / "mine"
    monkeypatch.delenv("LLM_INFRA_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "llm-infra"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == Path.home() / ".local" / "share" / "llm-infra"


# -- llm_infra.vector: drop_collection and the plan in words ---------------------------------


async def test_drop_refuses_a_directory_a_store_holds(tmp_path: Path) -> None:
    directory = tmp_path / "held"
    store = EdgeStore.open(directory, CollectionConfig(dimensions=4))
    with pytest.raises(errors.CollectionLocked):
        await vector.drop_collection("held", backend="embedded", directory=directory)
    assert (directory / "collection.json").is_file()
    await store.close()

    assert await vector.drop_collection("held", backend="embedded", directory=directory) is True
    assert not directory.exists()
    assert await vector.drop_collection("held", backend="embedded", directory=directory) is False


async def test_drop_needs_a_place_to_drop_from() -> None:
    with pytest.raises(errors.ConfigError):
        await vector.drop_collection("c", backend="embedded")
    with pytest.raises(errors.ConfigError):
        await vector.drop_collection("c", backend="qdrant")
    assert await vector.drop_collection("c", backend="qdrant", location=":memory:") is False


async def test_drop_through_a_qdrant_client_is_idempotent_and_leaves_it_open() -> None:
    client = AsyncQdrantClient(location=":memory:")
    await QdrantStore.connect("docs", CollectionConfig(dimensions=4), client=client)

    assert await vector.drop_collection("docs", backend="qdrant", client=client) is True
    assert await vector.drop_collection("docs", backend="qdrant", client=client) is False
    assert not await client.collection_exists("docs")  # still open
    await client.close()


def test_describe_changes_puts_the_plan_into_words() -> None:
    stored = CollectionConfig.from_spec(_spec(payloadIndexes=[{"field": "a", "type": "integer"}]))
    wanted = _spec(
        payloadIndexes=[{"field": "lang", "type": "keyword"}], hnsw={"m": 32}, aliases=["docs"]
    )
    assert vector.describe_changes(vector.plan_collection(wanted, stored)) == [
        "drop payload index a",
        "create payload index lang (keyword)",
        "update HNSW settings",
        "add alias docs",
    ]
    assert vector.describe_changes(vector.plan_collection(_spec(), None)) == ["create collection"]
    refused = vector.plan_collection(_spec(8), stored)
    assert vector.describe_changes(refused) == ["refuse: dimensions is 4, the spec asks for 8"]


async def test_a_payload_index_that_is_no_path_is_a_422_naming_it(http: httpx.AsyncClient) -> None:
    # Found by schemathesis: control characters in a field once reached the engine (a 500).
    body = {"collectionName": "fuzzed", "spec": {"vectors": {"size": 4},
            "payloadIndexes": [{"field": "\u00d3\n\u00e5'", "type": "float"}]}}  # fmt: skip
    answer = await http.put("/v1/namespaces/o/collections/fuzzed", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["field"] == "spec.payloadIndexes.0.field"
