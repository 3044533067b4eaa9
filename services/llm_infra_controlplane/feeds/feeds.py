"""In a cluster: the feeds that serve what the operator writes.

docs/architecture.md, "Who owns what", says who writes each object.

Standalone mode feeds the services from a folder (`standalone.applier`); in a
cluster `llm_infra.kube.Informer`s feed the same services from the API server:

- ConfigSource outputs: ConfigMaps labelled `infra.llmdevops.io/configsource=<name>`
  (the operator's reconcilers/configsource.py) -> `ConfigStore.publish` /
  `remove`, under the ConfigSource's name. The document is rebuilt from what
  `config.render` wrote (`documents.rebuild_document`); the Secret with the
  sensitive part is the one the ConfigMap names (`infra.llmdevops.io/secret`),
  read by name when the ConfigMap changes, never listed or watched.
- Route tables: ConfigMaps labelled `infra.llmdevops.io/route-table=true`
  (docs/route-table.md) -> `routes[(namespace, route)]`, the gateway's tables.
- AuditSinks -> `AuditService.ensure_sink` with the Secrets the spec names /
  `remove_sink`. The operator owns the streams and consumers: the service only
  attaches to them (and waits until they exist).
- VectorCollections with `spec.backend.qdrant` -> `CollectionRegistry.serve_qdrant`
  (API key from its Secret) / `forget_qdrant`.

Every change goes through one `llm_infra.reconcile.Reconciler`: a resource
that cannot be served is logged with its namespace/name and why, once; one that
failed on something that may come later (the Secret of a new version, the
operator's stream, NATS) is retried with backoff until it works or changes
again. `Feeds.ready` tells /readyz whether every feed has listed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic

from llm_infra import config, errors, jsondoc, kube, reconcile, router
from llm_infra.api.v1alpha1 import AuditSink, VectorCollection
from llm_infra_controlplane.audit.service import AuditService
from llm_infra_controlplane.configs.store import ConfigStore
from llm_infra_controlplane.feeds import documents
from llm_infra_controlplane.vectors.registry import CollectionRegistry

SOURCE_LABEL = config.SOURCE_LABEL
HASH_ANNOTATION = config.HASH_ANNOTATION
SECRET_ANNOTATION = config.SECRET_ANNOTATION
BACKOFF = reconcile.Backoff(initial=1.0, maximum=30.0)

# The reconciler's kinds: what each informer hands over.
CONFIG_OUTPUT = "ConfigSourceOutput"
ROUTE_TABLE = "RouteTable"
AUDIT_SINK = AuditSink.crd.kind
VECTOR_COLLECTION = VectorCollection.crd.kind

_log = logging.getLogger(__name__)

Key = tuple[str, str]  # namespace, name
Object = kube.Object


def _meta(obj: Mapping[str, Any], field: str) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get(field) or {})


class Feeds:
    """The informers that feed the control plane's services in a cluster, and their state."""

    def __init__(
        self,
        client: kube.Kube,
        *,
        configs: ConfigStore,
        audit: AuditService,
        collections: CollectionRegistry,
        sink_root: Path,
        namespace: str | None = None,
        backoff: reconcile.Backoff = BACKOFF,
    ) -> None:
        self.client = client
        self.sink_root = sink_root
        """File sinks (and file:// object stores) of namespace N write below sink_root/N."""
        self.configs = configs
        self.audit = audit
        self.collections = collections
        self.routes: dict[Key, router.RouteTable] = {}
        """The gateway's tables by (namespace, Route name)."""
        # ConfigSource outputs by (namespace, ConfigSource): ConfigMap name -> object, latest last.
        self._config_maps: dict[Key, dict[str, Object]] = {}
        self._sources: dict[Key, Key] = {}  # ConfigMap -> its ConfigSource
        self._tables: dict[Key, Key] = {}  # table ConfigMap -> (namespace, Route name)
        self._sinks: dict[Key, str] = {}  # AuditSink -> digest of what was applied
        self._qdrant: set[Key] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciler: reconcile.Reconciler[Object] = reconcile.Reconciler(
            "feeds", backoff=backoff, report=_report
        )
        self.reconciler.register(
            CONFIG_OUTPUT, apply=self._apply_config_map, remove=self._delete_config_map
        )
        self.reconciler.register(ROUTE_TABLE, apply=self._apply_table, remove=self._delete_table)
        self.reconciler.register(AUDIT_SINK, apply=self._apply_sink, remove=self._delete_sink)
        self.reconciler.register(
            VECTOR_COLLECTION, apply=self._apply_collection, remove=self._delete_collection
        )

        def informer(
            kind: kube.Kind, feed: str, handled_as: str, labels: kube.Selector | None = None
        ) -> kube.Informer:
            async def apply(obj: Object) -> None:
                await self.reconciler.apply((handled_as, *kube.key_of(obj)), obj)

            async def remove(obj: Object) -> None:
                await self.reconciler.remove((handled_as, *kube.key_of(obj)), obj)

            return kube.Informer(
                client,
                kind,
                name=feed,
                namespace=namespace,
                labels=labels,
                on_apply=apply,
                on_delete=remove,
            )

        self.informers = [
            informer(kube.CONFIGMAPS, "configsource-outputs", CONFIG_OUTPUT, {SOURCE_LABEL: None}),
            informer(
                kube.CONFIGMAPS, "route-tables", ROUTE_TABLE, {router.ROUTE_TABLE_LABEL: "true"}
            ),
            informer(kube.Kind.of(AuditSink), "auditsinks", AUDIT_SINK),
            informer(kube.Kind.of(VectorCollection), "vectorcollections", VECTOR_COLLECTION),
        ]

    def start(self) -> None:
        self._tasks = [asyncio.create_task(i.run(), name=i.name) for i in self.informers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.reconciler.aclose()

    def ready(self) -> str | None:
        """None once every feed has listed; else which have not, and why (for /readyz)."""
        waiting = [
            f"{i.name} ({i.error})" if i.error else i.name
            for i in self.informers
            if not i.synced.is_set()
        ]
        return f"not synced yet: {', '.join(waiting)}" if waiting else None

    async def synced(self) -> None:
        """Until every feed has listed once."""
        await asyncio.gather(*(i.synced.wait() for i in self.informers))

    # -- ConfigSource outputs ------------------------------------------------------------------

    async def _apply_config_map(self, key: reconcile.Key, obj: Object) -> None:
        _, namespace, name = key
        before = self._sources.pop((namespace, name), None)
        if before is not None:  # relabelled: it no longer serves that source
            self._config_maps.get(before, {}).pop(name, None)
            if before[1] != _meta(obj, "labels").get(SOURCE_LABEL):
                await self._publish(before)
        source = _meta(obj, "labels").get(SOURCE_LABEL)
        if not source:
            return
        served = (namespace, source)
        self._sources[(namespace, name)] = served
        self._config_maps.setdefault(served, {}).pop(name, None)
        self._config_maps[served][name] = obj  # re-inserted: the latest comes last
        await self._publish(served)

    async def _delete_config_map(self, key: reconcile.Key, obj: Object) -> None:
        _, namespace, name = key
        served = self._sources.pop((namespace, name), None)
        if served is not None:
            self._config_maps.get(served, {}).pop(name, None)
            await self._publish(served)

    async def _publish(self, served: Key) -> None:
        """Serve ConfigSource `served` from its outputs; removed with its last ConfigMap."""
        namespace, source = served
        maps = self._config_maps.get(served)
        if not maps:
            self._config_maps.pop(served, None)
            self.configs.remove(namespace, source)
            return
        config_map = list(maps.values())[-1]
        annotations = _meta(config_map, "annotations")
        content_hash = annotations.get(HASH_ANNOTATION)
        if not content_hash:
            raise errors.ConfigError(
                f"ConfigMap has no {HASH_ANNOTATION} annotation: not served; is it the operator's?",
                key=HASH_ANNOTATION,
            )
        sensitive = None
        if (secret_name := annotations.get(SECRET_ANNOTATION)) is not None:
            secret = await self.client.get(kube.SECRETS, namespace, secret_name)
            if secret is None or _meta(secret, "annotations").get(HASH_ANNOTATION) != content_hash:
                # The operator writes the ConfigMap first: its Secret follows in a moment.
                raise reconcile.Retry(
                    f"waiting for Secret {secret_name} of version {content_hash[:12]}"
                    " (the sensitive part): the operator writes it after the ConfigMap"
                )
            sensitive = kube.decode_secret(secret)
        document = documents.rebuild_document(
            dict(config_map.get("data") or {}),
            sensitive,
            content_hash,
            secret_pending=secret_name is not None,
        )
        self.configs.publish(namespace, source, document, content_hash)

    # -- route tables --------------------------------------------------------------------------

    async def _apply_table(self, key: reconcile.Key, obj: Object) -> None:
        _, namespace, name = key
        try:
            table = documents.check_route_table(obj.get("data") or {}, _meta(obj, "annotations"))
        except pydantic.ValidationError as exc:
            raise errors.ConfigError(
                f"route table not served: {errors.validation_text(exc)}", key="data"
            ) from None
        self._tables[(namespace, name)] = (namespace, table.name)
        self.routes[(namespace, table.name)] = table
        _log.info("llmroute %s/%s: table %s", namespace, table.name, table.version[:12])

    async def _delete_table(self, key: reconcile.Key, obj: Object) -> None:
        if (route := self._tables.pop(key[1:], None)) is not None:
            self.routes.pop(route, None)

    # -- AuditSinks ----------------------------------------------------------------------------

    async def _apply_sink(self, key: reconcile.Key, obj: Object) -> None:
        _, namespace, name = key
        spec = _parsed(AuditSink, obj).spec
        secrets: dict[str, dict[str, str]] = {}
        for secret in documents.sink_secret_names(spec):
            if (data := await self.client.secret_data(namespace, secret)) is not None:
                secrets[secret] = data
        # Relists hand every sink over again: restart its writers only when something changed.
        digest = jsondoc.canonical_sha256([spec.model_dump(mode="json"), secrets])
        if self._sinks.get((namespace, name)) == digest:
            return
        # Tenants share this process: each namespace's files stay in a folder of its own.
        await self.audit.ensure_sink(
            namespace, name, spec, secrets=secrets, file_root=self.sink_root / namespace
        )
        self._sinks[(namespace, name)] = digest
        _log.info("asink %s/%s: serving, %d sinks", namespace, name, len(spec.sinks))

    async def _delete_sink(self, key: reconcile.Key, obj: Object) -> None:
        _, namespace, name = key
        self._sinks.pop((namespace, name), None)
        await self.audit.remove_sink(namespace, name)

    # -- VectorCollections on a Qdrant server --------------------------------------------------

    async def _apply_collection(self, key: reconcile.Key, obj: Object) -> None:
        _, namespace, name = key
        spec = _parsed(VectorCollection, obj).spec
        qdrant = spec.backend.qdrant if spec.backend is not None else None
        if qdrant is None:  # embedded (the operator ensures it through the admin API)
            if (namespace, name) in self._qdrant:
                await self._delete_collection(key, obj)
            return
        api_key = None
        if (ref := qdrant.api_key_secret_ref) is not None:
            data = await self.client.secret_data(namespace, ref.name) or {}
            api_key = data.get(ref.key)
            if api_key is None:
                raise errors.ConfigMissing(
                    f"spec.backend.qdrant.apiKeySecretRef: Secret key {ref.name}/{ref.key} not"
                    " found: create it in the VectorCollection's namespace or fix the reference",
                    key="spec.backend.qdrant.apiKeySecretRef",
                )
        await self.collections.serve_qdrant(namespace, name, spec, api_key)
        self._qdrant.add((namespace, name))

    async def _delete_collection(self, key: reconcile.Key, obj: Object) -> None:
        _, namespace, name = key
        self._qdrant.discard((namespace, name))
        await self.collections.forget_qdrant(namespace, name)


def _parsed(model: Any, obj: Object) -> Any:
    try:
        return model.model_validate(obj)
    except pydantic.ValidationError as exc:
        # Not retried: only a new version of the object can fix it.
        raise errors.ValidationError(
            f"not served: {errors.validation_text(exc)}", field="spec"
        ) from None


def _report(key: reconcile.Key, message: str, failed: bool) -> None:
    kind, namespace, name = key
    _log.log(
        logging.WARNING if failed else logging.INFO, "%s %s/%s: %s", kind, namespace, name, message
    )


__all__ = ["HASH_ANNOTATION", "SECRET_ANNOTATION", "SOURCE_LABEL", "Feeds"]
