"""The control plane's FastAPI application: `create_app()` builds it, `lifespan` owns its state.

Served by `llm-infra up` (standalone) and by the in-cluster Deployment. Clients
of engines (the registry of embedded collections) are created in `lifespan`,
never at import time (STYLE rule 8), and closed when it ends; routes receive
them through `deps`. Every error answers as a problem document (`problems`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import llm_infra
from llm_infra_controlplane import problems
from llm_infra_controlplane.collection_registry import CollectionRegistry
from llm_infra_controlplane.routes import collections, health
from llm_infra_controlplane.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.collections = CollectionRegistry(settings.data_dir / "collections")
        try:
            yield
        finally:
            # Flushes every open shard: a restart finds the data where it was.
            await app.state.collections.close()

    app = FastAPI(
        title="llm-infra control plane",
        version=llm_infra.__version__,
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(health.router)
    app.include_router(collections.router)
    return app
