"""The kopf application: handler registration for the four kinds, start-up and shut-down.

`run(settings)` is what `llm-infra operator` calls. kopf logs in through our
login handler, which asks `llm_infra.kube` for the credentials (kubeconfig with
exec plugins, or the pod's service account) and hands them to kopf; kopf calls
it again after a 401. Our own calls go through one `llm_infra.kube.Kube`.
Progress and diff-base are kept in annotations (a strict status schema would
prune kopf's `status.kopf`); peering is off unless a peering name is given;
logs are JSON by default; telemetry goes where `settings.otel` says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from llm_infra import kube, otel
from llm_infra.api.v1alpha1 import AuditSink, ConfigSource, Route, VectorCollection
from llm_infra_operator import metrics
from llm_infra_operator.context import Context
from llm_infra_operator.engine import Engine, Reconciler
from llm_infra_operator.reconcilers.auditsink import AuditSinkReconciler
from llm_infra_operator.reconcilers.configsource import ConfigSourceReconciler
from llm_infra_operator.reconcilers.route import RouteReconciler
from llm_infra_operator.reconcilers.vectorcollection import VectorCollectionReconciler
from llm_infra_operator.settings import OperatorSettings

RECONCILERS: Mapping[str, type[Reconciler[Any]]] = {
    VectorCollection.crd.kind: VectorCollectionReconciler,
    ConfigSource.crd.kind: ConfigSourceReconciler,
    AuditSink.crd.kind: AuditSinkReconciler,
    Route.crd.kind: RouteReconciler,
}
COMPONENT = "llm-infra-operator"
"""How the operator names itself: Events, field manager, telemetry's service.name."""
FORCE_RECONCILE_ANNOTATION = "infra.llmdevops.io/reconcile-requested-at"
"""Set or change it (e.g. to a timestamp) to reconcile a resource now."""
ANNOTATION_PREFIX = "infra.llmdevops.io"
KOPF_PREFIX = f"kopf.{ANNOTATION_PREFIX}"
"""kopf's own annotations: kopf leaves annotations under its prefix out of the diff it reacts
to, so they must not share the prefix of annotations users set (the force-reconcile one)."""

_log = logging.getLogger(__name__)


def build_registry() -> kopf.OperatorRegistry:
    """Handlers for the four kinds and the objects they reference, in a fresh registry."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
        config: OperatorSettings = memo.operator_settings
        credentials = await kube.load_credentials(config.kubeconfig, context=config.kube_context)
        return connection_info(credentials)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        config: OperatorSettings = memo.operator_settings
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=KOPF_PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
        settings.posting.reporting_component = "llm-infra-operator"
        settings.posting.level = logging.WARNING  # our own events say what happened
        settings.execution.max_workers = 4
        client = await kube.Kube.connect(
            config.kubeconfig, context=config.kube_context, component=COMPONENT
        )
        ctx = Context(config, client)
        telemetry = _telemetry(config)
        memo.telemetry = telemetry
        tracer = telemetry.tracer(__name__) if telemetry is not None else None
        engine = Engine(ctx, {kind: cls(ctx) for kind, cls in RECONCILERS.items()}, tracer=tracer)
        memo.engine = engine
        memo.resync = asyncio.create_task(engine.run())
        metrics.serve(config.health_host, config.metrics_port)
        _log.info("operator started", extra={"namespaces": config.namespaces or ["*"]})

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        memo.resync.cancel()
        await memo.engine.aclose()
        await memo.engine.ctx.aclose()
        if memo.telemetry is not None:
            memo.telemetry.shutdown()

    @kopf.on.probe(id="reconcilers", registry=registry)
    def probe(memo: kopf.Memo, **_: Any) -> int:
        return len(memo.engine.reconcilers)

    for kind, reconciler in RECONCILERS.items():
        _register_kind(registry, kind, reconciler)

    for ref_kind, plural in (("ConfigMap", "configmaps"), ("Secret", "secrets")):
        _register_reference(registry, ref_kind, plural)
    return registry


def _register_kind(
    registry: kopf.OperatorRegistry, kind: str, reconciler: type[Reconciler[Any]]
) -> None:
    crd = reconciler.model.crd
    resource = (crd.group, crd.version, crd.plural)

    async def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # Never fails for kopf: the engine retries transient failures itself, with backoff.
        await memo.engine.reconcile(kind, _plain(body))

    async def observe(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
        memo.engine.observed(kind, _plain(body), deleted=type == "DELETED")

    async def finalize(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # Returns once the deletion policy is carried out; the finalizer stays until then.
        await memo.engine.finalize(kind, _plain(body))

    def needs_finalizer(spec: kopf.Spec, **_: Any) -> bool:
        return reconciler.needs_finalizer(dict(spec))

    for cause in (kopf.on.create, kopf.on.update, kopf.on.resume):
        cause(*resource, id="reconcile", registry=registry)(reconcile)
    kopf.on.event(*resource, id="observe", registry=registry)(observe)
    # A finalizer only on objects whose deletion must reach outside Kubernetes.
    kopf.on.delete(*resource, id="finalize", registry=registry, when=needs_finalizer)(finalize)


def _register_reference(registry: kopf.OperatorRegistry, ref_kind: str, plural: str) -> None:
    async def changed(
        event: kopf.RawEvent, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
    ) -> None:
        if event.get("type") is not None and namespace:  # None: the initial listing
            memo.engine.referenced_changed(namespace, ref_kind, name)

    kopf.on.event("", "v1", plural, id=f"referenced-{plural}", registry=registry)(changed)


def connection_info(credentials: kube.Credentials) -> kopf.ConnectionInfo:
    """kopf's view of credentials from `llm_infra.kube` (exec plugins already run)."""
    return kopf.ConnectionInfo(
        server=credentials.server,
        ca_path=credentials.ca_file,
        ca_data=credentials.ca_data,
        insecure=credentials.insecure,
        token=credentials.current_token(),
        certificate_path=credentials.cert_file,
        certificate_data=credentials.cert_data,
        private_key_path=credentials.key_file,
        private_key_data=credentials.key_data,
        default_namespace=credentials.namespace,
        # kopf logs in again at this time (exec credentials), or after a 401 (the rest).
        expiration=credentials.expires_at,
    )


def _telemetry(settings: OperatorSettings) -> otel.OtelGuard | None:
    """Traces (a span per reconcile) and metrics to the configured exporter, if any."""
    if settings.otel.exporter == "none":
        return None
    config = settings.otel.named(COMPONENT)
    return otel.init_otel(config)


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A detached deep copy: kopf's Body is a live view that changes under a running task."""
    copied: dict[str, Any] = _copy(body)
    return copied


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class _QuietBookkeeping(logging.Filter):
    """Drop kopf's per-event "Handler ... succeeded" lines of the bookkeeping handlers.

    They fire on every watch event of every object (status writes included) and
    say nothing an operator of the operator needs; failures still pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not message.startswith(("Handler 'observe' ", "Handler 'referenced-"))


def run(settings: OperatorSettings) -> None:
    """Run the operator in the foreground until SIGINT/SIGTERM."""
    kopf.configure(log_format=kopf.LogFormat[settings.log_format.upper()])
    logging.getLogger("kopf.objects").addFilter(_QuietBookkeeping())
    kopf.run(
        registry=build_registry(),
        memo=kopf.Memo(operator_settings=settings),
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=settings.peering is None,
        peering_name=settings.peering,
        priority=settings.priority,
        liveness_endpoint=f"http://{settings.health_host}:{settings.health_port}/healthz",
    )
