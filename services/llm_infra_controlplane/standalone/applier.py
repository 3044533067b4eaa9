"""Standalone mode: a folder of resource YAML, applied on one machine with the SDK's code.

`llm-infra up --resources DIR` reads every `*.yaml`/`*.yml` in DIR (several
documents per file are fine): the four kinds, validated by the same models
the CRDs come from, and the ConfigMaps and Secrets ConfigSource layers read.
Each kind is applied with the decide/apply code the operator uses: collections
through `CollectionRegistry` (embedded core), ConfigSources through
`config.resolve_config_source` into the `ConfigStore`, AuditSinks through
`AuditService.ensure_sink`, Routes through `router.compile_route`. Then DIR is
watched: saving a file applies what changed (GitOps on a laptop). A resource
that fails is reported with its file and field and the others still apply; a
ConfigSource that stops validating keeps serving its last good version.

What differs from a cluster, on purpose: every VectorCollection lives in the
embedded core (there is no Qdrant server on a laptop), an AuditSink's stream
has one replica (there is one nats-server) and its file sinks write below
`<data>/audit-sinks/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import watchfiles
import yaml

from llm_infra import config, errors, jsondoc, kube, reconcile, router
from llm_infra.api.v1alpha1 import KINDS, AuditSink, ConfigSource, Route, VectorCollection
from llm_infra.api.v1alpha1._common import duration_seconds
from llm_infra_controlplane.audit.service import AuditService
from llm_infra_controlplane.configs.store import ConfigStore
from llm_infra_controlplane.vectors.registry import CollectionRegistry

DEFAULT_NAMESPACE = "default"
YAML = (".yaml", ".yml")
KIND_BY_NAME = {kind.crd.kind: kind for kind in KINDS}
# The order resources apply in: what others read first.
ORDER = ("VectorCollection", "ConfigSource", "AuditSink", "Route")
BACKOFF = reconcile.Backoff(initial=1.0, maximum=30.0)

_log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # kind, namespace, name


@dataclass(frozen=True)
class Declared:
    """One resource of the folder: its model, where it came from, and a digest of its text."""

    kind: str
    namespace: str
    name: str
    obj: Any
    source: str
    digest: str


@dataclass
class Folder:
    """What one read of the folder found."""

    resources: dict[Key, Declared] = field(default_factory=dict)
    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def objects(self, namespace: str) -> config.DictObjectReader:
        """The ConfigMaps and Secrets of one namespace, as ConfigSource layers read them."""
        return config.DictObjectReader(
            config_maps={n: d for (ns, n), d in self.config_maps.items() if ns == namespace},
            secrets={n: d for (ns, n), d in self.secrets.items() if ns == namespace},
        )


def read_folder(directory: Path) -> Folder:
    """Parse every YAML document below `directory`; problems are collected, never raised."""
    folder = Folder()
    for path in sorted(p for p in directory.iterdir() if p.suffix in YAML and p.is_file()):
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        except OSError as exc:
            folder.problems.append(f"{path.name}: not readable: {exc.strerror or exc}")
            continue
        except yaml.YAMLError as exc:
            folder.problems.append(f"{path.name}: not readable as YAML: {_yaml_problem(exc)}")
            continue
        for index, document in enumerate(documents):
            _take(folder, document, f"{path.name}#{index + 1}")
    return folder


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Line, column and problem only: str(exc) quotes the offending lines, Secret values too."""
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or type(exc).__name__)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def _take(folder: Folder, document: Any, source: str) -> None:
    if not isinstance(document, dict) or "kind" not in document:
        folder.problems.append(f"{source}: not a Kubernetes object (no kind)")
        return
    kind = str(document["kind"])
    meta = document.get("metadata") or {}
    namespace = str(meta.get("namespace") or DEFAULT_NAMESPACE)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        folder.problems.append(f"{source}: {kind} without metadata.name: give it a name")
        return
    if kind in ("ConfigMap", "Secret"):
        if kind == "Secret":
            try:
                data = kube.decode_secret(document)
            except (ValueError, TypeError):  # binascii.Error is a ValueError; no value is shown
                folder.problems.append(
                    f"{source}: Secret {name}: a data value is not base64: encode it, or use"
                    " stringData"
                )
                return
        else:
            data = {k: str(v) for k, v in (document.get("data") or {}).items()}
        target = folder.config_maps if kind == "ConfigMap" else folder.secrets
        target[(namespace, name)] = data
        return
    model = KIND_BY_NAME.get(kind)
    if model is None:
        folder.problems.append(f"{source}: kind {kind} is not applied in standalone mode")
        return
    try:
        obj = model.from_manifest(document)  # judged as the API server would judge it
    except pydantic.ValidationError as exc:
        folder.problems.append(f"{source}: {kind} {name}: {errors.validation_text(exc)}")
        return
    # The model's JSON form: YAML's dates and the like have no canonical JSON of their own.
    digest = jsondoc.canonical_sha256(obj.model_dump(mode="json", by_alias=True))
    folder.resources[(kind, namespace, name)] = Declared(kind, namespace, name, obj, source, digest)


class Applier:
    """Applies a folder's resources to the control plane's services, then follows its changes."""

    def __init__(
        self,
        collections: CollectionRegistry,
        configs: ConfigStore,
        audit: AuditService,
        data_dir: Path,
        *,
        report: Callable[[str], None] | None = None,
        http_policy: config.HttpLayerPolicy | None = None,
    ) -> None:
        # http_policy: what ConfigSource http layers may fetch. The default refuses local
        # addresses: a layer could otherwise serve this machine's private endpoints as config.
        self.collections = collections
        self.configs = configs
        self.audit = audit
        self.data_dir = data_dir
        self.routes: dict[tuple[str, str], router.RouteTable] = {}
        self._report = report or _log.info
        self._declared: dict[Key, Declared] = {}
        """Every resource applied (or tried) from the folder, as last read."""
        self._applied: dict[Key, Declared] = {}
        self._folder = Folder()
        self._http_cache = config.HttpLayerCache()
        self._http_policy = http_policy or config.HttpLayerPolicy()
        self._refresh_due: dict[tuple[str, str], float] = {}
        self.reconciler: reconcile.Reconciler[Declared] = reconcile.Reconciler(
            "standalone", backoff=BACKOFF, report=self._failed
        )
        for kind in ORDER:
            self.reconciler.register(kind, apply=self._apply_one, remove=self._remove)

    async def apply(self, folder: Folder) -> None:
        """Bring the services in line with `folder`: new and changed resources, then removed."""
        for problem in folder.problems:
            self._report(f"skipped {problem}")
        self._folder = folder
        for kind in ORDER:
            for key, declared in sorted(folder.resources.items()):
                if key[0] != kind:
                    continue
                before = self._declared.get(key)
                # ConfigSources read ConfigMaps and Secrets: re-resolve them on every change.
                if before == declared and kind != "ConfigSource":
                    continue  # applied, or failing and reported (retried if waiting can help)
                if before is not None and before.digest != declared.digest:
                    self.reconciler.forget(key)  # a new version: its failures are news again
                self._declared[key] = declared
                if await self.reconciler.apply(key, declared):
                    self._applied[key] = declared
        for key in [k for k in self._declared if k not in folder.resources]:
            self._applied.pop(key, None)
            await self.reconciler.remove(key, self._declared.pop(key))

    async def aclose(self) -> None:
        """Cancel the retries still pending (shutdown)."""
        await self.reconciler.aclose()

    def _failed(self, key: Key, message: str, failed: bool) -> None:
        declared = self._declared.get(key)
        where = f" ({declared.source})" if declared is not None else ""
        what = "failed" if failed else "applied"
        self._report(f"{what} {key[0]} {key[1]}/{key[2]}{where}: {message}")

    async def _apply_one(self, key: Key, declared: Declared) -> None:
        ns, name, obj = declared.namespace, declared.name, declared.obj
        if isinstance(obj, VectorCollection):
            collection = obj.spec.engine_collection(ns, name)
            info = await self.collections.ensure(ns, name, collection, obj.spec)
            what = "created" if info.created else ("updated" if info.changes else "ready")
            self._report(f"vc {ns}/{name}: {what}, {info.points_count} points (embedded core)")
        elif isinstance(obj, ConfigSource):
            await self._resolve(ns, name, obj)
        elif isinstance(obj, AuditSink):
            spec = obj.spec
            if spec.stream.replicas != 1:  # one nats-server holds one replica
                spec = spec.model_copy(
                    update={"stream": spec.stream.model_copy(update={"replicas": 1})}
                )
            secrets = {n: d for (s, n), d in self._folder.secrets.items() if s == ns}
            await self.audit.ensure_sink(
                ns, name, spec, secrets=secrets, file_root=self.data_dir / "audit-sinks"
            )
            self._report(f"asink {ns}/{name}: stream ready, {len(spec.sinks)} sinks")
        elif isinstance(obj, Route):
            table = router.compile_route(ns, name, obj.spec, generation=1)
            self.routes[(ns, name)] = table
            weights = router.weights_column(router.effective_weights(obj.spec))
            self._report(f"llmroute {ns}/{name}: {weights}")

    async def _resolve(self, ns: str, name: str, obj: ConfigSource) -> None:
        resolution = await config.resolve_config_source(
            obj.spec,
            self._folder.objects(ns),
            http_cache=self._http_cache,
            http_policy=self._http_policy,
        )
        remote = any(layer.vault or layer.http for layer in obj.spec.layers)
        if remote:  # read again every refresh.interval (in-folder layers follow the watch)
            loop = asyncio.get_running_loop()
            interval = duration_seconds(obj.spec.refresh.interval)
            self._refresh_due[(ns, name)] = loop.time() + interval
        if not resolution.valid:
            kept = self.configs.get(ns, name)
            keeps = f"; serving version {kept.version}" if kept else ""
            raise errors.ConfigError(
                f"not published: {'; '.join(resolution.problems)}{keeps}", key=f"{ns}/{name}"
            )
        assert resolution.content_hash is not None
        before = self.configs.get(ns, name)
        served = self.configs.publish(ns, name, resolution.document, resolution.content_hash)
        if before is None or before.content_hash != served.content_hash:
            self._report(f"cfgsrc {ns}/{name}: version {served.version} published")

    async def _remove(self, key: Key, declared: Declared) -> None:
        ns, name, obj = declared.namespace, declared.name, declared.obj
        if isinstance(obj, VectorCollection):
            collection = obj.spec.engine_collection(ns, name)
            if obj.spec.deletion_policy == "Delete":
                await self.collections.drop_of(ns, name)
                self._report(f"vc {ns}/{name}: removed, collection dropped (deletionPolicy Delete)")
            else:
                self._report(f"vc {ns}/{name}: removed, collection {collection} kept (Retain)")
        elif isinstance(obj, ConfigSource):
            self.configs.remove(ns, name)
            self._refresh_due.pop((ns, name), None)
            self._report(f"cfgsrc {ns}/{name}: removed, no longer served")
        elif isinstance(obj, AuditSink):
            # What the service did, not what the policy asked: a stream that is not this
            # AuditSink's is never deleted, whatever its deletionPolicy says.
            outcome = await self.audit.remove_sink(ns, name)
            self._report(f"asink {ns}/{name}: removed; {outcome}")
        elif isinstance(obj, Route):
            self.routes.pop((ns, name), None)
            self._report(f"llmroute {ns}/{name}: removed")

    async def refresh(self) -> None:
        """Re-read the ConfigSources with OpenBao/HTTP layers whose refresh.interval is up."""
        now = asyncio.get_running_loop().time()
        for (ns, name), due in list(self._refresh_due.items()):
            declared = self._applied.get(("ConfigSource", ns, name))
            if due > now or declared is None:
                continue
            with contextlib.suppress(errors.InfraError):  # reported; the last good stays
                await self._resolve(ns, name, declared.obj)

    async def follow(self, directory: Path, stop: asyncio.Event) -> None:
        """Apply the folder again on every change, and refresh remote layers, until `stop`."""
        watcher = watchfiles.awatch(
            directory, stop_event=stop, debounce=200, step=50, yield_on_timeout=True,
            rust_timeout=1000,
        )  # fmt: skip
        async for changes in watcher:
            # Editors and tools write temporary files next to the real ones: YAML only.
            names = sorted({Path(p).name for _, p in changes if Path(p).suffix in YAML})
            if names:
                self._report(f"changed: {', '.join(names)}")
                await self.apply(read_folder(directory))
            await self.refresh()


def summary(folder: Folder) -> Mapping[str, int]:
    counts: dict[str, int] = {}
    for kind, _, _ in folder.resources:
        counts[kind] = counts.get(kind, 0) + 1
    return counts
