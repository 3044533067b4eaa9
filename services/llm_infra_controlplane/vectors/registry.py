"""The registry of the collections the control plane serves: embedded ones, and Qdrant-backed ones.

The control plane is the one owner of the qdrant-edge directories under
`<data_dir>/collections/<namespace>/<collectionName>/` (docs/architecture.md, "Who owns what").
A store is opened on first use and stays open until the collection is dropped
or the process stops (`close`, from lifespan). Calls on one collection take its
lock, so an ensure, a read and a drop never interleave; different collections
proceed independently. The decisions live in `llm_infra.vector`
(`ensure_collection`, `drop_collection`); this module only holds the stores.

Each namespace has its own directory, `<root>/<namespace>/<collectionName>/`, and
a collectionName (the body of an ensure, the query of a read or a drop) only ever
selects within the caller's namespace: no name reaches another tenant's data.
The default collectionName of VectorCollection ns/name is `name`. Within a
namespace one collection serves one VectorCollection: `<root>/.bindings.json`
maps `namespace/name` to the collection of its last ensure (so the data API,
`vectors.routes`, finds a renamed one after a restart too), and a request for a
collection bound to another VectorCollection is CollectionOwned (409).
`migrate_layout` moves the data of the old flat layout (`<root>/<ns>-<name>/`,
recorded in `.names.json`) into place when the registry starts.

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
# The API validates names too (client.CollectionName, web.params.Namespace); checked again
# here because the names become a path: nothing may reach outside its namespace's directory.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,254}")
# Dots cannot start a namespace or a collection name: these files never collide with either.
BINDINGS_FILE = ".bindings.json"
"""Which collection of its namespace serves each VectorCollection ("namespace/name")."""
LEGACY_NAMES_FILE = ".names.json"
"""The flat layout's record; `migrate_layout` moves its collections and deletes it."""
_STAGING = ".flat"  # where the flat layout's collections wait during the move
_Local = tuple[str, str]
"""An embedded collection: (namespace, collection name within it)."""


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
        self._stores: dict[_Local, EdgeStore] = {}
        self._locks: dict[_Local, asyncio.Lock] = {}
        # Before anything opens a store: data of the old flat layout moves to its namespace.
        self._bindings: dict[str, str] = migrate_layout(root)
        self._served: dict[str, _Served] = {}  # by "namespace/name"
        self._claims: dict[tuple[str, str], str] = {}  # (server, collection) -> "namespace/name"
        self._clients: dict[_Server, AsyncQdrantClient] = {}
        self._qdrant_lock = asyncio.Lock()

    def collection_name(self, namespace: str, name: str) -> str:
        """The collection serving `namespace/name`: the one of its last ensure, or `name`."""
        return self._bindings.get(_key(namespace, name), name)

    def local_name(self, namespace: str, name: str, collection_name: str | None) -> str:
        """The collection, within `namespace`, that a request for `collection_name` means.

        None means the one serving the VectorCollection; the spec's default engine
        name (`VectorCollectionSpec.engine_collection`, what the operator sends)
        means the VectorCollection's own default, `name`. Anything else is a
        collection of `namespace`: no name reaches another namespace.
        """
        if collection_name is None:
            return self.collection_name(namespace, name)
        if collection_name == default_collection_name(namespace, name):
            return name
        return collection_name

    async def store_of(self, namespace: str, name: str) -> VectorStore:
        """The store serving VectorCollection `namespace/name` (the data API's lookup).

        Its Qdrant server's collection when `serve_qdrant` registered one, else
        its embedded collection. CollectionNotFound (404) names the
        VectorCollection and how to create it.
        """
        if (served := self._served.get(_key(namespace, name))) is not None:
            return served.store
        local = (namespace, self.collection_name(namespace, name))
        # Hot path (every search): an open store needs no lock. Ensure and drop
        # remove a store from the map before they change it, so a store found
        # here is never one being replaced.
        if (store := self._stores.get(local)) is not None:
            return store
        try:
            async with self._lock(local):
                return self._open(local)
        except errors.CollectionNotFound:
            raise errors.CollectionNotFound(
                f"VectorCollection {namespace}/{name} has no embedded collection"
                f" {local[1]!r}: create it first (PUT"
                f" /v1/namespaces/{namespace}/collections/{name})",
                collection=local[1],
            ) from None

    def directory(self, namespace: str, collection_name: str) -> Path:
        """The collection's directory, in its namespace's; both names are checked first.

        Neither can point elsewhere: a namespace is a DNS label, and a collection
        name neither starts with a dot nor holds a separator.
        """
        if not _NAMESPACE.fullmatch(namespace):
            raise errors.ValidationError(
                f"namespace {namespace!r} is not a DNS label", field="namespace"
            )
        if not _COLLECTION_NAME.fullmatch(collection_name):
            raise errors.ValidationError(
                "a collection name is 1-255 letters, digits, '_', '-' or '.', not starting"
                " with '.'",
                field="collectionName",
                expected=_COLLECTION_NAME.pattern,
            )
        return self.root / namespace / collection_name

    async def ensure(
        self, namespace: str, name: str, collection_name: str, spec: VectorCollectionSpec
    ) -> CollectionInfo:
        """Create or update the collection as `spec` says (VectorCollection `namespace/name`).

        `collection_name` is chosen within `namespace` (`local_name`); one bound to
        another VectorCollection of the namespace is CollectionOwned (409).
        """
        local = (namespace, self.local_name(namespace, name, collection_name))
        directory = self.directory(*local)
        async with self._lock(local):
            self._check_owner(namespace, name, local[1])
            store = self._stores.get(local)
            if store is not None:
                if vector.plan_collection(spec, store.config).noop:
                    self._bind(namespace, name, local[1])
                    return await _info(namespace, name, store, CollectionPlan())
                # Changes (or a refusal) go through ensure_collection, which opens
                # the directory itself: ours must be closed first (one owner per directory).
                await self._close(local)
            opened, decided = await vector.ensure_collection(
                spec, local[1], backend="embedded", directory=directory, policy=self._policy
            )
            assert isinstance(opened, EdgeStore)  # backend="embedded"
            self._stores[local] = opened
            self._bind(namespace, name, local[1])
            if not decided.noop:
                changes = "; ".join(vector.describe_changes(decided))
                _logger.info("collection %s of %s/%s: %s", local[1], namespace, name, changes)
            return await _info(namespace, name, opened, decided)

    async def info(
        self, namespace: str, name: str, collection_name: str | None = None
    ) -> CollectionInfo:
        """The collection and its stats; CollectionNotFound if it was never ensured.

        CollectionOwned (409) if the collection serves another VectorCollection.
        """
        local = (namespace, self.local_name(namespace, name, collection_name))
        self.directory(*local)
        async with self._lock(local):
            self._check_owner(namespace, name, local[1])
            store = self._open(local)
            return await _info(namespace, name, store, CollectionPlan())

    async def drop_of(self, namespace: str, name: str, collection_name: str | None = None) -> bool:
        """Close and delete the collection of `namespace/name` with its points; False if none.

        CollectionOwned (409) if the collection serves another VectorCollection:
        dropping it is that one's business.
        """
        local = (namespace, self.local_name(namespace, name, collection_name))
        directory = self.directory(*local)
        async with self._lock(local):
            self._check_owner(namespace, name, local[1])
            await self._close(local)
            dropped = await vector.drop_collection(
                local[1], backend="embedded", directory=directory
            )
            self._unbind(local)
        if dropped:
            _logger.info("collection %s of namespace %s dropped", local[1], namespace)
        return dropped

    async def serve_qdrant(
        self, namespace: str, name: str, spec: VectorCollectionSpec, api_key: str | None
    ) -> None:
        """Serve VectorCollection `namespace/name` from the Qdrant server its spec names.

        The collection is `spec.engine_collection` (`spec.collectionName`, else
        `<namespace>.<name>`); the operator ensures it there, this only routes data
        calls to it. Idempotent; a changed url or API key moves the collection to
        another client (the old one is closed once no collection uses it). One
        collection of one server serves one VectorCollection: another's claim on
        it is CollectionOwned (409). The server's API key is the tenant's own
        (the VectorCollection's secret), so the server's access control still
        applies to what this routes.
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
        claim = (server.location, collection_name)
        async with self._qdrant_lock:
            owner = self._claims.get(claim)
            if owner is not None and owner != key:
                raise errors.CollectionOwned(
                    f"Qdrant collection {collection_name!r} at {spec.backend.qdrant.url} already"
                    f" serves VectorCollection {owner}: give {key} another spec.collectionName"
                    f" (or delete {owner})",
                    collection=collection_name,
                )
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
                self._claims.pop((before.server.location, before.store.name), None)
            self._claims[claim] = key
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
                self._claims.pop((served.server.location, served.store.name), None)
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
            self._claims.clear()
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

    def _open(self, local: _Local) -> EdgeStore:
        if (store := self._stores.get(local)) is not None:
            return store
        directory = self.directory(*local)
        if not directory.is_dir():
            # Checked here, not left to EdgeStore.open: its message names a path of this host.
            raise errors.CollectionNotFound(
                f"no embedded collection {local[1]!r} in namespace {local[0]}: PUT it first",
                collection=local[1],
            )
        store = EdgeStore.open(directory, name=local[1], policy=self._policy)
        self._stores[local] = store
        return store

    def _owner(self, namespace: str, collection_name: str) -> str | None:
        """The VectorCollection of `namespace` bound to the collection, if any (its name)."""
        prefix = f"{namespace}/"
        for key, local in self._bindings.items():
            if local == collection_name and key.startswith(prefix):
                return key.removeprefix(prefix)
        return None

    def _check_owner(self, namespace: str, name: str, collection_name: str) -> None:
        owner = self._owner(namespace, collection_name)
        if owner is not None and owner != name:
            raise errors.CollectionOwned(
                f"collection {collection_name!r} of namespace {namespace} serves VectorCollection"
                f" {namespace}/{owner}: give {namespace}/{name} another collectionName, or"
                f" delete {namespace}/{owner} first",
                collection=collection_name,
            )

    def _bind(self, namespace: str, name: str, collection_name: str) -> None:
        key = _key(namespace, name)
        if self._bindings.get(key) == collection_name:
            return
        self._bindings[key] = collection_name
        _write_bindings(self.root, self._bindings)

    def _unbind(self, local: _Local) -> None:
        prefix = f"{local[0]}/"
        kept = {
            key: value
            for key, value in self._bindings.items()
            if not (value == local[1] and key.startswith(prefix))
        }
        if len(kept) != len(self._bindings):
            self._bindings = kept
            _write_bindings(self.root, self._bindings)

    def _lock(self, local: _Local) -> asyncio.Lock:
        return self._locks.setdefault(local, asyncio.Lock())

    async def _close(self, local: _Local) -> None:
        if (store := self._stores.pop(local, None)) is not None:
            await store.close()


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"  # a namespace never holds "/" (a DNS label)


# -- the bindings file, and the move from the flat layout ---------------------------------------


def _read_mapping(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    names = jsondoc.loads(path.read_bytes())
    if not isinstance(names, dict) or not all(
        isinstance(k, str) and "/" in k and isinstance(v, str) for k, v in names.items()
    ):
        raise errors.ValidationError(
            f"{path.name} of the collections directory must map 'namespace/name' to a"
            " collection name: fix or delete it (collections then answer under their"
            " default names)",
            field=path.name,
        )
    return names


def _write_bindings(root: Path, bindings: dict[str, str]) -> None:
    # Atomically: a crash mid-write must leave the old mapping, not half of a new one.
    path = root / BINDINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(BINDINGS_FILE + ".tmp")
    temporary.write_bytes(jsondoc.dumps(bindings, indent=True, sort_keys=True))
    temporary.replace(path)


def migrate_layout(root: Path) -> dict[str, str]:
    """Move the collections of the flat layout into their namespaces; the bindings after.

    The flat layout kept `<root>/<collectionName>/` with `.names.json` mapping
    'namespace/name' to it (its default `<namespace>-<name>`). Each recorded
    collection moves to `<root>/<namespace>/<name>/` (the default) or
    `<root>/<namespace>/<collectionName>/` (an explicit name) by one rename, so
    its points stay. The recorded directories first step aside into
    `<root>/.flat/`, since an old collection may bear a namespace's name.
    Idempotent, and safe to crash in: the old file goes last, and a collection
    already moved is left where it is. A directory of the flat layout that no
    record names cannot be given a namespace: it stays, with a warning naming it.
    """
    legacy = root / LEGACY_NAMES_FILE
    bindings = _read_mapping(root / BINDINGS_FILE)
    if not legacy.is_file():
        return bindings
    recorded = _read_mapping(legacy)
    staging = root / _STAGING
    for old in sorted(set(recorded.values())):
        # A namespace directory of an interrupted run holds no files: it stays.
        source = root / old
        if _COLLECTION_NAME.fullmatch(old) and source.is_dir() and _looks_like_collection(source):
            staging.mkdir(exist_ok=True)
            if not (staging / old).exists():
                source.rename(staging / old)
    moved_to: dict[str, str] = {}  # old directory -> the VectorCollection it went with
    # A directory's own VectorCollection (the one whose default name it is) goes first: where
    # the flat layout let others share it, its data stays with the one that named it.
    for key, old in sorted(recorded.items(), key=lambda item: (not _own_default(*item), item)):
        namespace, name = key.split("/", 1)
        local = name if _own_default(key, old) else old
        if not (_NAMESPACE.fullmatch(namespace) and _COLLECTION_NAME.fullmatch(local)):
            _logger.warning("collections: record %s -> %s names no valid collection", key, old)
            continue
        if (first := moved_to.get(old)) is not None:
            # The flat layout let two VectorCollections share a directory: it has one owner now.
            _logger.warning(
                "collections: %s shared collection %s with %s; it stays with %s",
                key,
                old,
                first,
                first,
            )
            continue
        source, target = staging / old, root / namespace / local
        if source.is_dir() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
            _logger.info(
                "collections: moved %s to %s/%s (per-namespace layout)", old, namespace, local
            )
        if target.is_dir():
            moved_to[old] = key
            bindings[key] = local
    for left in sorted(staging.iterdir()) if staging.is_dir() else ():
        back = root / left.name
        if not back.exists():  # not moved (its place was taken): back where it was
            left.rename(back)
        else:
            _logger.warning(
                "collections: %s of the old flat layout was not moved and its old place is"
                " taken; it waits in .flat/%s",
                left.name,
                left.name,
            )
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()
    namespaces = {key.split("/", 1)[0] for key in bindings}
    for child in sorted(root.iterdir()):
        if (
            child.is_dir()
            and not child.name.startswith(".")
            and child.name not in namespaces
            and (child.name in recorded.values() or _looks_like_collection(child))
        ):
            _logger.warning(
                "collections: %s is a collection of the old flat layout that was not moved"
                " (no record attributes it to a namespace, or its place is taken); left in"
                " place: move it to <namespace>/<collectionName>/ to serve it",
                child.name,
            )
    _write_bindings(root, bindings)
    legacy.unlink()
    return bindings


def _own_default(key: str, old: str) -> bool:
    namespace, name = key.split("/", 1)
    return old == f"{namespace}-{name}"


def _looks_like_collection(directory: Path) -> bool:
    # A namespace directory holds collection directories only; a collection holds files.
    return any(entry.is_file() for entry in directory.iterdir())


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
