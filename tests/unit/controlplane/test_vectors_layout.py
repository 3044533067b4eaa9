"""The embedded collections' layout: one directory per namespace, one owner per collection.

`CollectionRegistry` keeps `<root>/<namespace>/<collectionName>/`; a collectionName
never leaves its namespace, a collection bound to another VectorCollection is
CollectionOwned (409), and the old flat layout moves into place at start.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from llm_infra import errors, vector
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.vector import Point
from llm_infra_controlplane.vectors.registry import (
    BINDINGS_FILE,
    LEGACY_NAMES_FILE,
    CollectionRegistry,
)

SPEC = VectorCollectionSpec.model_validate({"vectors": {"size": 3}})


async def _points(registry: CollectionRegistry, namespace: str, name: str) -> int:
    return await (await registry.store_of(namespace, name)).count()


async def _old_collection(root: Path, directory: str, points: int) -> None:
    """A collection as the flat layout kept it, with `points` points."""
    store, _ = await vector.ensure_collection(
        SPEC, directory, backend="embedded", directory=root / directory
    )
    await store.insert_batch([Point(i, [1.0, float(i), 0.0]) for i in range(points)])
    await store.close()


# -- where collections live, and who owns them ----------------------------------------------------


async def test_a_collection_name_selects_within_the_namespace_only(tmp_path: Path) -> None:
    registry = CollectionRegistry(tmp_path)
    try:
        await registry.ensure("team-b", "docs", "team-b-docs", SPEC)
        await (await registry.store_of("team-b", "docs")).insert_batch([Point(1, [1.0, 0, 0])])
        # team-a asking for team-b's names gets collections of its own, empty ones.
        for trick in ("team-b-docs", "team-b.docs"):
            info = await registry.ensure("team-a", trick, trick, SPEC)
            assert info.points_count == 0
        assert (tmp_path / "team-a" / "team-b-docs").is_dir()
        assert await _points(registry, "team-b", "docs") == 1
        with pytest.raises(errors.ValidationError):
            registry.directory("team-a", "..")
        with pytest.raises(errors.ValidationError):
            registry.directory("..", "docs")
    finally:
        await registry.close()


async def test_a_collection_bound_to_another_vectorcollection_is_a_conflict(
    tmp_path: Path,
) -> None:
    registry = CollectionRegistry(tmp_path)
    try:
        await registry.ensure("team-a", "docs", "shared", SPEC)
        with pytest.raises(errors.CollectionOwned) as taken:
            await registry.ensure("team-a", "other", "shared", SPEC)
        assert taken.value.status == 409
        assert "serves VectorCollection team-a/docs" in taken.value.message
        assert "give team-a/other another collectionName" in taken.value.message
        with pytest.raises(errors.CollectionOwned):
            await registry.info("team-a", "other", "shared")
        with pytest.raises(errors.CollectionOwned):
            await registry.drop_of("team-a", "other", "shared")
        # Another namespace's VectorCollection of the same name is another collection.
        assert (await registry.ensure("team-b", "other", "shared", SPEC)).created
        # Its owner's drop frees the name.
        assert await registry.drop_of("team-a", "docs")
        assert (await registry.ensure("team-a", "other", "shared", SPEC)).created
    finally:
        await registry.close()


async def test_the_spec_default_means_the_vectorcollection_name(tmp_path: Path) -> None:
    registry = CollectionRegistry(tmp_path)
    name = "a" + "b.c-" * 49 + "ddd"
    try:
        info = await registry.ensure("n" * 63, name, SPEC.engine_collection("n" * 63, name), SPEC)
        assert info.collection_name == name
        assert (tmp_path / ("n" * 63) / name).is_dir()
        assert await registry.drop_of("n" * 63, name)
        assert not (tmp_path / ("n" * 63) / name).exists()
    finally:
        await registry.close()


# -- the move from the flat layout ----------------------------------------------------------------


async def test_the_flat_layout_moves_into_namespaces_keeping_its_points(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await _old_collection(tmp_path, "team-a-docs", 3)  # a default name
    await _old_collection(tmp_path, "shared-docs", 2)  # an explicit one
    await _old_collection(tmp_path, "team-docs", 1)
    await _old_collection(tmp_path, "lost-and-found", 1)  # no record names it
    (tmp_path / LEGACY_NAMES_FILE).write_text(
        json.dumps(
            {"team-a/docs": "team-a-docs", "team-b/named": "shared-docs", "team/docs": "team-docs"}
        )
    )

    with caplog.at_level(logging.INFO):
        registry = CollectionRegistry(tmp_path)
    try:
        assert await _points(registry, "team-a", "docs") == 3
        assert await _points(registry, "team-b", "named") == 2
        assert await _points(registry, "team", "docs") == 1
        assert (tmp_path / "team-a" / "docs").is_dir()
        assert (tmp_path / "team-b" / "shared-docs").is_dir()
        assert not (tmp_path / LEGACY_NAMES_FILE).exists()
        assert json.loads((tmp_path / BINDINGS_FILE).read_text()) == {
            "team-a/docs": "docs",
            "team-b/named": "shared-docs",
            "team/docs": "docs",
        }
        assert "moved team-a-docs to team-a/docs" in caplog.text
        assert "lost-and-found is a collection of the old flat layout" in caplog.text
        assert "left in place" in caplog.text
        assert (tmp_path / "lost-and-found").is_dir()
    finally:
        await registry.close()

    again = CollectionRegistry(tmp_path)  # idempotent: nothing left to move, nothing lost
    try:
        assert await _points(again, "team-a", "docs") == 3
    finally:
        await again.close()


async def test_a_half_done_move_finishes_on_the_next_start(tmp_path: Path) -> None:
    await _old_collection(tmp_path, "team-b-docs", 2)
    (tmp_path / "team-a").mkdir()
    # The first collection moved already, before a crash.
    await _old_collection(tmp_path / "team-a", "docs", 4)
    (tmp_path / LEGACY_NAMES_FILE).write_text(
        json.dumps({"team-a/docs": "team-a-docs", "team-b/docs": "team-b-docs"})
    )

    registry = CollectionRegistry(tmp_path)
    try:
        assert await _points(registry, "team-a", "docs") == 4
        assert await _points(registry, "team-b", "docs") == 2
    finally:
        await registry.close()


async def test_a_collection_shared_across_namespaces_stays_with_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await _old_collection(tmp_path, "team-b-docs", 2)
    (tmp_path / LEGACY_NAMES_FILE).write_text(
        json.dumps({"team-a/x": "team-b-docs", "team-b/docs": "team-b-docs"})
    )

    registry = CollectionRegistry(tmp_path)
    try:
        # The directory's own VectorCollection keeps it; the other one has no collection
        # now and says so, rather than sharing one.
        assert await _points(registry, "team-b", "docs") == 2
        with pytest.raises(errors.CollectionNotFound):
            await registry.store_of("team-a", "x")
        assert "team-a/x shared collection team-b-docs with team-b/docs" in caplog.text
    finally:
        await registry.close()


async def test_an_old_collection_named_like_a_namespace_moves_without_mixing(
    tmp_path: Path,
) -> None:
    await _old_collection(tmp_path, "team-a", 2)  # an explicit name, also a namespace's
    await _old_collection(tmp_path, "team-a-docs", 3)
    (tmp_path / LEGACY_NAMES_FILE).write_text(
        json.dumps({"other/x": "team-a", "team-a/docs": "team-a-docs"})
    )

    registry = CollectionRegistry(tmp_path)
    try:
        assert await _points(registry, "other", "x") == 2
        assert await _points(registry, "team-a", "docs") == 3
        assert sorted(p.name for p in (tmp_path / "team-a").iterdir()) == ["docs"]
        assert not (tmp_path / ".flat").exists()
    finally:
        await registry.close()
