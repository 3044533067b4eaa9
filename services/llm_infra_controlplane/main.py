"""The control plane's FastAPI application: `create_app()` builds it, `lifespan` owns its state.

Served by `llm-infra up` (standalone) and by the in-cluster Deployment. Clients
of engines (the registry of embedded collections) are created in `lifespan`,
never at import time (STYLE rule 8), and closed when it ends; routes receive
them through `deps`. Every error answers as a problem document (`problems`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import llm_infra
from llm_infra_controlplane import cluster, metrics, problems, security, standalone
from llm_infra_controlplane.audit_service import AuditService
from llm_infra_controlplane.collection_registry import CollectionRegistry
from llm_infra_controlplane.config_store import ConfigStore
from llm_infra_controlplane.routes import audit, collections, configs, health, vectors
from llm_infra_controlplane.settings import Settings


async def _standalone(app: FastAPI, settings: Settings, stop: asyncio.Event) -> asyncio.Task[None]:
    """Apply the resource folder now, then follow its changes until `stop` (standalone mode)."""
    assert settings.resources_dir is not None
    applier = standalone.Applier(
        app.state.collections,
        app.state.configs,
        app.state.audit,
        settings.data_dir,
        report=lambda line: print(f"llm-infra up: {line}", flush=True),
    )
    app.state.routes = applier.routes  # the compiled route tables, for the gateway
    await applier.apply(standalone.read_folder(settings.resources_dir))
    return asyncio.create_task(applier.follow(settings.resources_dir, stop))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.security = await security.Security.start(settings)
        app.state.collections = CollectionRegistry(
            settings.data_dir / "collections", qdrant_location=settings.qdrant_location
        )
        app.state.configs = ConfigStore()
        app.state.audit = AuditService(settings)
        stop = asyncio.Event()
        following: asyncio.Task[None] | None = None
        feeds: cluster.Feeds | None = None
        try:
            await app.state.audit.start()
            if settings.resources_dir is not None:
                following = await _standalone(app, settings, stop)
            feeds = await cluster.start(app, settings)  # in a cluster, with settings.kube_feeds
            yield
        finally:
            await cluster.stop(feeds)  # first: the feeds write into the services closed below
            stop.set()
            app.state.configs.close()  # ends open watch streams
            if following is not None:
                await following
            await app.state.audit.close()
            # Flushes every open shard: a restart finds the data where it was.
            await app.state.collections.close()

    app = FastAPI(
        title="llm-infra control plane",
        version=llm_infra.__version__,
        lifespan=lifespan,
    )
    problems.install(app)
    app.add_middleware(metrics.RedMetrics)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Each /v1 router declares the problem statuses it can answer (409: a locked shard or a
    # spec that conflicts; 502-504: Qdrant or NATS failing).
    app.include_router(
        collections.router,
        dependencies=[security.require("collections", writes="admin")],
        responses=problems.responses(*problems.API_ERRORS, 409),
    )
    app.include_router(
        vectors.router,
        dependencies=[security.require("collections")],
        responses=problems.responses(*problems.API_ERRORS, 409, 502, 503, 504),
    )
    app.include_router(
        configs.router,
        dependencies=[security.require("configs")],
        responses=problems.responses(*problems.API_ERRORS),
    )
    app.include_router(
        audit.router,
        dependencies=[security.require("auditsinks")],
        responses=problems.responses(*problems.API_ERRORS, 502, 503, 504),
    )
    return app
