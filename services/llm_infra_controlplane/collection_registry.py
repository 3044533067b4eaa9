"""The registry of embedded collections: the control plane's open EdgeStores, one per collection.

The control plane is the one owner of the qdrant-edge directories under
`<data_dir>/collections/<collectionName>/` (ARCHITECTURE.md, "Who owns what").
A store is opened on first use and stays open until the collection is dropped
or the process stops (`close`, from lifespan). Calls on one collection take its
lock, so an ensure, a read and a drop never interleave; different collections
proceed independently. The decisions live in `llm_infra.vector`
(`ensure_collection`, `drop_collection`); this module only holds the stores.

It also remembers which collection serves a VectorCollection (`namespace/name`
→ the collectionName of its last ensure, default `<namespace>-<name>`), in
`<root>/.names.json`, so the vector data API (`routes/vectors.py`) finds a
renamed collection after a restart too.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from llm_infra import errors, jsondoc, vector
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.client import CollectionConfigSummary, CollectionInfo
from llm_infra.vector import CollectionPlan, EdgeStore, IndexPolicy

_logger = logging.getLogger(__name__)
# The API validates names too (client.CollectionName); checked again here because
# the name becomes a path: nothing may reach outside `root`.
_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,255}")
# A dot cannot start a collection name, so this file never collides with a collection directory.
NAMES_FILE = ".names.json"


class CollectionRegistry:
    """The open embedded collections under `root`, keyed by collection name."""

    def __init__(self, root: Path, *, policy: IndexPolicy | None = None) -> None:
        self.root = root
        self._policy = policy
        self._stores: dict[str, EdgeStore] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._names: dict[str, str] = _read_names(root / NAMES_FILE)

    def collection_name(self, namespace: str, name: str) -> str:
        """The collection serving `namespace/name`: the one of its last ensure, or the default."""
        return self._names.get(_key(namespace, name), f"{namespace}-{name}")

    async def store_of(self, namespace: str, name: str) -> EdgeStore:
        """The open store serving VectorCollection `namespace/name` (the data API's lookup).

        CollectionNotFound (404) names the VectorCollection and how to create it.
        """
        collection_name = self.collection_name(namespace, name)
        # Hot path (every search): an open store needs no lock. Ensure and drop
        # remove a store from the map before they change it, so a store found
        # here is never one being replaced.
        if (store := self._stores.get(collection_name)) is not None:
            return store
        try:
            return await self.store(collection_name)
        except errors.CollectionNotFound:
            raise errors.CollectionNotFound(
                f"VectorCollection {namespace}/{name} has no embedded collection"
                f" {collection_name!r}: create it first (PUT"
                f" /v1/namespaces/{namespace}/collections/{name})",
                collection=collection_name,
            ) from None

    def directory(self, collection_name: str) -> Path:
        """The collection's directory; the name is checked so it cannot point elsewhere."""
        if not _COLLECTION_NAME.fullmatch(collection_name):
            raise errors.ValidationError(
                "a collection name is 1-255 letters, digits, '_' or '-'",
                field="collectionName",
                expected="^[a-zA-Z0-9_-]+$",
            )
        return self.root / collection_name

    async def ensure(
        self, namespace: str, name: str, collection_name: str, spec: VectorCollectionSpec
    ) -> CollectionInfo:
        """Create or update the collection as `spec` says (VectorCollection `namespace/name`)."""
        directory = self.directory(collection_name)
        async with self._lock(collection_name):
            store = self._stores.get(collection_name)
            if store is not None:
                if vector.plan_collection(spec, store.config).noop:
                    self._remember(namespace, name, collection_name)
                    return await _info(namespace, name, store, CollectionPlan())
                # Changes (or a refusal) go through ensure_collection, which opens
                # the directory itself: ours must be closed first (one owner per directory).
                await self._close(collection_name)
            opened, decided = await vector.ensure_collection(
                spec, collection_name, backend="embedded", directory=directory, policy=self._policy
            )
            assert isinstance(opened, EdgeStore)  # backend="embedded"
            self._stores[collection_name] = opened
            self._remember(namespace, name, collection_name)
            if not decided.noop:
                changes = "; ".join(vector.describe_changes(decided))
                _logger.info(
                    "collection %s of %s/%s: %s", collection_name, namespace, name, changes
                )
            return await _info(namespace, name, opened, decided)

    async def info(self, namespace: str, name: str, collection_name: str) -> CollectionInfo:
        """The collection and its stats; CollectionNotFound if it was never ensured."""
        async with self._lock(collection_name):
            store = self._open(collection_name)
            return await _info(namespace, name, store, CollectionPlan())

    async def store(self, collection_name: str) -> EdgeStore:
        """The open store of the collection (opened now if need be), for point and search calls."""
        async with self._lock(collection_name):
            return self._open(collection_name)

    async def drop(self, collection_name: str) -> bool:
        """Close and delete the collection with its points; False if there was none."""
        directory = self.directory(collection_name)
        async with self._lock(collection_name):
            await self._close(collection_name)
            dropped = await vector.drop_collection(
                collection_name, backend="embedded", directory=directory
            )
            self._forget(collection_name)
        if dropped:
            _logger.info("collection %s dropped", collection_name)
        return dropped

    async def close(self) -> None:
        """Flush and close every open store (lifespan shutdown)."""
        for collection_name in list(self._stores):
            async with self._lock(collection_name):
                await self._close(collection_name)

    def _open(self, collection_name: str) -> EdgeStore:
        if (store := self._stores.get(collection_name)) is not None:
            return store
        directory = self.directory(collection_name)
        if not directory.is_dir():
            # Checked here, not left to EdgeStore.open: its message names a path of this host.
            raise errors.CollectionNotFound(
                f"no embedded collection {collection_name!r}: PUT it first",
                collection=collection_name,
            )
        store = EdgeStore.open(directory, name=collection_name, policy=self._policy)
        self._stores[collection_name] = store
        return store

    def _remember(self, namespace: str, name: str, collection_name: str) -> None:
        key = _key(namespace, name)
        if self._names.get(key) == collection_name:
            return
        self._names[key] = collection_name
        self._write_names()

    def _forget(self, collection_name: str) -> None:
        kept = {key: value for key, value in self._names.items() if value != collection_name}
        if len(kept) != len(self._names):
            self._names = kept
            self._write_names()

    def _write_names(self) -> None:
        # Atomically: a crash mid-write must leave the old mapping, not half of a new one.
        path = self.root / NAMES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(NAMES_FILE + ".tmp")
        temporary.write_bytes(jsondoc.dumps(self._names, indent=True, sort_keys=True))
        temporary.replace(path)

    def _lock(self, collection_name: str) -> asyncio.Lock:
        return self._locks.setdefault(collection_name, asyncio.Lock())

    async def _close(self, collection_name: str) -> None:
        if (store := self._stores.pop(collection_name, None)) is not None:
            await store.close()


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"  # a namespace never holds "/" (a DNS label)


def _read_names(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    names = jsondoc.loads(path.read_bytes())
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise errors.ValidationError(
            f"{NAMES_FILE} of the collections directory must map 'namespace/name' to a"
            " collection name: fix or delete it (collections then answer under their"
            " default names)",
            field=NAMES_FILE,
        )
    return names


async def _info(
    namespace: str, name: str, store: EdgeStore, decided: CollectionPlan
) -> CollectionInfo:
    stats = await store.stats()
    config = store.config
    return CollectionInfo(
        namespace=namespace,
        name=name,
        collection_name=store.name,
        backend="embedded",
        created=decided.create,
        changes=vector.describe_changes(decided),
        points_count=stats.points,
        indexed_vectors_count=stats.indexed_vectors,
        segments=stats.segments,
        disk_bytes=stats.disk_bytes,
        config=CollectionConfigSummary(
            dimensions=config.dimensions,
            distance=config.distance,
            on_disk=config.on_disk,
            hnsw_m=config.hnsw_m,
            hnsw_ef_construct=config.hnsw_ef_construct,
            quantization=config.quantization,
            payload_indexes=dict(config.payload_indexes),
            aliases=list(config.aliases),
        ),
    )
