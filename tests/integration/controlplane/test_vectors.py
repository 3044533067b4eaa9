"""The vector data API on the real app: lifespan, real NATS (audit), real qdrant-edge shards.

Driven through `ControlPlaneClient` over httpx's ASGI transport, plus raw
requests where the wire shape is the point (problem documents, camelCase).
Authentication is another router dependency's job: these apps run with
auth_mode "none".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from llm_infra import errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.client import ControlPlaneClient, PointData, PointFilter
from llm_infra.vector import F, Point
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings

NS, NAME = "team-a", "docs"
URL = f"/v1/namespaces/{NS}/collections/{NAME}"
PROBLEM_JSON = "application/problem+json"

Connect = Callable[[], AbstractAsyncContextManager[tuple[ControlPlaneClient, httpx.AsyncClient]]]


def _spec(size: int = 4) -> VectorCollectionSpec:
    return VectorCollectionSpec.model_validate(
        {
            "vectors": {"size": size, "distance": "Cosine"},
            "payloadIndexes": [
                {"field": "lang", "type": "keyword"},
                {"field": "year", "type": "integer"},
            ],
        }
    )


def _points(n: int) -> list[Point]:
    langs = ["en", "de", "fr"]
    return [
        Point(
            f"doc-{i}",
            [1.0, float(i), 0.5, float(i % 3)],
            {"lang": langs[i % 3], "year": 2018 + i},
        )
        for i in range(n)
    ]


@pytest.fixture
def connect(tmp_path: Path, nats_url: str) -> Connect:
    """Start the app on `tmp_path` (again and again: a restart keeps the data dir)."""

    @asynccontextmanager
    async def started() -> AsyncIterator[tuple[ControlPlaneClient, httpx.AsyncClient]]:
        settings = Settings(data_dir=tmp_path / "data", nats_url=nats_url, auth_mode="none")
        app: FastAPI = create_app(settings)
        # httpx's ASGI transport sends no lifespan events: run the app's lifespan here.
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with (
                ControlPlaneClient("http://cp", transport=transport) as cp,
                httpx.AsyncClient(transport=transport, base_url="http://cp") as http,
            ):
                yield cp, http

    return started


@pytest.fixture
async def api(connect: Connect) -> AsyncIterator[tuple[ControlPlaneClient, httpx.AsyncClient]]:
    async with connect() as (cp, http):
        await cp.ensure_collection(NS, NAME, _spec(), f"{NS}-{NAME}")
        await cp.upsert_points(NS, NAME, _points(9))
        yield cp, http


@pytest.fixture
def cp(api: tuple[ControlPlaneClient, httpx.AsyncClient]) -> ControlPlaneClient:
    return api[0]


@pytest.fixture
def http(api: tuple[ControlPlaneClient, httpx.AsyncClient]) -> httpx.AsyncClient:
    return api[1]


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


# -- upsert --------------------------------------------------------------------------------------


async def test_upsert_stores_the_good_points_and_reports_the_bad_by_id(
    cp: ControlPlaneClient, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        f"{URL}/points",
        json={
            "points": [
                {"id": "new-1", "vector": [0.1, 0.2, 0.3, 0.4], "payload": {"lang": "en"}},
                {"id": 77, "vector": [0.1, 0.2]},
                {"id": "new-2", "vector": [0.5, 0.5, 0.5, 0.5]},
            ]
        },
    )

    assert response.status_code == 200
    assert response.json() == {
        "upserted": 2,
        "errors": [
            {
                "id": 77,
                "code": "vector.dimension_mismatch",
                "detail": "expected 4 dimensions, got 2",
            }
        ],
    }
    assert await cp.count(NS, NAME) == 11
    assert await cp.get_point(NS, NAME, 77) is None


async def test_upsert_through_the_client_takes_points_and_wire_points(
    cp: ControlPlaneClient,
) -> None:
    result = await cp.upsert_points(
        NS,
        NAME,
        [
            PointData(id=100, vector=[1, 1, 1, 1], payload={"lang": "de"}),
            Point(101, [1.0, 1.0, 1.0, 1.0, 1.0]),
            Point("doc-0", [0.0, 0.0, 1.0, 0.0], {"lang": "xx"}),  # replaces doc-0
        ],
    )

    assert result.upserted == 2
    assert [(f.id, f.code) for f in result.errors] == [(101, "vector.dimension_mismatch")]
    assert isinstance(result.errors[0].error(), errors.DimensionMismatch)
    replaced = await cp.get_point(NS, NAME, "doc-0")
    assert replaced is not None
    assert replaced.payload == {"lang": "xx"}


async def test_a_nan_component_is_refused_naming_it(cp: ControlPlaneClient) -> None:
    # JSON has no NaN (orjson sends null); a server reading NaN literals refuses them too.
    with pytest.raises(errors.ValidationError) as refused:
        await cp.upsert_points(NS, NAME, [Point(101, [1.0, float("nan"), 1.0, 1.0])])
    assert refused.value.field == "points.0.vector.1"


async def test_upsert_of_which_nothing_is_stored_is_a_400_with_expected_and_got(
    cp: ControlPlaneClient, http: httpx.AsyncClient
) -> None:
    response = await http.post(f"{URL}/points", json={"points": [{"id": 5, "vector": [1.0]}]})

    problem = _problem(response, 400)
    assert (problem["code"], problem["expected"], problem["got"]) == (
        "vector.dimension_mismatch",
        4,
        1,
    )
    assert problem["detail"] == "point 5: expected 4 dimensions, got 1"
    with pytest.raises(errors.DimensionMismatch) as refused:
        await cp.upsert_points(NS, NAME, [Point(5, [1.0, 2.0])])
    assert (refused.value.expected, refused.value.actual) == (4, 2)


async def test_an_oversized_or_malformed_upsert_is_a_422_naming_the_field(
    http: httpx.AsyncClient,
) -> None:
    too_many = [{"id": i, "vector": [1, 0, 0, 0]} for i in range(1001)]
    assert (
        _problem(await http.post(f"{URL}/points", json={"points": too_many}), 422)["field"]
        == "points"
    )
    bad_id = {"points": [{"id": -3, "vector": [1, 0, 0, 0]}]}
    problem = _problem(await http.post(f"{URL}/points", json=bad_id), 422)
    assert problem["field"].startswith("points.0.id")
    missing = _problem(await http.post(f"{URL}/points", json={"point": []}), 422)
    assert {issue["field"] for issue in missing["errors"]} == {"points", "point"}


async def test_the_client_splits_big_loads_into_bounded_requests(cp: ControlPlaneClient) -> None:
    await cp.ensure_collection(NS, "bulk", _spec(), f"{NS}-bulk")
    load = [Point(i, [1.0, float(i), 0.0, 1.0]) for i in range(2500)]

    result = await cp.upsert_points(NS, "bulk", load)

    assert (result.upserted, result.errors) == (2500, [])
    assert await cp.count(NS, "bulk") == 2500


# -- search --------------------------------------------------------------------------------------


async def test_search_finds_the_nearest_with_ids_as_inserted(cp: ControlPlaneClient) -> None:
    hits = await cp.search(NS, NAME, [1.0, 4.0, 0.5, 1.0], k=3)

    assert len(hits) == 3
    assert hits[0].id == "doc-4"
    assert hits[0].payload == {"lang": "de", "year": 2022}
    assert hits[0].vector is None
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_search_options_shape_the_hits(
    cp: ControlPlaneClient, http: httpx.AsyncClient
) -> None:
    query = {"vector": [1, 4, 0.5, 1], "k": 2, "hnswEf": 64, "exact": True}
    response = await http.post(f"{URL}/search", json=query | {"withPayload": False})
    assert response.headers["content-type"] == "application/json"
    bare = response.json()["hits"]
    assert [set(hit) for hit in bare] == [{"id", "score"}] * 2
    # String ids come back as inserted even without the payload that carries them.
    assert bare[0]["id"] == "doc-4"

    with_vectors = await cp.search(NS, NAME, [1, 4, 0.5, 1], k=1, with_vector=True)
    assert with_vectors[0].vector is not None
    assert len(with_vectors[0].vector) == 4


async def test_filters_select_like_f_does(cp: ControlPlaneClient) -> None:
    query = [1.0, 4.0, 0.5, 1.0]
    english = await cp.search(NS, NAME, query, k=9, filter=F.eq("lang", "en"))
    assert {h.id for h in english} == {"doc-0", "doc-3", "doc-6"}

    recent_not_french = F.gte("year", 2022) & ~F.eq("lang", "fr")
    found = await cp.search(NS, NAME, query, k=9, filter=recent_not_french)
    assert {h.id for h in found} == {"doc-4", "doc-6", "doc-7"}

    wire = PointFilter.model_validate(
        {
            "should": [
                {"key": "lang", "match": {"any": ["de"]}},
                {"key": "year", "range": {"lt": 2019}},
            ]
        }
    )
    assert await cp.count(NS, NAME, wire) == 4
    assert await cp.count(NS, NAME, F.in_("lang", ["de", "fr"]) & F.lte("year", 2020)) == 2


async def test_an_unindexed_filter_field_is_logged_not_raised(
    cp: ControlPlaneClient, caplog: pytest.LogCaptureFixture
) -> None:
    found = await cp.search(NS, NAME, [1, 0, 0, 0], filter=F.eq("missing", "x"))

    assert found == []
    assert "has no payload index" in caplog.text


async def test_search_batch_answers_each_search_in_order(
    cp: ControlPlaneClient, http: httpx.AsyncClient
) -> None:
    queries = [[1.0, float(i), 0.5, float(i % 3)] for i in (2, 7, 5)]
    batch = await cp.search_batch(NS, NAME, queries, k=2)
    single = [await cp.search(NS, NAME, q, k=2) for q in queries]
    assert batch == single
    assert [hits[0].id for hits in batch] == ["doc-2", "doc-7", "doc-5"]

    # Searches with their own options in one request: each keeps its own.
    mixed = {
        "searches": [
            {"vector": queries[0], "k": 1},
            {
                "vector": queries[1],
                "k": 3,
                "filter": {"must": [{"key": "lang", "match": {"value": "en"}}]},
            },
            {"vector": queries[2], "k": 1, "withPayload": False},
        ]
    }
    results = (await http.post(f"{URL}/search/batch", json=mixed)).json()["results"]
    assert [len(r["hits"]) for r in results] == [1, 3, 1]
    assert {hit["payload"]["lang"] for hit in results[1]["hits"]} == {"en"}
    assert results[2]["hits"] == [{"id": "doc-5", "score": pytest.approx(1.0)}]


async def test_a_query_of_the_wrong_length_is_a_400_with_expected_and_got(
    cp: ControlPlaneClient, http: httpx.AsyncClient
) -> None:
    problem = _problem(await http.post(f"{URL}/search", json={"vector": [1, 2, 3]}), 400)
    assert (problem["code"], problem["expected"], problem["got"]) == (
        "vector.dimension_mismatch",
        4,
        3,
    )
    batch = {"searches": [{"vector": [1, 2, 3, 4]}, {"vector": [1, 2]}]}
    assert _problem(await http.post(f"{URL}/search/batch", json=batch), 400)["got"] == 2

    with pytest.raises(errors.DimensionMismatch) as refused:
        await cp.search(NS, NAME, [1.0] * 5)
    assert (refused.value.expected, refused.value.actual) == (4, 5)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"vector": [1, 2, 3, 4], "k": 0}, "k"),
        ({"vector": [1, 2, 3, 4], "hnswEf": -1}, "hnswEf"),
        (
            {"vector": [1, 2, 3, 4], "filter": {"must": [{"key": "lang"}]}},
            "filter.must.0.condition",
        ),
        (
            {"vector": [1, 2, 3, 4], "filter": {"must": [{"key": "y", "range": {}}]}},
            "filter.must.0.condition.range",
        ),
        ({"vector": [1, 2, 3, 4], "topK": 3}, "topK"),
        ({"k": 3}, "vector"),
    ],
)
async def test_a_bad_search_is_a_422_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    problem = _problem(await http.post(f"{URL}/search", json=body), 422)

    assert (problem["code"], problem["field"]) == ("validation.error", field)


async def test_a_body_that_is_not_json_is_a_422(http: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    for content in (b'{"vector": [1, 2', b'{"vector": [NaN, 1, 2, 3]}'):
        response = await http.post(f"{URL}/search", content=content, headers=headers)
        assert _problem(response, 422)["errors"][0]["reason"] == "json_invalid"


# -- get, delete, count, stats -------------------------------------------------------------------


async def test_get_a_point_with_and_without_its_vector(
    cp: ControlPlaneClient, http: httpx.AsyncClient
) -> None:
    record = await cp.get_point(NS, NAME, "doc-2")
    assert record is not None
    assert (record.id, record.payload, record.vector) == (
        "doc-2",
        {"lang": "fr", "year": 2020},
        None,
    )
    full = await cp.get_point(NS, NAME, "doc-2", with_vector=True)
    assert full is not None
    assert full.vector is not None
    assert len(full.vector) == 4

    await cp.upsert_points(NS, NAME, [Point(42, [0.0, 1.0, 0.0, 0.0], {"n": 42})])
    by_int = (await http.get(f"{URL}/points/42", params={"withVector": "true"})).json()
    assert by_int["id"] == 42
    assert by_int["payload"] == {"n": 42}
    assert by_int["vector"] == pytest.approx([0.0, 1.0, 0.0, 0.0])

    missing = _problem(await http.get(f"{URL}/points/nope"), 404)
    assert missing["code"] == "external.not_found"
    assert await cp.get_point(NS, NAME, "nope") is None


async def test_delete_by_id_by_path_and_by_filter(
    cp: ControlPlaneClient, http: httpx.AsyncClient
) -> None:
    assert await cp.delete_points(NS, NAME, ["doc-0", "doc-1", "never-there"]) == 2
    assert (await http.delete(f"{URL}/points/doc-2")).json() == {"deleted": 1}
    assert (await http.delete(f"{URL}/points/doc-2")).json() == {"deleted": 0}
    assert await cp.delete_points(NS, NAME, filter=F.eq("lang", "en")) == 2  # doc-3, doc-6
    assert await cp.count(NS, NAME) == 4

    both = {"ids": ["doc-4"], "filter": {"must": []}}
    problem = _problem(await http.post(f"{URL}/points/delete", json=both), 422)
    assert "exactly one of ids or filter" in problem["detail"]


async def test_count_and_stats(cp: ControlPlaneClient, http: httpx.AsyncClient) -> None:
    assert await cp.count(NS, NAME) == 9
    assert (await http.post(f"{URL}/count")).json() == {"count": 9}
    assert await cp.count(NS, NAME, F.eq("lang", "de")) == 3

    stats = await cp.collection_stats(NS, NAME)
    assert (stats.points, stats.dimensions, stats.distance) == (9, 4, "Cosine")
    assert 0 <= stats.indexed_vectors <= 9
    assert stats.segments is not None
    assert stats.disk_bytes is not None
    assert stats.disk_bytes > 0
    wire = (await http.get(f"{URL}/stats")).json()
    assert set(wire) == {
        "points",
        "indexedVectors",
        "dimensions",
        "distance",
        "segments",
        "diskBytes",
    }


# -- which collection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "/points", {"points": []}),
        ("POST", "/search", {"vector": [1, 0, 0, 0]}),
        ("POST", "/search/batch", {"searches": [{"vector": [1, 0, 0, 0]}]}),
        ("GET", "/points/1", None),
        ("DELETE", "/points/1", None),
        ("POST", "/points/delete", {"ids": [1]}),
        ("POST", "/count", {}),
        ("GET", "/stats", None),
    ],
)
async def test_every_route_of_an_unknown_collection_is_a_404(
    http: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    url = f"/v1/namespaces/{NS}/collections/unknown{suffix}"

    problem = _problem(await http.request(method, url, json=body), 404)

    assert problem["code"] == "vector.collection_not_found"
    assert "create it first" in problem["detail"]


async def test_the_collection_name_of_the_last_ensure_survives_a_restart(
    connect: Connect,
) -> None:
    async with connect() as (cp, _):
        await cp.ensure_collection(NS, "renamed", _spec(), "shared-collection")
        await cp.upsert_points(NS, "renamed", _points(3))
        assert await cp.count(NS, "renamed") == 3

    async with connect() as (cp, http):
        assert await cp.count(NS, "renamed") == 3
        hits = await cp.search(NS, "renamed", [1.0, 1.0, 0.5, 1.0], k=1)
        assert [(h.id, h.payload) for h in hits] == [("doc-1", {"lang": "de", "year": 2019})]
        assert hits[0].score == pytest.approx(1.0)
        # The default name was never created: no silent fallback to an empty collection.
        info = await cp.collection_info(NS, "renamed", f"{NS}-renamed")
        assert info is None
        assert (await http.get(f"/v1/namespaces/{NS}/collections/renamed/stats")).json()[
            "points"
        ] == 3


async def test_the_openapi_document_describes_every_body(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    path = "/v1/namespaces/{namespace}/collections/{name}"
    search = document["paths"][f"{path}/search"]["post"]

    assert search["summary"]
    assert search["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SearchRequest"
    )
    assert search["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SearchResult"
    )
    for suffix in (
        "/points",
        "/search/batch",
        "/points/{id}",
        "/points/delete",
        "/count",
        "/stats",
    ):
        for operation in document["paths"][f"{path}{suffix}"].values():
            assert operation["summary"]
            assert "200" in operation["responses"]
