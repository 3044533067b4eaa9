"""VectorCollection -> a collection in Qdrant (server) or in the control plane's embedded core.

Qdrant-server collections are ensured here through qdrant-client
(`llm_infra.vector.QdrantStore`); embedded ones through the control plane's
collection admin API, because the control plane owns the shard directories
(one owner per directory). Conditions: BackendReachable, SpecApplied, Ready.
An immutable change (dimensions, distance, backend) is reported as
SpecApplied=False/ImmutableFieldChanged and the data is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from llm_infra import errors
from llm_infra.api.v1alpha1 import VectorCollection
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec, VectorCollectionStatus
from llm_infra.vector import CollectionConfig, describe_changes, drop_collection
from llm_infra_operator.conditions import StatusConditions
from llm_infra_operator.engine import Outcome, Reconciler
from llm_infra_operator.settings import OperatorSettings

BackendName = Literal["embedded", "qdrant"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where the collection of one VectorCollection lives."""

    backend: BackendName
    collection: str
    url: str | None = None
    grpc: bool = False
    renamed_from: str | None = None
    """A name the status may still show that is no change: the embedded core's old default."""


def decide_target(
    namespace: str,
    name: str,
    spec: VectorCollectionSpec,
    settings: OperatorSettings,
    status: VectorCollectionStatus | None = None,
) -> Target:
    """The backend and Qdrant collection name of the spec, the operator's defaults filling in.

    A VectorCollection made under the old default name `<namespace>-<name>` (its
    status says so) keeps it on a Qdrant server, where its points are; in the
    embedded core the control plane moved it to the new default itself.
    """
    collection = spec.engine_collection(namespace, name)
    legacy = f"{namespace}-{name}"
    kept = spec.collection_name is None and status is not None and status.collection_name == legacy
    if spec.backend is not None and spec.backend.qdrant is not None:
        qdrant = spec.backend.qdrant
        return Target("qdrant", legacy if kept else collection, qdrant.url, qdrant.grpc)
    if spec.backend is not None and spec.backend.embedded is not None:
        return Target("embedded", collection, renamed_from=legacy if kept else None)
    if settings.default_vector_backend == "qdrant":
        return Target("qdrant", legacy if kept else collection, settings.qdrant_url)
    return Target("embedded", collection, renamed_from=legacy if kept else None)


def decide_immutable_changes(target: Target, status: VectorCollectionStatus | None) -> list[str]:
    """Changes the backend cannot apply in place: moving the collection to another backend."""
    if status is None or status.backend is None or status.collection_name is None:
        return []
    changed = []
    if status.backend != target.backend:
        changed.append(f"backend ({status.backend} -> {target.backend})")
    if status.collection_name not in (target.collection, target.renamed_from):
        changed.append(f"collectionName ({status.collection_name} -> {target.collection})")
    return changed


@dataclass(frozen=True, slots=True)
class Applied:
    """What one ensure did to the collection, and its size after."""

    created: bool
    changes: tuple[str, ...]
    points: int
    indexed: int

    @property
    def reason(self) -> str:
        return "Created" if self.created else ("Updated" if self.changes else "UpToDate")

    def message(self, collection: str) -> str:
        if self.created:
            return f"collection {collection} created"
        if self.changes:
            return f"collection {collection} updated: {'; '.join(self.changes)}"
        return f"collection {collection} matches the spec"


class VectorCollectionReconciler(Reconciler[VectorCollection]):
    model = VectorCollection
    status_model = VectorCollectionStatus

    @classmethod
    def needs_finalizer(cls, spec: Mapping[str, Any]) -> bool:
        return spec.get("deletionPolicy") == "Delete"

    async def reconcile(
        self, obj: VectorCollection, body: Mapping[str, Any], conditions: StatusConditions
    ) -> Outcome:
        namespace, name = obj.metadata.namespace or "", obj.metadata.name or ""
        target = decide_target(namespace, name, obj.spec, self.ctx.settings, obj.status)
        previous = obj.status or VectorCollectionStatus()
        status = previous.model_copy(
            update={"search": obj.spec.search, "embedding_model": obj.spec.embedding_model}
        )
        if changed := decide_immutable_changes(target, obj.status):
            conditions.set(
                "SpecApplied",
                False,
                "ImmutableFieldChanged",
                f"cannot change {', '.join(changed)} in place; the collection and its data were"
                " left alone: restore the field, or create a new VectorCollection and migrate",
            )
            conditions.ready("CollectionReady")
            return Outcome(status)
        if target.backend == "qdrant" and not target.url and not self.ctx.settings.qdrant_location:
            conditions.set(
                "BackendReachable",
                False,
                "NoBackend",
                "spec.backend.qdrant.url is unset and the operator has no default Qdrant URL:"
                " set one of them",
            )
            conditions.ready("CollectionReady")
            return Outcome(status)
        try:
            applied = await self._ensure(obj, target)
        except errors.CollectionConfigMismatch as exc:
            conditions.set("BackendReachable", True, "Connected", f"{target.backend} answered")
            conditions.set(
                "SpecApplied",
                False,
                "ImmutableFieldChanged",
                f"{exc.field}: the collection has {exc.actual}, the spec asks for {exc.expected};"
                " the collection and its data were left alone: restore the field, or set a new"
                " collectionName to build a new collection",
            )
            conditions.ready("CollectionReady")
            return Outcome(status)
        except errors.NotFound as exc:
            conditions.set("BackendReachable", False, "SecretNotFound", exc.message)
            conditions.ready("CollectionReady")
            return Outcome(status, references=self._refs(obj))
        except errors.InfraError as exc:
            if not exc.is_retryable():
                raise
            conditions.set(
                "BackendReachable",
                False,
                "BackendUnreachable",
                f"{self._where(target)} did not answer ({exc.message}); retrying with backoff:"
                " check that it runs and that the operator can reach it",
            )
            conditions.ready("CollectionReady")
            return Outcome(status, retry=True, references=self._refs(obj))
        conditions.set("BackendReachable", True, "Connected", f"{target.backend} answered")
        conditions.set("SpecApplied", True, applied.reason, applied.message(target.collection))
        conditions.ready(
            "CollectionReady",
            f"{applied.points} points in {target.backend} collection {target.collection}",
        )
        status = status.model_copy(
            update={
                "collection_name": target.collection,
                "backend": target.backend,
                "points_count": applied.points,
                "indexed_vectors_count": applied.indexed,
            }
        )
        return Outcome(status, references=self._refs(obj))

    async def _ensure(self, obj: VectorCollection, target: Target) -> Applied:
        """Create or update the collection; what was done and how big it is."""
        namespace, name = obj.metadata.namespace or "", obj.metadata.name or ""
        if target.backend == "embedded":
            info = await self.ctx.control_plane().ensure_collection(
                namespace, name, obj.spec, target.collection
            )
            return Applied(
                info.created, tuple(info.changes), info.points_count, info.indexed_vectors_count
            )
        # Here: qdrant-client (~35 MB resident) loads only for Qdrant-server collections.
        from llm_infra.vector import QdrantStore

        client = self.ctx.qdrant(target.url, await self._api_key(obj))
        store = await QdrantStore.connect(
            target.collection, CollectionConfig.from_spec(obj.spec), client=client
        )
        try:
            stats = await store.stats()
        finally:
            await store.close()
        plan = store.last_plan
        changes = () if plan.create else tuple(describe_changes(plan))
        return Applied(plan.create, changes, stats.points, stats.indexed_vectors)

    async def _api_key(self, obj: VectorCollection) -> str | None:
        backend = obj.spec.backend
        ref = backend.qdrant.api_key_secret_ref if backend and backend.qdrant else None
        if ref is None:
            settings_key = self.ctx.settings.qdrant_api_key
            return settings_key.get_secret_value() if settings_key else None
        secret = await self.ctx.kube.secret_data(obj.metadata.namespace or "", ref.name)
        if secret is None or ref.key not in secret:
            raise errors.NotFound(
                f"spec.backend.qdrant.apiKeySecretRef: Secret {ref.name} with key {ref.key} not"
                " found: create it, or remove the reference",
                service="kubernetes",
                status_code=404,
            )
        return secret[ref.key]

    def _where(self, target: Target) -> str:
        if target.backend == "embedded":
            return f"the control plane at {self.ctx.settings.control_plane_url}"
        return f"the Qdrant server at {target.url}"

    @staticmethod
    def _refs(obj: VectorCollection) -> frozenset[tuple[str, str]]:
        backend = obj.spec.backend
        ref = backend.qdrant.api_key_secret_ref if backend and backend.qdrant else None
        return frozenset({("Secret", ref.name)}) if ref else frozenset()

    async def finalize(self, obj: VectorCollection, body: Mapping[str, Any]) -> str:
        namespace, name = obj.metadata.namespace or "", obj.metadata.name or ""
        target = decide_target(namespace, name, obj.spec, self.ctx.settings, obj.status)
        if obj.spec.deletion_policy != "Delete":
            return f"collection {target.collection} retained (deletionPolicy Retain)"
        if target.backend == "embedded":
            dropped = await self.ctx.control_plane().drop_collection(
                namespace, name, target.collection
            )
        else:
            dropped = await drop_collection(
                target.collection,
                backend="qdrant",
                client=self.ctx.qdrant(target.url, await self._api_key(obj)),
            )
        state = "dropped" if dropped else "was already gone"
        return f"collection {target.collection} {state} (deletionPolicy Delete)"
