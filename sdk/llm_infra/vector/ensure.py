"""ensure_collection and drop_collection: a collection's life cycle, as its VectorCollection says.

Used the same way by the operator (Qdrant server collections) and by the
control plane (embedded ones): create if missing, change mutable settings in
place (payload indexes, HNSW, quantization, aliases), refuse with
CollectionConfigMismatch, touching nothing, when dimensions or distance differ.
Idempotent: a second call with the same spec returns an empty plan, a second
drop returns False. `plan_collection` is the pure half (what ensure would do)
and `describe_changes` puts a plan into words for status, events and the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from llm_infra import errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.vector._base import VectorStore
from llm_infra.vector._client import qdrant_client
from llm_infra.vector._config import CollectionConfig
from llm_infra.vector._plan import CollectionPlan, plan
from llm_infra.vector.edge import SHARD_DIR, EdgeStore, IndexPolicy

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient

# qdrant-edge's WAL directory, which it flocks while a shard is open: that lock is
# what makes a second open fail with WouldBlock (edge.CollectionLocked).
_WAL_DIR = "wal"


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


async def drop_collection(
    name: str,
    *,
    backend: Literal["embedded", "qdrant"],
    directory: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    location: str | None = None,
    client: AsyncQdrantClient | None = None,
) -> bool:
    """Delete the collection `name` with its points; return whether there was one. Idempotent.

    Embedded: removes `directory`, only while no store holds it open (else
    CollectionLocked, and nothing is removed). Qdrant: deletes the collection at
    `url` (or in qdrant-client's local mode at `location`), or through an
    existing `client`, which is left open.
    """
    if backend == "embedded":
        if directory is None:
            raise errors.ConfigError("an embedded collection needs a directory", key="directory")
        # A big collection takes a while to delete: off the event loop.
        return await asyncio.to_thread(_drop_directory, Path(directory), name)
    if client is not None:
        return await _drop_qdrant(client, name)
    own = qdrant_client(url, api_key=api_key, location=location)
    try:
        return await _drop_qdrant(own, name)
    finally:
        await own.close()


def plan_collection(
    spec: VectorCollectionSpec, observed: CollectionConfig | None
) -> CollectionPlan:
    """What `ensure_collection` would do to a collection configured as `observed` (None: none)."""
    return plan(CollectionConfig.from_spec(spec), observed)


def describe_changes(decided: CollectionPlan) -> list[str]:
    """The plan in words, one change per item (empty when the collection already matched)."""
    changes = ["create collection"] if decided.create else []
    if decided.mismatch is not None:
        m = decided.mismatch
        changes.append(f"refuse: {m.field} is {m.actual}, the spec asks for {m.expected}")
    changes += [f"drop payload index {field}" for field in decided.drop_indexes]
    changes += [
        f"create payload index {field} ({kind})" for field, kind in decided.create_indexes.items()
    ]
    if decided.index_settings and not decided.create:
        changes.append("update HNSW settings")
    if decided.quantization and not decided.create:
        changes.append("update quantization")
    changes += [f"add alias {alias}" for alias in decided.add_aliases]
    changes += [f"remove alias {alias}" for alias in decided.remove_aliases]
    return changes


async def _drop_qdrant(client: AsyncQdrantClient, name: str) -> bool:
    with errors.translate(errors.from_qdrant):
        if not await client.collection_exists(name):
            return False
        return await client.delete_collection(name)


def _drop_directory(root: Path, name: str) -> bool:
    if not root.is_dir():
        return False
    with contextlib.ExitStack() as held:
        wal = root / SHARD_DIR / _WAL_DIR
        if wal.is_dir():
            # Take the store's own lock and keep it while deleting: an open store
            # refuses the drop, and no store can open the directory halfway through.
            fd = os.open(wal, os.O_RDONLY)
            held.callback(os.close, fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise errors.CollectionLocked(
                    f"collection {name!r} is open in a store: close it before dropping it"
                    " (one owner per directory)",
                    collection=name,
                ) from None
        with errors.translate():
            shutil.rmtree(root)
    return True
