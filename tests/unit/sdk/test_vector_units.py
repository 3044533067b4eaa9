"""llm_infra.vector's pure parts: filters, ids, input checks, spec -> config, the ensure plan."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import models as qm

from llm_infra import errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.vector import CollectionConfig, EdgeStore, F, _ids, normalize, normalize_batch
from llm_infra.vector._checks import Vector, check_batch, check_query
from llm_infra.vector._plan import plan


def test_filter_translates_to_qdrant_client_tree() -> None:
    query = F.eq("lang", "en") & (F.gte("year", 2020) | ~F.in_("status", ["draft", "gone"]))
    assert query.to_qdrant() == qm.Filter(
        must=[
            qm.Filter(must=[qm.FieldCondition(key="lang", match=qm.MatchValue(value="en"))]),
            qm.Filter(
                should=[
                    qm.Filter(must=[qm.FieldCondition(key="year", range=qm.Range(gte=2020.0))]),
                    qm.Filter(
                        must_not=[
                            qm.Filter(
                                must=[
                                    qm.FieldCondition(
                                        key="status", match=qm.MatchAny(any=["draft", "gone"])
                                    )
                                ]
                            )
                        ]
                    ),
                ]
            ),
        ]
    )


def test_filter_translates_to_edge_tree() -> None:
    edge = (F.ne("lang", "de") & F.contains("body", "retrieval")).to_edge()
    assert len(edge.must) == 2
    assert edge.must[0].must_not[0].key == "lang"
    assert edge.must[1].must[0].key == "body"


def test_float_equality_becomes_a_closed_range() -> None:
    translated = F.eq("score", 0.5).to_qdrant()
    inner = translated.must[0]
    assert [c.range for c in inner.must] == [qm.Range(gte=0.5), qm.Range(lte=0.5)]


def test_filter_fields_and_bad_filters() -> None:
    assert sorted((F.eq("a", 1) & ~F.lt("b", 2)).fields()) == ["a", "b"]
    with pytest.raises(errors.ValidationError):
        F.in_("a", [])
    with pytest.raises(errors.ValidationError):
        F.gt("a", True)
    with pytest.raises(errors.ValidationError):
        F.eq("a", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(errors.ValidationError):
        F.and_()


def test_ids_map_strings_to_stable_uuids_and_keep_the_original() -> None:
    stored, original = _ids.to_qdrant("docs/readme.md")
    assert original == "docs/readme.md"
    assert _ids.to_qdrant("docs/readme.md")[0] == stored
    assert uuid.UUID(str(stored)).version == 5
    assert _ids.from_qdrant(stored, {_ids.ORIGINAL_ID_KEY: original, "a": 1}) == original
    assert _ids.public_payload({_ids.ORIGINAL_ID_KEY: original, "a": 1}) == {"a": 1}
    some = uuid.uuid4()
    assert _ids.to_qdrant(some) == (str(some), None)
    assert _ids.to_qdrant(str(some)) == (str(some), None)
    assert _ids.to_qdrant(7) == (7, None)
    for bad in (-1, True, "", 1.5):
        with pytest.raises(errors.ValidationError):
            _ids.to_qdrant(bad)  # type: ignore[arg-type]


def test_check_batch_reports_each_bad_vector_by_position() -> None:
    vectors: list[Vector] = [
        [1.0, 0.0], [math.nan, 1.0], [1.0], [], [0.0, math.inf], np.array([0.5, 0.5])
    ]  # fmt: skip
    rows, failed = check_batch(vectors, 2)
    assert rows[5] == [0.5, 0.5]
    assert {i: type(e) for i, e in failed.items()} == {
        1: errors.InvalidVector,
        2: errors.DimensionMismatch,
        3: errors.InvalidVector,
        4: errors.InvalidVector,
    }
    mismatch = failed[2]
    assert isinstance(mismatch, errors.DimensionMismatch)
    assert (mismatch.expected, mismatch.actual) == (2, 1)


def test_check_query() -> None:
    assert check_query((1.0, 2.0), 2) == [1.0, 2.0]
    with pytest.raises(errors.DimensionMismatch):
        check_query([1.0], 2)
    with pytest.raises(errors.InvalidVector):
        check_query([1.0, math.nan], 2)
    with pytest.raises(errors.InvalidVector):
        check_query([], 2)


def test_normalize() -> None:
    assert normalize([3.0, 4.0]) == pytest.approx([0.6, 0.8])
    assert np.allclose(np.linalg.norm(normalize_batch([[3, 4], [1, 0]]), axis=1), 1.0)
    with pytest.raises(errors.InvalidVector):
        normalize([0.0, 0.0])


def _spec(**fields: object) -> VectorCollectionSpec:
    return VectorCollectionSpec.model_validate({"vectors": {"size": 8}, **fields})


def test_config_from_spec_tiers_and_explicit_quantization() -> None:
    assert CollectionConfig.from_spec(_spec()).quantization is None
    warm = CollectionConfig.from_spec(_spec(tier="warm"))
    assert (warm.quantization, warm.rescore, warm.oversampling) == ("scalar", True, 2.0)
    cold = CollectionConfig.from_spec(_spec(tier="cold"))
    assert (cold.quantization, cold.on_disk) == ("binary", True)
    product = CollectionConfig.from_spec(_spec(quantization={"product": {"compression": "x32"}}))
    assert (product.quantization, product.product_compression) == ("product", "x32")
    indexed = CollectionConfig.from_spec(
        _spec(payloadIndexes=[{"field": "lang", "type": "keyword"}], search={"hnswEf": 96})
    )
    assert (indexed.payload_indexes, indexed.hnsw_ef) == ({"lang": "keyword"}, 96)


def test_config_refuses_unknown_distance_and_round_trips_json() -> None:
    with pytest.raises(errors.UnknownDistance):
        CollectionConfig(dimensions=4, distance="Hamming")  # type: ignore[arg-type]
    config = CollectionConfig(dimensions=4, payload_indexes={"a": "keyword"}, aliases=("x",))
    assert CollectionConfig.from_json(config.to_json()) == config


def test_plan_create_noop_update_and_mismatch() -> None:
    base = CollectionConfig(dimensions=8, payload_indexes={"lang": "keyword", "year": "integer"})
    created = plan(base, None)
    assert created.create
    assert created.create_indexes == base.payload_indexes
    assert plan(base, base).noop

    changed = CollectionConfig(
        dimensions=8,
        hnsw_m=32,
        quantization="scalar",
        payload_indexes={"lang": "text"},
        aliases=("kb",),
    )
    update = plan(changed, base)
    assert (update.index_settings, update.quantization) == (True, True)
    assert update.create_indexes == {"lang": "text"}
    assert update.drop_indexes == ("lang", "year")
    assert update.add_aliases == ("kb",)

    refused = plan(CollectionConfig(dimensions=16), base)
    assert refused.mismatch is not None
    assert (refused.mismatch.field, refused.mismatch.expected, refused.mismatch.actual) == (
        "dimensions",
        "16",
        "8",
    )


def test_a_payload_index_that_is_no_path_is_refused_naming_it(tmp_path: Path) -> None:
    config = CollectionConfig(dimensions=4, payload_indexes={"bad\npath": "keyword"})
    with pytest.raises(errors.ValidationError) as refused:
        EdgeStore.open(tmp_path / "c", config)
    assert refused.value.field == "payload_indexes"
    assert "not a payload path" in refused.value.message
