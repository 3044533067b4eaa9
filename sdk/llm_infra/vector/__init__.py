"""llm_infra.vector: vector collections on the Qdrant engine, one async API for every backend.

    from llm_infra.vector import CollectionConfig, EdgeStore, F, Point

    store = EdgeStore.open("data/docs", CollectionConfig(dimensions=384))
    await store.insert_batch([Point("doc-1", embedding, {"lang": "en"})])
    hits = await store.search(query, k=5, filter=F.eq("lang", "en"))

`EdgeStore` runs the Qdrant core in process (qdrant-edge; the default, and
what `llm-infra up` serves). The same API over a Qdrant server is
`QdrantStore`. `ensure_collection` / `drop_collection` run a collection's life
cycle from its VectorCollection spec, on either backend (the operator and the
control plane call them). Errors are `llm_infra.errors` (vector category).
"""

from typing import TYPE_CHECKING, Any

from llm_infra.vector._base import UnindexedFilterWarning, VectorStore
from llm_infra.vector._checks import normalize, normalize_batch
from llm_infra.vector._client import qdrant_client
from llm_infra.vector._config import CollectionConfig
from llm_infra.vector._filter import F, MetadataFilter
from llm_infra.vector._plan import CollectionPlan
from llm_infra.vector._types import CollectionStats, Hit, InsertResult, Point, PointId, Record
from llm_infra.vector.edge import EdgeStore, IndexPolicy
from llm_infra.vector.ensure import (
    describe_changes,
    drop_collection,
    ensure_collection,
    plan_collection,
)

if TYPE_CHECKING:
    from llm_infra.vector.server import QdrantStore

__all__ = [
    "CollectionConfig",
    "CollectionPlan",
    "CollectionStats",
    "EdgeStore",
    "F",
    "Hit",
    "IndexPolicy",
    "InsertResult",
    "MetadataFilter",
    "Point",
    "PointId",
    "QdrantStore",
    "Record",
    "UnindexedFilterWarning",
    "VectorStore",
    "describe_changes",
    "drop_collection",
    "ensure_collection",
    "normalize",
    "normalize_batch",
    "plan_collection",
    "qdrant_client",
]


def __getattr__(name: str) -> Any:
    # QdrantStore loads the network client (qdrant-client, httpx, grpc): only on first use.
    if name == "QdrantStore":
        from llm_infra.vector.server import QdrantStore

        return QdrantStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
