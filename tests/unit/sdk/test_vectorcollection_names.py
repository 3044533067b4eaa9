"""The engine name of a VectorCollection: one per (namespace, name), never shared, always valid."""

from __future__ import annotations

import hashlib
import re

import pydantic
import pytest

from llm_infra.api.v1alpha1.vectorcollection import (
    MAX_COLLECTION_NAME,
    VectorCollectionSpec,
    default_collection_name,
)
from llm_infra.client import EnsureCollectionRequest

SPEC = VectorCollectionSpec.model_validate({"vectors": {"size": 4}})
LONGEST_NAMESPACE = "n" * 63
LONGEST_NAME = ("a" * 62 + ".") * 4 + "b"  # 253: a DNS subdomain at its limit


def test_the_default_is_namespace_dot_name() -> None:
    assert default_collection_name("team-a", "docs") == "team-a.docs"
    assert default_collection_name("team-a", "docs.v2") == "team-a.docs.v2"
    assert SPEC.engine_collection("team-a", "docs") == "team-a.docs"


def test_an_explicit_collection_name_wins_and_may_hold_dots() -> None:
    spec = SPEC.model_copy(update={"collection_name": "docs.v2"})
    assert spec.engine_collection("team-a", "docs") == "docs.v2"
    assert (
        VectorCollectionSpec.model_validate(
            {"vectors": {"size": 4}, "collectionName": "a.b_c-d"}
        ).collection_name
        == "a.b_c-d"
    )
    for refused in (".", "..", ".hidden", "a/b", "a" * 256):
        with pytest.raises(pydantic.ValidationError):
            VectorCollectionSpec.model_validate({"vectors": {"size": 4}, "collectionName": refused})
        with pytest.raises(pydantic.ValidationError):
            EnsureCollectionRequest.model_validate({"collectionName": refused, "spec": {}})


def test_namespaces_that_share_a_prefix_never_share_a_default() -> None:
    # The old `<namespace>-<name>` made these one collection.
    assert default_collection_name("team", "a-docs") != default_collection_name("team-a", "docs")
    pairs = [
        (ns, name)
        for ns in ("team", "team-a", "team-a-b", "a", "a-b")
        for name in ("docs", "a-docs", "b-docs", "a.docs", "docs.a", "a-b-docs", "b.docs")
    ]
    names = [default_collection_name(ns, name) for ns, name in pairs]
    assert len(set(names)) == len(pairs)
    for (ns, _), engine in zip(pairs, names, strict=True):
        assert engine.split(".", 1)[0] == ns  # the first dot splits the namespace off


def test_the_longest_names_take_the_hashed_form_within_qdrant_limit() -> None:
    engine = default_collection_name(LONGEST_NAMESPACE, LONGEST_NAME)
    assert len(engine) <= MAX_COLLECTION_NAME == 255
    digest = hashlib.sha256(f"{LONGEST_NAMESPACE}/{LONGEST_NAME}".encode()).hexdigest()[:32]
    assert engine.startswith(f"{LONGEST_NAMESPACE}.aaaa")
    assert engine.endswith(f"_{digest}")
    assert re.fullmatch(r"[a-zA-Z0-9_-][a-zA-Z0-9_.-]*", engine)
    EnsureCollectionRequest.model_validate({"collectionName": engine, "spec": SPEC.model_dump()})
    # Two names that share the kept prefix still differ.
    other = LONGEST_NAME[:-1] + "c"
    assert default_collection_name(LONGEST_NAMESPACE, other) != engine
    # A plain form exactly at the limit stays plain.
    name = "x" * (255 - 64)
    assert default_collection_name(LONGEST_NAMESPACE, name) == f"{LONGEST_NAMESPACE}.{name}"
    assert "_" in default_collection_name(LONGEST_NAMESPACE, name + "x")


def test_the_plain_and_the_hashed_forms_never_meet() -> None:
    # DNS names hold no "_": a plain form never has one, a hashed form always does.
    plain = default_collection_name("team-a", "docs")
    hashed = default_collection_name(LONGEST_NAMESPACE, LONGEST_NAME)
    assert "_" not in plain
    assert "_" in hashed.split(".", 1)[1]
