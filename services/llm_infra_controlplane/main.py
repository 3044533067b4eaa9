"""The control plane's FastAPI application: `create_app()` builds it, `lifespan` owns its state.

Served by `llm-infra up` (standalone) and `llm-infra serve` (in a cluster). What
the routes use is built in `lifespan`, never at import time, and closed when it
ends: telemetry (`llm_infra.otel`, a server span per request), access
(`access.Security`), the collection registry, the config store, the audit
service, and either the standalone applier (a folder of resource YAML) or, in a
cluster, the feeds from the API server. Routes receive them through
`Depends` (`web.deps`). Every error answers as a problem (`web.problems`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

import llm_infra
from llm_infra import config, kube, otel
from llm_infra_controlplane import health
from llm_infra_controlplane.access.service import Security
from llm_infra_controlplane.audit import routes as audit_routes
from llm_infra_controlplane.audit.service import AuditService
from llm_infra_controlplane.configs import routes as config_routes
from llm_infra_controlplane.configs.store import ConfigStore
from llm_infra_controlplane.feeds.feeds import Feeds
from llm_infra_controlplane.settings import Settings
from llm_infra_controlplane.standalone.applier import Applier, read_folder
from llm_infra_controlplane.vectors import admin as collection_routes
from llm_infra_controlplane.vectors import routes as vector_routes
from llm_infra_controlplane.vectors.registry import CollectionRegistry
from llm_infra_controlplane.web import links, metrics, problems
from llm_infra_controlplane.web.guard import Guard

COMPONENT = "llm-infra-controlplane"
"""How the control plane names itself: telemetry's service.name, the API server's events."""

_log = logging.getLogger(__name__)


async def _standalone(app: FastAPI, settings: Settings, stack: AsyncExitStack) -> None:
    """Apply the resource folder now, then follow its changes until shutdown."""
    assert settings.resources_dir is not None
    applier = Applier(
        app.state.collections,
        app.state.configs,
        app.state.audit,
        settings.data_dir,
        report=lambda line: print(f"llm-infra up: {line}", flush=True),
        http_policy=config.HttpLayerPolicy(
            allow_local_addresses=settings.http_layer_allow_local_addresses,
            max_bytes=settings.http_layer_max_bytes,
        ),
    )
    app.state.routes = applier.routes  # the compiled route tables, for the gateway
    stack.push_async_callback(applier.aclose)
    await applier.apply(read_folder(settings.resources_dir))
    stop = asyncio.Event()
    following = asyncio.create_task(applier.follow(settings.resources_dir, stop))

    async def end() -> None:
        stop.set()
        await following

    stack.push_async_callback(end)


async def _feeds(app: FastAPI, settings: Settings, stack: AsyncExitStack) -> None:
    """In a cluster: serve what the operator writes, from informers on the API server."""
    client = await kube.Kube.connect(
        settings.kubeconfig, context=settings.kube_context, component=COMPONENT
    )
    stack.push_async_callback(client.aclose)
    feeds = Feeds(
        client,
        configs=app.state.configs,
        audit=app.state.audit,
        collections=app.state.collections,
        sink_root=settings.data_dir / "audit-sinks",
        namespace=settings.watch_namespace,
    )
    app.state.feeds = feeds
    app.state.routes = feeds.routes
    feeds.start()
    # First to stop: the feeds write into the services closed after them.
    stack.push_async_callback(feeds.stop)
    where = f"namespace {settings.watch_namespace}" if settings.watch_namespace else "all"
    _log.info("kubernetes feeds: watching %s at %s", where, client.server)


async def start_security(settings: Settings) -> Security:
    """Access as the settings say: the mode, provisioned keys, rules, JWKS, the admin key."""
    return await Security.start(
        settings.auth_mode,
        api_keys=settings.api_keys,
        rules=settings.access_rules,
        jwt=settings.jwt,
        admin_key_dir=settings.data_dir if settings.standalone_admin_key else None,
        auth_failures_per_minute=settings.limits.auth_failures_per_minute,
        concurrent_key_checks=settings.limits.concurrent_key_checks,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    telemetry: otel.OtelGuard | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if telemetry is not None:
                stack.callback(telemetry.shutdown)  # last: it flushes what the rest reported
            app.state.settings = settings
            app.state.feeds = None
            app.state.security = await start_security(settings)
            app.state.collections = CollectionRegistry(
                settings.data_dir / "collections", qdrant_location=settings.qdrant_location
            )
            # Flushes every open shard last: a restart finds the data where it was.
            stack.push_async_callback(app.state.collections.close)
            app.state.configs = ConfigStore()
            # In a cluster the operator writes the audit streams; standalone, we do.
            app.state.audit = AuditService(
                settings.nats_url,
                token=settings.nats_token,
                owns_streams=not settings.kube_feeds,
                replay_window=settings.audit_replay_window,
            )
            stack.push_async_callback(app.state.audit.close)
            stack.callback(app.state.configs.close)  # ends open watch streams
            await app.state.audit.start()
            if settings.resources_dir is not None:
                await _standalone(app, settings, stack)
            if settings.kube_feeds:
                await _feeds(app, settings, stack)
            yield

    app = FastAPIOffline(
        title="llm-infra control plane",
        version=llm_infra.__version__,
        lifespan=lifespan,
        # operationIds are the route functions' names: links (web.links) and clients use them.
        generate_unique_id_function=links.operation_id,
    )
    problems.install(app)
    app.add_middleware(metrics.RedMetrics)
    # Outermost: limits and authentication come before anything reads the body.
    app.add_middleware(Guard, limits=settings.limits)
    telemetry = _telemetry(app, settings)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Each /v1 router declares the problem statuses it can answer (409: a locked shard or a
    # spec that conflicts; 502-504: Qdrant or NATS failing).
    app.include_router(
        collection_routes.router,
        responses=problems.responses(*problems.API_ERRORS, 409),
    )
    app.include_router(
        vector_routes.router,
        responses=problems.responses(*problems.API_ERRORS, 409, 502, 503, 504),
    )
    app.include_router(
        config_routes.router,
        responses=problems.responses(*problems.API_ERRORS),
    )
    app.include_router(
        audit_routes.router,
        responses=problems.responses(*problems.API_ERRORS, 502, 503, 504),
    )
    return app


def _telemetry(app: FastAPI, settings: Settings) -> otel.OtelGuard | None:
    """Traces, metrics and (if asked) logs to the configured exporter; a span per request.

    The providers are the app's own, not the process-global ones: a test
    process builds many apps. Health and metrics probes are not traced.
    """
    if settings.otel.exporter == "none":
        return None
    config = settings.otel.named(COMPONENT)
    guard = otel.init_otel(config, set_global=False)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=guard.tracer_provider,
        meter_provider=guard.meter_provider,
        excluded_urls="healthz,readyz,metrics",
    )
    return guard


__all__ = ["COMPONENT", "create_app", "start_security"]
