"""Regression tests: a vector collection never crosses its namespace (tenants are namespaces).

Against the real app (its lifespan, real NATS, API keys and access rules): team-a's
admin key must not reach team-b's collection through any `collectionName`, default
engine names must not collide across namespaces, and every valid VectorCollection
name (dots, the longest namespace and name) must work end to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra_controlplane.access import admin_key, policy
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings

SPEC = VectorCollectionSpec.model_validate({"vectors": {"size": 4, "distance": "Cosine"}})
B_DOCS = "/v1/namespaces/team-b/collections/docs"


@dataclass
class Tenants:
    http: httpx.AsyncClient
    a: dict[str, str]  # team-a's admin key, as headers
    b: dict[str, str]  # team-b's admin key
    ops: dict[str, str]  # admin on collections everywhere (the operator's role)


@pytest.fixture
async def tenants(tmp_path: Path, nats_url: str) -> AsyncIterator[Tenants]:
    keys: dict[str, str] = {}
    records = []
    for owner in ("alice", "bob", "ops"):
        key, record = await admin_key.issue_api_key(owner)
        keys[owner] = key.get_secret_value()
        records.append(record)
    settings = Settings(
        data_dir=tmp_path,
        nats_url=nats_url,
        auth_mode="api-key",
        api_keys=tuple(records),
        access_rules=(
            policy.AccessRule(
                subjects=("apikey:alice",), namespaces=("team-a",), actions=("admin",)
            ),
            policy.AccessRule(subjects=("apikey:bob",), namespaces=("team-b",), actions=("admin",)),
            policy.AccessRule(subjects=("apikey:ops",), kinds=("collections",), actions=("admin",)),
        ),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
            yield Tenants(http, *(_bearer(keys[o]) for o in ("alice", "bob", "ops")))


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _ensure_body(collection_name: str) -> dict[str, Any]:
    return {"collectionName": collection_name, "spec": SPEC.model_dump(mode="json", by_alias=True)}


async def _ensure(
    http: httpx.AsyncClient, headers: dict[str, str], ns: str, name: str, collection: str
) -> httpx.Response:
    return await http.put(
        f"/v1/namespaces/{ns}/collections/{name}", json=_ensure_body(collection), headers=headers
    )


async def _upsert(
    http: httpx.AsyncClient, headers: dict[str, str], ns: str, name: str, ids: list[int]
) -> None:
    points = [{"id": i, "vector": [1.0, float(i), 0.0, 0.5], "payload": {"ns": ns}} for i in ids]
    response = await http.post(
        f"/v1/namespaces/{ns}/collections/{name}/points", json={"points": points}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["upserted"] == len(ids)


async def _count(http: httpx.AsyncClient, headers: dict[str, str], ns: str, name: str) -> int:
    response = await http.post(f"/v1/namespaces/{ns}/collections/{name}/count", headers=headers)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


async def _search(
    http: httpx.AsyncClient, headers: dict[str, str], ns: str, name: str
) -> list[dict[str, Any]]:
    response = await http.post(
        f"/v1/namespaces/{ns}/collections/{name}/search",
        json={"vector": [1.0, 1.0, 0.0, 0.5], "k": 10},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()["hits"]
    return hits


async def _team_b_docs(t: Tenants) -> str:
    """team-b's `docs`, with three points; its collectionName as the engine reports it."""
    ensured = await _ensure(t.http, t.b, "team-b", "docs", "team-b-docs")
    assert ensured.status_code == 200, ensured.text
    await _upsert(t.http, t.b, "team-b", "docs", [1, 2, 3])
    name: str = ensured.json()["collectionName"]
    return name


# -- finding 1: collectionName never crosses a namespace ---------------------------------------


async def test_team_a_cannot_bind_team_b_collection_by_collection_name(t: Tenants) -> None:
    await _team_b_docs(t)
    bound = await _ensure(t.http, t.a, "team-a", "x", "team-b-docs")
    # Either refused, or a separate collection of team-a's own: never team-b's points.
    assert bound.status_code in (200, 403, 404, 409), bound.text
    if bound.status_code == 200:
        assert bound.json()["pointsCount"] == 0
        assert await _count(t.http, t.a, "team-a", "x") == 0
        await _upsert(t.http, t.a, "team-a", "x", [7])
        hits = await _search(t.http, t.a, "team-a", "x")
        assert {hit["payload"]["ns"] for hit in hits} == {"team-a"}
    assert await _count(t.http, t.b, "team-b", "docs") == 3
    hits = await _search(t.http, t.b, "team-b", "docs")
    assert {hit["payload"]["ns"] for hit in hits} == {"team-b"}


async def test_team_a_cannot_read_or_drop_team_b_collection_by_query(t: Tenants) -> None:
    engine_name = await _team_b_docs(t)
    await _ensure(t.http, t.a, "team-a", "x", "x-own")
    for trick in {engine_name, "team-b-docs", "docs", "team-b.docs"}:
        query = {"collectionName": trick}
        info = await t.http.get("/v1/namespaces/team-a/collections/x", params=query, headers=t.a)
        assert info.status_code in (403, 404, 409, 422), (trick, info.text)
        dropped = await t.http.delete(
            "/v1/namespaces/team-a/collections/x", params=query, headers=t.a
        )
        if dropped.status_code == 200:
            assert dropped.json() == {"dropped": False}, trick
        else:
            assert dropped.status_code in (403, 404, 409, 422), (trick, dropped.text)
    # The caller's own rights never reach team-b directly either.
    assert (await t.http.get(B_DOCS, headers=t.a)).status_code == 403
    assert await _count(t.http, t.b, "team-b", "docs") == 3


async def test_a_collection_name_bound_to_another_vc_of_the_namespace_is_a_conflict(
    t: Tenants,
) -> None:
    assert (await _ensure(t.http, t.a, "team-a", "docs", "shared")).status_code == 200
    await _upsert(t.http, t.a, "team-a", "docs", [1, 2])
    taken = await _ensure(t.http, t.a, "team-a", "other", "shared")
    assert taken.status_code == 409, taken.text
    assert "team-a/docs" in taken.json()["detail"]
    query = {"collectionName": "shared"}
    other = "/v1/namespaces/team-a/collections/other"
    assert (await t.http.get(other, params=query, headers=t.a)).status_code == 409
    assert (await t.http.delete(other, params=query, headers=t.a)).status_code == 409
    assert await _count(t.http, t.a, "team-a", "docs") == 2


# -- finding 2: default engine names are injective ----------------------------------------------


async def test_team_slash_a_docs_and_team_a_slash_docs_are_separate(t: Tenants) -> None:
    for ns, name, ids in (("team", "a-docs", [1, 2]), ("team-a", "docs", [5])):
        default = VectorCollectionSpec.model_validate(SPEC.model_dump()).engine_collection(ns, name)
        ensured = await _ensure(t.http, t.ops, ns, name, default)
        assert ensured.status_code == 200, ensured.text
        assert ensured.json()["created"], (ns, name)
        await _upsert(t.http, t.ops, ns, name, ids)
    assert await _count(t.http, t.ops, "team", "a-docs") == 2
    assert await _count(t.http, t.ops, "team-a", "docs") == 1
    dropped = await t.http.delete("/v1/namespaces/team/collections/a-docs", headers=t.ops)
    assert dropped.json() == {"dropped": True}
    assert await _count(t.http, t.ops, "team-a", "docs") == 1


# -- finding 21: every valid VectorCollection name works ----------------------------------------


@pytest.mark.parametrize(
    ("ns", "name"),
    [("team-a", "docs.v2"), ("n" * 63, "a" + "b.c-" * 49 + "d" * 3)],
    ids=["dotted", "longest"],
)
async def test_dotted_and_long_names_work_end_to_end(t: Tenants, ns: str, name: str) -> None:
    assert len(name) <= 253
    default = SPEC.engine_collection(ns, name)
    ensured = await _ensure(t.http, t.ops, ns, name, default)
    assert ensured.status_code == 200, ensured.text
    await _upsert(t.http, t.ops, ns, name, [1, 2, 3])
    hits = await _search(t.http, t.ops, ns, name)
    assert len(hits) == 3
    assert await _count(t.http, t.ops, ns, name) == 3


# The fixture under a short name.
@pytest.fixture
def t(tenants: Tenants) -> Tenants:
    return tenants
