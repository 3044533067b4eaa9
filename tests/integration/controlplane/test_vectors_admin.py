"""The collection admin API of a real `llm-infra up --data DIR`, driven by the SDK client.

A collection written before the server starts is adopted; ensure, refuse,
drop and restart happen against the real process, as the operator would see them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_infra import errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.client import ControlPlaneClient
from llm_infra.vector import CollectionConfig, EdgeStore, Point
from tests.servers.controlplane import ControlPlaneProcess


def _spec(size: int = 4, *indexed: str) -> VectorCollectionSpec:
    return VectorCollectionSpec.model_validate(
        {
            "vectors": {"size": size},
            "payloadIndexes": [{"field": field, "type": "keyword"} for field in indexed],
        }
    )


async def test_the_api_of_a_real_control_plane_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seeded = EdgeStore.open(
        data / "collections" / "team-a" / "team-a-docs", CollectionConfig(dimensions=4)
    )
    await seeded.insert_batch([Point(i, [1.0, float(i), 0.5, 0.0]) for i in range(5)])
    await seeded.close()

    process = ControlPlaneProcess(tmp_path, data).start()
    try:
        async with ControlPlaneClient(process.url, token=process.token) as cp:
            adopted = await cp.collection_info("team-a", "docs", "team-a-docs")
            assert adopted is not None
            assert (adopted.points_count, adopted.config.dimensions) == (5, 4)

            same = await cp.ensure_collection("team-a", "docs", _spec(4), "team-a-docs")
            assert (same.created, same.changes, same.points_count) == (False, [], 5)
            indexed = await cp.ensure_collection("team-a", "docs", _spec(4, "lang"), "team-a-docs")
            assert indexed.changes == ["create payload index lang (keyword)"]

            with pytest.raises(errors.CollectionConfigMismatch) as refused:
                await cp.ensure_collection("team-a", "docs", _spec(8, "lang"), "team-a-docs")
            assert refused.value.field == "dimensions"

            other = await cp.ensure_collection("team-b", "scratch", _spec(3), "team-b-scratch")
            assert other.created
            assert await cp.drop_collection("team-b", "scratch", "team-b-scratch") is True
            assert await cp.drop_collection("team-b", "scratch", "team-b-scratch") is False
            assert await cp.collection_info("team-b", "scratch", "team-b-scratch") is None
    finally:
        process.stop()

    process.start()
    try:
        async with ControlPlaneClient(process.url, token=process.token) as cp:
            kept = await cp.collection_info("team-a", "docs", "team-a-docs")
            assert kept is not None
            assert (kept.points_count, kept.config.dimensions) == (5, 4)
            assert kept.config.payload_indexes == {"lang": "keyword"}
            again = await cp.ensure_collection("team-a", "docs", _spec(4, "lang"), "team-a-docs")
            assert (again.created, again.changes) == (False, [])
            assert await cp.collection_info("team-b", "scratch", "team-b-scratch") is None
    finally:
        process.stop()
