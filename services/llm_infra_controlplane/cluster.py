"""In a cluster: the feeds that serve what the operator writes (ARCHITECTURE.md, "Who owns what").

Standalone mode feeds the services from a folder (`standalone.Applier`); in a
cluster these `kube.Informer`s feed the same services from the API server:

- ConfigSource outputs: ConfigMaps and Secrets labelled
  `infra.llmdevops.io/configsource=<name>` (the operator's
  reconcilers/configsource.py) -> `ConfigStore.publish` / `remove`, under the
  ConfigSource's name. The document is rebuilt from what `config.render` wrote
  (`rebuild_document`).
- Route tables: ConfigMaps labelled `infra.llmdevops.io/route-table=true`
  (docs/route-table.md) -> `routes[(namespace, route)]`, the gateway's tables.
- AuditSinks -> `AuditService.ensure_sink` with the Secrets the spec names /
  `remove_sink`.
- VectorCollections with `spec.backend.qdrant` ->
  `CollectionRegistry.serve_qdrant` (API key from its Secret) / `forget_qdrant`.

A resource that cannot be served is logged with its namespace/name and the
field, and the feed goes on; one that failed on something that may appear
later (a Secret, NATS) is tried again every `RETRY_SECONDS`. `Feeds.ready`
tells /readyz whether every feed has listed once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import pydantic
import yaml
from fastapi import FastAPI

from llm_infra import config, errors, jsondoc, router
from llm_infra.api.v1alpha1 import AuditSink, VectorCollection
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec
from llm_infra_controlplane import kube
from llm_infra_controlplane.audit_service import AuditService
from llm_infra_controlplane.collection_registry import CollectionRegistry
from llm_infra_controlplane.config_store import ConfigStore
from llm_infra_controlplane.settings import Settings

# The marks the operator writes, from the SDK both sides share.
SOURCE_LABEL = config.SOURCE_LABEL
HASH_ANNOTATION = config.HASH_ANNOTATION
SECRET_ANNOTATION = config.SECRET_ANNOTATION
TABLE_HASH_ANNOTATION = router.ROUTE_TABLE_HASH_ANNOTATION
RETRY_SECONDS = 10.0

_ENV_KEY = re.compile(r"[A-Z0-9_]+")
_log = logging.getLogger(__name__)

Key = tuple[str, str]  # namespace, name
Object = dict[str, Any]


# -- decide: the served document of a ConfigSource's outputs (pure) --------------------------


def rebuild_document(
    plain: Mapping[str, str],
    sensitive: Mapping[str, str] | None,
    content_hash: str,
    *,
    secret_pending: bool = False,
) -> dict[str, Any]:
    """The document the operator rendered into a ConfigMap (`plain`) and its Secret (`sensitive`).

    json/yaml: the ConfigMap's one key holds the document without its
    sensitiveKeys, the Secret's same key holds those; they are deep-merged back,
    and the result must hash to `content_hash` (the ConfigMap's annotation), else
    a part is missing or from another version and ConfigError says so.

    env: one KEY per leaf, in the ConfigMap and the Secret; the nested document
    cannot be recovered from it, so the flat KEY -> value mapping is served as the
    ConfigMap holds it, with `content_hash` (the merged document's hash, as the
    operator's status and rollout annotation carry it) as its version. Nothing
    here can prove the sensitive part complete: with `secret_pending` (the
    ConfigMap names a Secret, or a Secret of another version exists) it waits.
    """
    if len(plain) == 1:
        ((key, text),) = plain.items()
        document = _parse_mapping(text)
        if document is not None:
            if sensitive is not None and key in sensitive:
                part = _parse_mapping(sensitive[key])
                if part is None:
                    raise errors.ConfigError(
                        f"Secret key {key} holds no JSON/YAML mapping: the operator rewrites it",
                        key=key,
                    )
                document = _deep_merge(document, part)
            if config.content_hash(document) == content_hash:
                return document
    if plain and all(_ENV_KEY.fullmatch(key) for key in plain):
        if sensitive is None and secret_pending:
            raise errors.ConfigError(
                "target format env: the sensitive part's Secret is not written for this version"
                " yet; served once it is",
                key=HASH_ANNOTATION,
            )
        return {**plain, **(sensitive or {})}
    raise errors.ConfigError(
        "the document differs from its content-hash annotation: the Secret with its sensitive"
        " part is missing or of another version; served once the operator has written both",
        key=HASH_ANNOTATION,
    )


def _parse_mapping(text: str) -> dict[str, Any] | None:
    """A json or yaml document as `config.render` writes it; None when it is no mapping."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return None  # never the parser's message: it quotes the text
    return value if isinstance(value, dict) else None


def _deep_merge(base: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    # Not RFC 7386: a sensitive value may be null, and a null must come back, not delete.
    merged = dict(base)
    for key, value in part.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def check_route_table(data: Mapping[str, str], annotations: Mapping[str, str]) -> router.RouteTable:
    """The RouteTable of a table ConfigMap, if its hash checks out (docs/route-table.md)."""
    text = data.get(router.ROUTE_TABLE_KEY)
    if text is None:
        raise errors.ConfigError(
            f"no {router.ROUTE_TABLE_KEY} key: the operator rewrites the table",
            key=router.ROUTE_TABLE_KEY,
        )
    table = router.RouteTable.model_validate_json(text)
    version = jsondoc.canonical_sha256(table.model_dump(mode="json", exclude={"version"}))
    announced = annotations.get(TABLE_HASH_ANNOTATION, table.version)
    if not version == table.version == announced:
        raise errors.ConfigError(
            f"table version {table.version[:12]} differs from its content ({version[:12]}) or"
            f" from the {TABLE_HASH_ANNOTATION} annotation: not served; the operator rewrites it",
            key=TABLE_HASH_ANNOTATION,
        )
    return table


def sink_secret_names(spec: AuditSinkSpec) -> list[str]:
    """The Secrets an AuditSink reads (webhook keys and CAs, store credentials, signing key)."""
    names = {
        ref.name
        for sink in spec.sinks
        for ref in (
            sink.webhook.secret_ref if sink.webhook else None,
            sink.webhook.ca_secret_ref if sink.webhook else None,
            sink.object_store.credentials_secret_ref if sink.object_store else None,
        )
        if ref is not None
    }
    if (signing := spec.tamper_evidence.signing_key_secret_ref) is not None:
        names.add(signing.name)
    return sorted(names)


def _decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    return {
        key: base64.b64decode(value).decode("utf-8", errors="replace")
        for key, value in (secret.get("data") or {}).items()
    }


def _meta(obj: Mapping[str, Any], field: str) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get(field) or {})


def _invalid(exc: pydantic.ValidationError) -> str:
    # Fields and messages only: the input may be a secret.
    return "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False, include_context=False)
    )


# -- apply: the feeds --------------------------------------------------------------------------


class Feeds:
    """The informers that feed the control plane's services in a cluster, and their state."""

    def __init__(
        self,
        client: kube.KubeClient,
        *,
        configs: ConfigStore,
        audit: AuditService,
        collections: CollectionRegistry,
        namespace: str | None = None,
    ) -> None:
        self.client = client
        self.configs = configs
        self.audit = audit
        self.collections = collections
        self.routes: dict[Key, router.RouteTable] = {}
        """The gateway's tables by (namespace, Route name)."""
        # ConfigSource outputs by (namespace, ConfigSource): object name -> object, latest last.
        self._config_maps: dict[Key, dict[str, Object]] = {}
        self._secrets: dict[Key, dict[str, Object]] = {}
        self._sources: dict[tuple[str, Key], Key] = {}  # (kind, object key) -> its source
        self._tables: dict[Key, Key] = {}  # table ConfigMap -> (namespace, Route name)
        self._sinks: dict[Key, str] = {}  # AuditSink -> digest of what was applied
        self._qdrant: set[Key] = set()
        self._failed: dict[tuple[str, Key], tuple[kube.Handler, Object]] = {}
        self._tasks: list[asyncio.Task[None]] = []

        def informer(kind: kube.Kind, name: str, apply: kube.Handler, delete: kube.Handler,
                     selector: str | None = None) -> kube.Informer:  # fmt: skip
            return kube.Informer(
                client,
                kind,
                name=name,
                namespace=namespace,
                label_selector=selector,
                on_apply=self._retried(name, apply),
                on_delete=self._retried(name, delete),
            )

        self.informers = [
            informer(kube.CONFIGMAPS, "configsource-configmaps", self._apply_config_map,
                     self._delete_config_map, SOURCE_LABEL),
            informer(kube.SECRETS, "configsource-secrets", self._apply_secret,
                     self._delete_secret, SOURCE_LABEL),
            informer(kube.CONFIGMAPS, "route-tables", self._apply_table, self._delete_table,
                     f"{router.ROUTE_TABLE_LABEL}=true"),
            informer(kube.Kind.of(AuditSink), "auditsinks", self._apply_sink, self._delete_sink),
            informer(kube.Kind.of(VectorCollection), "vectorcollections", self._apply_collection,
                     self._delete_collection),
        ]  # fmt: skip

    def start(self) -> None:
        self._tasks = [asyncio.create_task(i.run(), name=i.name) for i in self.informers]
        self._tasks.append(asyncio.create_task(self._retry_failed(), name="feeds-retry"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()

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

    # -- retries -------------------------------------------------------------------------------

    def _retried(self, feed: str, handler: kube.Handler) -> kube.Handler:
        """`handler`, remembering failures to try again; a later event for the object wins."""

        async def call(obj: Object) -> None:
            key = (feed, kube.key_of(obj))
            self._failed.pop(key, None)
            try:
                await handler(obj)
            except errors.InfraError:
                self._failed[key] = (handler, obj)
                raise  # the informer logs it

        return call

    async def _retry_failed(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            for key, (handler, obj) in list(self._failed.items()):
                if self._failed.get(key) != (handler, obj):
                    continue  # superseded meanwhile
                try:
                    await handler(obj)
                except errors.InfraError:
                    continue  # logged when it first failed
                except Exception as exc:  # noqa: BLE001  the retry loop must survive
                    _log.error("%s %s/%s: %s", key[0], *key[1], type(exc).__name__)
                self._failed.pop(key, None)
                _log.info("%s %s/%s: applied on retry", key[0], *key[1])

    # -- ConfigSource outputs ------------------------------------------------------------------

    def _take(self, kind: str, store: dict[Key, dict[str, Object]], obj: Object) -> Key | None:
        """File `obj` under its ConfigSource (moving it if relabelled); that source's key."""
        namespace, name = kube.key_of(obj)
        before = self._sources.pop((kind, (namespace, name)), None)
        if before is not None:
            store.get(before, {}).pop(name, None)
        source = _meta(obj, "labels").get(SOURCE_LABEL)
        if not source:
            return before
        key = (namespace, source)
        self._sources[(kind, (namespace, name))] = key
        store.setdefault(key, {})[name] = obj  # re-inserted: the latest comes last
        return key

    def _drop(self, kind: str, store: dict[Key, dict[str, Object]], obj: Object) -> Key | None:
        namespace, name = kube.key_of(obj)
        key = self._sources.pop((kind, (namespace, name)), None)
        if key is not None:
            store.get(key, {}).pop(name, None)
        return key

    async def _apply_config_map(self, obj: Object) -> None:
        if (key := self._take("ConfigMap", self._config_maps, obj)) is not None:
            self._publish(key)

    async def _delete_config_map(self, obj: Object) -> None:
        if (key := self._drop("ConfigMap", self._config_maps, obj)) is not None:
            self._publish(key)

    async def _apply_secret(self, obj: Object) -> None:
        if (key := self._take("Secret", self._secrets, obj)) is not None:
            self._publish(key)

    async def _delete_secret(self, obj: Object) -> None:
        if (key := self._drop("Secret", self._secrets, obj)) is not None:
            self._publish(key)

    def _publish(self, key: Key) -> None:
        """Serve ConfigSource `key` from its outputs; removed with its last ConfigMap."""
        namespace, source = key
        maps = self._config_maps.get(key)
        if not maps:
            self._config_maps.pop(key, None)
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
        announced = annotations.get(SECRET_ANNOTATION)
        secrets = self._secrets.get(key, {})
        matching = [
            secret
            for name, secret in secrets.items()
            if _meta(secret, "annotations").get(HASH_ANNOTATION) == content_hash
            and announced in (None, name)
        ]
        document = rebuild_document(
            dict(config_map.get("data") or {}),
            _decoded(matching[-1]) if matching else None,
            content_hash,
            secret_pending=announced is not None or bool(secrets),
        )
        self.configs.publish(namespace, source, document, content_hash)

    # -- route tables --------------------------------------------------------------------------

    async def _apply_table(self, obj: Object) -> None:
        namespace, _ = config_map = kube.key_of(obj)
        try:
            table = check_route_table(obj.get("data") or {}, _meta(obj, "annotations"))
        except pydantic.ValidationError as exc:
            _log.error("route table %s/%s: not served: %s", *config_map, _invalid(exc))
            return
        self._tables[config_map] = (namespace, table.name)
        self.routes[(namespace, table.name)] = table
        _log.info("llmroute %s/%s: table %s", namespace, table.name, table.version[:12])

    async def _delete_table(self, obj: Object) -> None:
        if (route := self._tables.pop(kube.key_of(obj), None)) is not None:
            self.routes.pop(route, None)

    # -- AuditSinks ----------------------------------------------------------------------------

    async def _apply_sink(self, obj: Object) -> None:
        namespace, name = key = kube.key_of(obj)
        try:
            spec = AuditSink.model_validate(obj).spec
        except pydantic.ValidationError as exc:
            _log.error("asink %s/%s: not applied: %s", namespace, name, _invalid(exc))
            return
        secrets: dict[str, dict[str, str]] = {}
        for secret in sink_secret_names(spec):
            if (data := await self.client.secret_data(namespace, secret)) is not None:
                secrets[secret] = data
        # Relists hand every sink over again: restart its writers only when something changed.
        digest = hashlib.sha256(
            jsondoc.canonical([spec.model_dump(mode="json"), secrets])
        ).hexdigest()
        if self._sinks.get(key) == digest:
            return
        await self.audit.ensure_sink(namespace, name, spec, secrets=secrets)
        self._sinks[key] = digest
        _log.info("asink %s/%s: serving, %d sinks", namespace, name, len(spec.sinks))

    async def _delete_sink(self, obj: Object) -> None:
        namespace, name = key = kube.key_of(obj)
        self._sinks.pop(key, None)
        await self.audit.remove_sink(namespace, name)

    # -- VectorCollections on a Qdrant server --------------------------------------------------

    async def _apply_collection(self, obj: Object) -> None:
        namespace, name = key = kube.key_of(obj)
        try:
            spec = VectorCollection.model_validate(obj).spec
        except pydantic.ValidationError as exc:
            _log.error("vc %s/%s: not served: %s", namespace, name, _invalid(exc))
            return
        qdrant = spec.backend.qdrant if spec.backend is not None else None
        if qdrant is None:  # embedded (the operator ensures it through the admin API)
            if key in self._qdrant:
                await self._delete_collection(obj)
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
        self._qdrant.add(key)

    async def _delete_collection(self, obj: Object) -> None:
        namespace, name = key = kube.key_of(obj)
        self._qdrant.discard(key)
        await self.collections.forget_qdrant(namespace, name)


# -- lifespan ----------------------------------------------------------------------------------


async def start(app: FastAPI, settings: Settings) -> Feeds | None:
    """Start the feeds when `settings.kube_feeds`; `app.state.feeds` and `.routes` point at them."""
    app.state.feeds = None
    if not settings.kube_feeds:
        return None
    client = kube.KubeClient.connect(settings.kubeconfig)
    feeds = Feeds(
        client,
        configs=app.state.configs,
        audit=app.state.audit,
        collections=app.state.collections,
        namespace=settings.watch_namespace,
    )
    app.state.feeds = feeds
    app.state.routes = feeds.routes
    feeds.start()
    where = (
        f"namespace {settings.watch_namespace}" if settings.watch_namespace else "all namespaces"
    )
    _log.info("kubernetes feeds: watching %s at %s", where, client.credentials.server)
    return feeds


async def stop(feeds: Feeds | None) -> None:
    if feeds is not None:
        await feeds.stop()


__all__ = [
    "HASH_ANNOTATION",
    "SECRET_ANNOTATION",
    "SOURCE_LABEL",
    "TABLE_HASH_ANNOTATION",
    "Feeds",
    "check_route_table",
    "rebuild_document",
    "sink_secret_names",
    "start",
    "stop",
]
