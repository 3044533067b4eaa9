"""The vector data API on a Qdrant-backed VectorCollection: the real app proxying to Qdrant.

The Qdrant API is qdrant-client's local mode in a directory (the app's
`qdrant_location`), or a real server when QDRANT_URL is set (see
tests/servers/qdrant.py). As in a cluster, the collection is ensured first
("the operator"), then the app is told to serve it (`serve_qdrant`, as the
feeds do). Each answer is checked against an embedded VectorCollection that
holds the same points: one API, the same answers on both backends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from llm_infra import errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.client import NO_RETRY, ControlPlaneClient
from llm_infra.vector import CollectionConfig, F, Point, drop_collection
from llm_infra.vector.server import QdrantStore
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from llm_infra_controlplane.vectors.registry import CollectionRegistry
from tests.servers import qdrant
from tests.servers._process import free_port

NS = "team-a"
QDRANT_VC, EMBEDDED_VC = "docs-qdrant", "docs-embedded"
URL = f"/v1/namespaces/{NS}/collections/{QDRANT_VC}"
PROBLEM_JSON = "application/problem+json"
# Local mode ignores the url (one local store stands in for every server); it must only be valid.
CLUSTER_URL = "http://qdrant.qdrant.svc:6333"
QUERY = [1.0, 4.0, 0.5, 1.0]


@dataclass(frozen=True)
class Target:
    """Where the Qdrant-backed collection lives: a local-mode directory, or a server."""

    url: str
    api_key: str | None = None
    location: str | None = None


def _spec() -> dict[str, Any]:
    return {
        "vectors": {"size": 4, "distance": "Cosine"},
        "payloadIndexes": [
            {"field": "lang", "type": "keyword"},
            {"field": "year", "type": "integer"},
        ],
    }


def _qdrant_spec(target: Target, collection_name: str) -> VectorCollectionSpec:
    return VectorCollectionSpec.model_validate(
        _spec() | {"backend": {"qdrant": {"url": target.url}}, "collectionName": collection_name}
    )


def _points() -> list[Point]:
    # String ids and integer ids both: string ids map to UUIDs in either engine.
    langs = ["en", "de", "fr"]
    return [
        Point(
            f"doc-{i}" if i % 2 else i,
            [1.0, float(i), 0.5, float(i % 3)],
            {"lang": langs[i % 3], "year": 2018 + i},
        )
        for i in range(9)
    ]


@pytest.fixture(params=qdrant.backends())
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "server":
        return Target(os.environ["QDRANT_URL"], os.environ.get("QDRANT_API_KEY"))
    return Target(CLUSTER_URL, location=str(tmp_path / "qdrant-local"))


@pytest.fixture
async def collection(target: Target) -> AsyncIterator[str]:
    """A collection ensured on the target, as the operator would, and dropped afterwards."""
    name = f"cp-{uuid.uuid4().hex[:12]}"
    # Opened and closed again: a local-mode directory has one owner at a time.
    config = CollectionConfig.from_spec(_qdrant_spec(target, name))
    where: dict[str, Any] = (
        {"path": target.location}
        if target.location
        else {"url": target.url, "api_key": target.api_key}
    )
    store = await QdrantStore.connect(name, config, **where)
    await store.close()
    yield name
    if target.location is None:
        await drop_collection(name, backend="qdrant", url=target.url, api_key=target.api_key)


@dataclass
class Api:
    app: FastAPI
    cp: ControlPlaneClient
    http: httpx.AsyncClient

    @property
    def registry(self) -> CollectionRegistry:
        registry: CollectionRegistry = self.app.state.collections
        return registry


@pytest.fixture
def settings(tmp_path: Path, nats_url: str, target: Target) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        nats_url=nats_url,
        auth_mode="none",
        qdrant_location=target.location,
    )


@asynccontextmanager
async def _started(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    # httpx's ASGI transport sends no lifespan events: run the app's lifespan here.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            ControlPlaneClient("http://cp", transport=transport, retry=NO_RETRY) as cp,
            httpx.AsyncClient(transport=transport, base_url="http://cp") as http,
        ):
            yield Api(app, cp, http)


@pytest.fixture
async def api(settings: Settings, target: Target, collection: str) -> AsyncIterator[Api]:
    async with _started(settings) as started:
        await started.registry.serve_qdrant(
            NS, QDRANT_VC, _qdrant_spec(target, collection), target.api_key
        )
        assert (await started.registry.store_of(NS, QDRANT_VC)).backend == "qdrant"
        embedded = VectorCollectionSpec.model_validate(_spec())
        await started.cp.ensure_collection(NS, EMBEDDED_VC, embedded, f"{NS}-{EMBEDDED_VC}")
        for vc in (QDRANT_VC, EMBEDDED_VC):
            result = await started.cp.upsert_points(NS, vc, _points())
            assert (result.upserted, result.errors) == (9, [])
        yield started


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


def _same_hits(got: list[Any], expected: list[Any]) -> None:
    assert [(h.id, h.payload, h.vector) for h in got] == [
        (h.id, h.payload, h.vector) for h in expected
    ]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-5)


# -- the same answers as the embedded core -------------------------------------------------------


async def test_searches_answer_as_on_the_embedded_core(api: Api) -> None:
    cp = api.cp
    for options in ({}, {"filter": F.eq("lang", "en")}, {"k": 2, "with_payload": False}):
        got = await cp.search(NS, QDRANT_VC, QUERY, **options)
        assert got, options
        _same_hits(got, await cp.search(NS, EMBEDDED_VC, QUERY, **options))

    queries = [[1.0, float(i), 0.5, float(i % 3)] for i in (2, 7, 5)]
    batch = await cp.search_batch(NS, QDRANT_VC, queries, k=3, filter=F.gte("year", 2020))
    expected = await cp.search_batch(NS, EMBEDDED_VC, queries, k=3, filter=F.gte("year", 2020))
    assert len(batch) == 3
    for got, want in zip(batch, expected, strict=True):
        _same_hits(got, want)
    assert [hits[0].id for hits in batch] == [2, "doc-7", "doc-5"]


async def test_get_count_and_stats_answer_as_on_the_embedded_core(api: Api) -> None:
    cp = api.cp
    for point_id in ("doc-3", 4):
        got = await cp.get_point(NS, QDRANT_VC, point_id, with_vector=True)
        want = await cp.get_point(NS, EMBEDDED_VC, point_id, with_vector=True)
        assert got is not None
        assert want is not None
        assert (got.id, got.payload) == (want.id, want.payload)
        assert got.vector == pytest.approx(want.vector)
    assert await cp.get_point(NS, QDRANT_VC, "nope") is None
    missing = _problem(await api.http.get(f"{URL}/points/nope"), 404)
    assert missing["code"] == "external.not_found"

    for wire in (None, F.eq("lang", "de"), F.in_("lang", ["de", "fr"]) & F.lte("year", 2020)):
        assert await cp.count(NS, QDRANT_VC, wire) == await cp.count(NS, EMBEDDED_VC, wire)

    stats = await cp.collection_stats(NS, QDRANT_VC)
    embedded = await cp.collection_stats(NS, EMBEDDED_VC)
    assert (stats.points, stats.dimensions, stats.distance) == (9, 4, "Cosine")
    assert (stats.points, stats.dimensions, stats.distance) == (
        embedded.points,
        embedded.dimensions,
        embedded.distance,
    )
    wire = (await api.http.get(f"{URL}/stats")).json()
    assert {"points", "indexedVectors", "dimensions", "distance"} <= set(wire)


async def test_deletes_count_what_they_removed_as_on_the_embedded_core(api: Api) -> None:
    cp, http = api.cp, api.http
    for vc in (QDRANT_VC, EMBEDDED_VC):
        base = f"/v1/namespaces/{NS}/collections/{vc}"
        assert await cp.delete_points(NS, vc, ["doc-1", 0, "never-there"]) == 2
        assert (await http.delete(f"{base}/points/doc-3")).json() == {"deleted": 1}
        assert (await http.delete(f"{base}/points/doc-3")).json() == {"deleted": 0}
        assert await cp.delete_points(NS, vc, filter=F.eq("lang", "en")) == 1  # 6
        assert await cp.count(NS, vc) == 5
    _same_hits(await cp.search(NS, QDRANT_VC, QUERY), await cp.search(NS, EMBEDDED_VC, QUERY))


async def test_upsert_reports_refused_points_and_replaces_by_id(api: Api) -> None:
    response = await api.http.post(
        f"{URL}/points",
        json={
            "points": [
                {"id": "doc-1", "vector": [0.0, 0.0, 1.0, 0.0], "payload": {"lang": "xx"}},
                {"id": 77, "vector": [0.1, 0.2]},
            ]
        },
    )

    assert response.status_code == 200
    assert response.json() == {
        "upserted": 1,
        "errors": [
            {
                "id": 77,
                "code": "vector.dimension_mismatch",
                "detail": "expected 4 dimensions, got 2",
            }
        ],
    }
    replaced = await api.cp.get_point(NS, QDRANT_VC, "doc-1")
    assert replaced is not None
    assert replaced.payload == {"lang": "xx"}
    assert await api.cp.count(NS, QDRANT_VC) == 9


async def test_a_query_of_the_wrong_length_is_a_400_with_expected_and_got(api: Api) -> None:
    problem = _problem(await api.http.post(f"{URL}/search", json={"vector": [1, 2, 3]}), 400)

    assert (problem["code"], problem["expected"], problem["got"]) == (
        "vector.dimension_mismatch",
        4,
        3,
    )


# -- registration --------------------------------------------------------------------------------


async def test_a_forgotten_collection_answers_404(api: Api) -> None:
    await api.registry.forget_qdrant(NS, QDRANT_VC)

    problem = _problem(await api.http.post(f"{URL}/count"), 404)
    assert problem["code"] == "vector.collection_not_found"
    assert f"{NS}/{QDRANT_VC}" in problem["detail"]
    with pytest.raises(errors.CollectionNotFound):
        await api.cp.search(NS, QDRANT_VC, QUERY)
    assert await api.cp.count(NS, EMBEDDED_VC) == 9  # the others are untouched


async def test_a_collection_the_operator_has_not_ensured_yet_answers_404(
    api: Api, target: Target
) -> None:
    later = "later"
    await api.registry.serve_qdrant(
        NS, later, _qdrant_spec(target, f"cp-missing-{uuid.uuid4().hex[:8]}"), target.api_key
    )

    path = f"/v1/namespaces/{NS}/collections/{later}"
    problem = _problem(await api.http.post(f"{path}/search", json={"vector": QUERY}), 404)
    assert problem["code"] == "vector.collection_not_found"
    assert await api.cp.count(NS, QDRANT_VC) == 9


# -- an unreachable server -----------------------------------------------------------------------


async def test_an_unreachable_server_is_a_503_with_retry_after(
    tmp_path: Path, nats_url: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_url, auth_mode="none")
    unreachable = Target(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    async with _started(settings) as api:
        # Registering calls nothing: the server may come up later.
        await api.registry.serve_qdrant(NS, QDRANT_VC, _qdrant_spec(unreachable, "docs"), None)

        for method, path, body in (
            ("POST", "/search", {"vector": QUERY}),
            ("POST", "/points", {"points": [{"id": 1, "vector": QUERY}]}),
            ("GET", "/stats", None),
        ):
            response = await api.http.request(method, f"{URL}{path}", json=body)
            problem = _problem(response, 503)
            assert problem["code"] == "vector.unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        with pytest.raises(errors.VectorUnavailable) as caught:
            await api.cp.count(NS, QDRANT_VC)
        assert caught.value.is_retryable()
