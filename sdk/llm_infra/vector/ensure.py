"""ensure_collection: make a collection match its VectorCollection spec, on either backend.

Used the same way by the operator (Qdrant server collections) and by the
control plane (embedded ones): create if missing, change mutable settings in
place (payload indexes, HNSW, quantization, aliases), refuse with
CollectionConfigMismatch, touching nothing, when dimensions or distance differ.
Idempotent: a second call with the same spec returns an empty plan.
"""

from __future__ import annotations

import os
from typing import Literal

from llm_infra import errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.vector._base import VectorStore
from llm_infra.vector._config import CollectionConfig
from llm_infra.vector._plan import CollectionPlan
from llm_infra.vector.edge import EdgeStore, IndexPolicy


async def ensure_collection(
    spec: VectorCollectionSpec,
    name: str,
    *,
    backend: Literal["embedded", "qdrant"] | None = None,
    directory: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    location: str | None = None,
    policy: IndexPolicy | None = None,
) -> tuple[VectorStore, CollectionPlan]:
    """Open, creating or updating, the collection `name` as `spec` says; return it and the plan.

    `backend` defaults to the spec's (`spec.backend`), else embedded. Embedded
    collections live in `directory`; Qdrant ones at `url` (the spec's when unset),
    or in qdrant-client's local mode with `location=":memory:"`.
    """
    config = CollectionConfig.from_spec(spec)
    chosen = backend or ("qdrant" if spec.backend and spec.backend.qdrant else "embedded")
    if chosen == "embedded":
        if directory is None:
            raise errors.ConfigError("an embedded collection needs a directory", key="directory")
        store = EdgeStore.open(directory, config, name=name, policy=policy)
        return store, store.last_plan
    # Imported here: only Qdrant-server collections need the network client.
    from llm_infra.vector.server import QdrantStore

    target = url or (spec.backend.qdrant.url if spec.backend and spec.backend.qdrant else None)
    server = await QdrantStore.connect(
        name, config, url=None if location else target, api_key=api_key, location=location
    )
    return server, server.last_plan
