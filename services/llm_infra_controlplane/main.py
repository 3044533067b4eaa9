"""The control plane's FastAPI application: `create_app()` builds it, `lifespan` owns its state.

Served by `llm-infra up` (standalone) and by the in-cluster Deployment. Clients
of engines are created in `lifespan`, never at import time (STYLE rule 8).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import llm_infra
from llm_infra_controlplane.routes import health
from llm_infra_controlplane.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        yield

    app = FastAPI(
        title="llm-infra control plane",
        version=llm_infra.__version__,
        lifespan=lifespan,
    )
    app.include_router(health.router)
    return app
