"""The registry of the collections the control plane serves: embedded ones, and Qdrant-backed ones.

The control plane is the one owner of the qdrant-edge directories under
`<data_dir>/collections/<collectionName>/` (docs/architecture.md, "Who owns what").
A store is opened on first use and stays open until the collection is dropped
or the process stops (`close`, from lifespan). Calls on one collection take its
lock, so an ensure, a read and a drop never interleave; different collections
proceed independently. The decisions live in `llm_infra.vector`
(`ensure_collection`, `drop_collection`); this module only holds the stores.

It also remembers which collection serves a VectorCollection (`namespace/name`
→ the collectionName of its last ensure, default `<namespace>-<name>`), in
`<root>/.names.json`, so the vector data API (`vectors.routes`) finds a
renamed collection after a restart too.

VectorCollections with `backend.qdrant` live on a Qdrant server that the
operator ensures them on; the control plane only proxies their point and
search calls (`serve_qdrant` / `forget_qdrant`, fed by whoever watches the
VectorCollections). Their stores are `QdrantStore`s over one qdrant-client per
(url, api key), shared by the collections on that server and closed when none
uses it. Registering touches no network: an unreachable server is a
VectorUnavailable (503, retryable) on the call that needs it. With
`qdrant_location` set, qdrant-client's local mode (":memory:" or a directory)
stands in for every Qdrant server, as the operator's setting of the same name
does (development and CI, where no server runs).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llm_infra import errors, jsondoc, vector
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec, default_collection_name
from llm_infra.client import CollectionConfigSummary, CollectionInfo
from llm_infra.vector import CollectionConfig, CollectionPlan, EdgeStore, IndexPolicy, VectorStore

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient

    from llm_infra.vector import QdrantStore

_logger = logging.getLogger(__name__)
# The API validates names too (client.CollectionName); checked again here because
# the name becomes a path: nothing may reach outside `root`.
_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,255}")
# A dot cannot start a collection name, so this file never collides with a collection directory.
NAMES_FILE = ".names.json"


@dataclass(frozen=True)
class _Server:
    """Which qdrant-client a Qdrant-backed collection goes through: one per url and API key.

    The key is kept as a digest only, so no repr or log of this can show it.
    """

    location: str
    key_digest: str | None = None


@dataclass(frozen=True)
class _Served:
    """A VectorCollection served by a Qdrant server: what it was registered with, and its store."""

    server: _Server
    store: QdrantStore


class CollectionRegistry:
    """The open embedded collections under `root`, and the Qdrant-backed ones being served."""

    def __init__(
        self,
        root: Path,
        *,
        policy: IndexPolicy | None = None,
        qdrant_location: str | None = None,
    ) -> None:
        self.root = root
        self.qdrant_location = qdrant_location
        """qdrant-client's local mode (":memory:" or a directory) for every Qdrant backend."""
        self._policy = policy
        self._stores: dict[str, EdgeStore] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._names: dict[str, str] = _read_names(root / NAMES_FILE)
        self._served: dict[str, _Served] = {}  # by "namespace/name"
        self._clients: dict[_Server, AsyncQdrantClient] = {}
        self._qdrant_lock = asyncio.Lock()

    def collection_name(self, namespace: str, name: str) -> str:
        """The collection serving `namespace/name`: the one of its last ensure, or the default."""
        return self._names.get(_key(namespace, name), default_collection_name(namespace, name))

    async def store_of(self, namespace: str, name: str) -> VectorStore:
        """The store serving VectorCollection `namespace/name` (the data API's lookup).

        Its Qdrant server's collection when `serve_qdrant` registered one, else
        its embedded collection. CollectionNotFound (404) names the
        VectorCollection and how to create it.
        """
        if (served := self._served.get(_key(namespace, name))) is not None:
            return served.store
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

    async def serve_qdrant(
        self, namespace: str, name: str, spec: VectorCollectionSpec, api_key: str | None
    ) -> None:
        """Serve VectorCollection `namespace/name` from the Qdrant server its spec names.

        The collection is `spec.collectionName`, else `<namespace>-<name>`; the
        operator ensures it there, this only routes data calls to it. Idempotent;
        a changed url or API key moves the collection to another client (the
        old one is closed once no collection uses it).
        """
        if spec.backend is None or spec.backend.qdrant is None:
            raise errors.ValidationError(
                f"VectorCollection {namespace}/{name} has no spec.backend.qdrant: only"
                " Qdrant-backed collections are served this way (embedded ones are ensured"
                " through the collection admin API)",
                field="spec.backend.qdrant",
            )
        server = self._server(spec.backend.qdrant.url, api_key)
        collection_name = spec.engine_collection(namespace, name)
        config = CollectionConfig.from_spec(spec)
        key = _key(namespace, name)
        async with self._qdrant_lock:
            before = self._served.get(key)
            if (
                before is not None
                and before.server == server
                and before.store.name == collection_name
                and before.store.config == config
            ):
                return
            client = self._client(server, spec.backend.qdrant.url, api_key)
            # Built, not connected: `QdrantStore.connect` would create or change the
            # collection (the operator's job) and needs the server up right now.
            store = vector.QdrantStore(collection_name, config, client, owns_client=False)
            self._served[key] = _Served(server, store)
            if before is not None:
                await self._release(before.server)
        _logger.info(
            "vc %s/%s: serving Qdrant collection %s%s",
            namespace,
            name,
            collection_name,
            " (local mode)" if self.qdrant_location else "",
        )

    async def forget_qdrant(self, namespace: str, name: str) -> None:
        """Stop serving VectorCollection `namespace/name` from Qdrant; its calls then answer 404.

        The collection and its points stay on the server (the operator's
        deletionPolicy decides about them). Idempotent.
        """
        async with self._qdrant_lock:
            served = self._served.pop(_key(namespace, name), None)
            if served is not None:
                await self._release(served.server)
        if served is not None:
            _logger.info("vc %s/%s: no longer served from Qdrant", namespace, name)

    async def close(self) -> None:
        """Flush and close every open store, and every Qdrant client (lifespan shutdown)."""
        for collection_name in list(self._stores):
            async with self._lock(collection_name):
                await self._close(collection_name)
        async with self._qdrant_lock:
            self._served.clear()
            clients = list(self._clients.values())
            self._clients.clear()
            for client in clients:
                with errors.translate(errors.from_qdrant):
                    await client.close()

    def _server(self, url: str, api_key: str | None) -> _Server:
        if self.qdrant_location:  # one local-mode client stands in for every server
            return _Server(self.qdrant_location)
        digest = hashlib.sha256(api_key.encode()).hexdigest() if api_key else None
        return _Server(url, digest)

    def _client(self, server: _Server, url: str, api_key: str | None) -> AsyncQdrantClient:
        if (client := self._clients.get(server)) is not None:
            return client
        client = vector.qdrant_client(url, api_key=api_key, location=self.qdrant_location)
        self._clients[server] = client
        return client

    async def _release(self, server: _Server) -> None:
        """Close the client of `server` if no served collection uses it any more."""
        if any(served.server == server for served in self._served.values()):
            return
        if (client := self._clients.pop(server, None)) is not None:
            with errors.translate(errors.from_qdrant):
                await client.close()

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
