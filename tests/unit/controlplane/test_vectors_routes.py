"""The vector data API's pieces without the app: the filter wire form and the registry's names.

`PointFilter` is checked against `F` both structurally and by what it
selects in a real in-process EdgeStore (qdrant-edge, no network); the
registry's VectorCollection → collection mapping is checked across instances,
as a restart would see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from llm_infra import errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.client import (
    DeletePointsRequest,
    PointFilter,
    SearchBatchRequest,
    SearchRequest,
    UpsertRequest,
)
from llm_infra.vector import CollectionConfig, EdgeStore, F, MetadataFilter, Point
from llm_infra_controlplane.vectors.registry import BINDINGS_FILE, CollectionRegistry


def _spec(size: int = 3) -> VectorCollectionSpec:
    return VectorCollectionSpec.model_validate({"vectors": {"size": size}})


def _locations(exc: pydantic.ValidationError) -> list[tuple[str | int, ...]]:
    return [tuple(error["loc"]) for error in exc.errors()]


# -- filters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node",
    [
        F.eq("lang", "en"),
        F.eq("year", 2020),
        F.eq("draft", False),
        F.in_("lang", ["en", "de"]),
        F.contains("title", "vector"),
        F.gte("year", 2020),
        F.and_(F.eq("lang", "en"), F.lt("year", 2024)),
        F.or_(F.eq("lang", "en"), F.eq("lang", "de")),
        F.not_(F.eq("lang", "en")),
        F.and_(F.or_(F.eq("a", 1), F.eq("b", 2)), F.not_(F.in_("c", ["x"]))),
    ],
)
def test_a_filter_survives_the_wire_unchanged(node: MetadataFilter) -> None:
    wire = PointFilter.from_metadata(node).model_dump(mode="json", by_alias=True)

    assert PointFilter.model_validate(wire).to_metadata() == node


def test_the_wire_form_is_qdrants_must_should_must_not_in_camel_case() -> None:
    node = F.and_(F.eq("lang", "en"), F.gte("year", 2020), ~F.in_("status", ["draft"]))

    wire = PointFilter.from_metadata(node).model_dump(mode="json", by_alias=True, exclude_none=True)

    assert wire == {
        "must": [
            {"key": "lang", "match": {"value": "en"}},
            {"key": "year", "range": {"gte": 2020.0}},
            {"mustNot": [{"key": "status", "match": {"any": ["draft"]}}]},
        ]
    }


def test_ranges_with_two_bounds_and_empty_filters_convert() -> None:
    wire = PointFilter.model_validate({"must": [{"key": "y", "range": {"gte": 1, "lt": 5}}]})
    assert wire.to_metadata() == F.and_(F.gte("y", 1), F.lt("y", 5))
    assert PointFilter.model_validate({}).to_metadata() is None
    assert PointFilter.model_validate({"must": []}).to_metadata() is None


def test_a_nested_empty_filter_is_refused_naming_the_filter() -> None:
    wire = PointFilter.model_validate({"mustNot": [{}]})

    with pytest.raises(errors.ValidationError) as refused:
        wire.to_metadata()
    assert refused.value.field == "filter"


@pytest.mark.parametrize(
    ("document", "location"),
    [
        ({"must": [{"key": "a", "match": {"value": "x", "any": ["y"]}}]}, ("must", 0, "condition")),
        ({"must": [{"key": "a"}]}, ("must", 0, "condition")),
        ({"must": [{"key": "a", "range": {}}]}, ("must", 0, "condition", "range")),
        ({"must": [{"key": "a", "match": {"value": 1.5}}]}, ("must", 0, "condition", "match")),
        ({"must": [{"key": "", "match": {"value": "x"}}]}, ("must", 0, "condition", "key")),
        ({"must": [{"key": "a", "match": {"any": []}}]}, ("must", 0, "condition", "match", "any")),
        ({"mustnot": []}, ("mustnot",)),
        ({"should": [{"must": [{"key": "a", "match": {"valu": 1}}]}]}, ("should", 0, "filter")),
    ],
)
def test_an_invalid_filter_names_where_it_is_wrong(
    document: dict[str, Any], location: tuple[str | int, ...]
) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        PointFilter.model_validate(document)

    assert any(loc[: len(location)] == location for loc in _locations(refused.value))


async def test_a_wire_filter_selects_what_f_selects_in_the_engine(tmp_path: Path) -> None:
    config = CollectionConfig(
        dimensions=2, payload_indexes={"lang": "keyword", "year": "integer", "title": "text"}
    )
    async with EdgeStore.open(tmp_path / "c", config) as store:
        rows = [
            ("en", 2019, "vector search"),
            ("en", 2021, "graph search"),
            ("de", 2022, "vector index"),
            ("fr", 2023, "nothing here"),
        ]
        await store.insert_batch(
            Point(i, [1.0, float(i)], {"lang": lang, "year": year, "title": title})
            for i, (lang, year, title) in enumerate(rows)
        )
        nodes = [
            F.eq("lang", "en"),
            F.ne("lang", "en"),
            F.eq("year", 2021.0),
            F.in_("lang", ["de", "fr"]) & F.gt("year", 2022),
            F.or_(F.contains("title", "vector"), F.lte("year", 2019)),
            ~(F.eq("lang", "en") | F.eq("lang", "de")),
        ]
        for node in nodes:
            wire = PointFilter.from_metadata(node).model_dump(mode="json", by_alias=True)
            converted = PointFilter.model_validate(wire).to_metadata()
            assert converted is not None
            assert await store.count(converted) == await store.count(node), node


# -- requests ------------------------------------------------------------------------------------


def test_requests_are_camel_case_and_refuse_unknown_members() -> None:
    search = SearchRequest.model_validate(
        {"vector": [1, 0], "hnswEf": 64, "withPayload": False, "withVector": True}
    )
    assert (search.hnsw_ef, search.with_payload, search.with_vector, search.k) == (
        64,
        False,
        True,
        10,
    )
    with pytest.raises(pydantic.ValidationError) as refused:
        SearchRequest.model_validate({"vector": [1, 0], "topK": 3})
    assert _locations(refused.value) == [("topK",)]


@pytest.mark.parametrize(
    ("document", "location"),
    [
        ({"vector": []}, ("vector",)),
        ({"vector": [1.0], "k": 0}, ("k",)),
        ({"vector": [1.0], "k": 1001}, ("k",)),
        ({"vector": [1.0], "hnswEf": 0}, ("hnswEf",)),
        ({"vector": ["x"]}, ("vector", 0)),
    ],
)
def test_a_bad_search_names_the_field(
    document: dict[str, Any], location: tuple[str | int, ...]
) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        SearchRequest.model_validate(document)
    assert _locations(refused.value)[0] == location


def test_batch_sizes_are_bounded() -> None:
    point = {"id": 1, "vector": [1.0]}
    with pytest.raises(pydantic.ValidationError) as too_many:
        UpsertRequest.model_validate({"points": [point] * 1001})
    assert _locations(too_many.value) == [("points",)]
    assert len(UpsertRequest.model_validate({"points": [point] * 1000}).points) == 1000
    with pytest.raises(pydantic.ValidationError):
        SearchBatchRequest.model_validate({"searches": []})


@pytest.mark.parametrize("bad_id", [-1, 1.5, "", None, True])
def test_a_point_id_is_an_unsigned_int_or_a_string(bad_id: object) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        UpsertRequest.model_validate({"points": [{"id": bad_id, "vector": [1.0]}]})
    assert all(loc[:3] == ("points", 0, "id") for loc in _locations(refused.value))


def test_delete_takes_ids_or_a_filter() -> None:
    assert DeletePointsRequest.model_validate({"ids": [1, "doc-1"]}).ids == [1, "doc-1"]
    by_filter = DeletePointsRequest.model_validate({"filter": {"must": []}})
    assert by_filter.filter is not None
    for document in ({}, {"ids": [1], "filter": {}}):
        with pytest.raises(pydantic.ValidationError, match="exactly one of ids or filter"):
            DeletePointsRequest.model_validate(document)


# -- the registry's names ------------------------------------------------------------------------


async def test_the_collection_of_a_vectorcollection_is_remembered_across_restarts(
    tmp_path: Path,
) -> None:
    registry = CollectionRegistry(tmp_path)
    assert registry.collection_name("team-a", "docs") == "docs"
    await registry.ensure("team-a", "docs", "shared-docs", _spec())
    store = await registry.store_of("team-a", "docs")
    assert store.name == "shared-docs"
    await registry.close()

    reopened = CollectionRegistry(tmp_path)
    assert reopened.collection_name("team-a", "docs") == "shared-docs"
    assert reopened.collection_name("team-b", "docs") == "docs"
    assert (await reopened.store_of("team-a", "docs")).name == "shared-docs"

    assert await reopened.drop_of("team-a", "docs")
    assert reopened.collection_name("team-a", "docs") == "docs"
    assert CollectionRegistry(tmp_path).collection_name("team-a", "docs") == "docs"
    await reopened.close()


async def test_the_last_ensure_decides_the_collection(tmp_path: Path) -> None:
    registry = CollectionRegistry(tmp_path)
    await registry.ensure("team-a", "docs", "docs-v1", _spec())
    await registry.ensure("team-a", "docs", "docs-v2", _spec())

    assert (await registry.store_of("team-a", "docs")).name == "docs-v2"
    assert CollectionRegistry(tmp_path).collection_name("team-a", "docs") == "docs-v2"
    await registry.close()


async def test_an_unknown_vectorcollection_is_not_found_with_the_fix(tmp_path: Path) -> None:
    registry = CollectionRegistry(tmp_path)

    with pytest.raises(errors.CollectionNotFound) as missing:
        await registry.store_of("team-a", "docs")
    assert missing.value.collection == "docs"
    assert "team-a/docs" in missing.value.message
    assert "PUT /v1/namespaces/team-a/collections/docs" in missing.value.message


def test_a_damaged_bindings_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / BINDINGS_FILE).write_text('["not", "a", "mapping"]')

    with pytest.raises(errors.ValidationError) as refused:
        CollectionRegistry(tmp_path)
    assert refused.value.field == BINDINGS_FILE
    assert "fix or delete it" in refused.value.message
