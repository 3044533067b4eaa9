"""Liveness and readiness: what Kubernetes probes and `llm-infra up` users curl first.

/healthz says the process serves. /readyz checks each backend the API needs
now (NATS for audit, a writable data directory for the embedded collections,
in a cluster the Kubernetes feeds having listed once) and answers 503 naming
the ones that are not ready, so a load balancer sends no traffic to a control
plane that would fail it.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import llm_infra
from llm_infra_controlplane.audit.service import AuditService
from llm_infra_controlplane.feeds.feeds import Feeds
from llm_infra_controlplane.web import deps
from llm_infra_controlplane.web.deps import SettingsDep

router = APIRouter(tags=["health"])
AuditDep = Annotated[AuditService, deps.state("audit")]
FeedsDep = Annotated[Feeds | None, deps.state("feeds")]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str
    checks: dict[str, str] = Field(default_factory=dict)
    """Each backend: "ok", or why it is not ready."""


@router.get("/healthz", response_model=Health, summary="The process is up and serving")
async def healthz() -> Health:
    return Health(status="ok", version=llm_infra.__version__)


@router.get(
    "/readyz",
    response_model=Health,
    summary="Ready to take traffic: every backend answers",
    responses={503: {"model": Health, "description": "a backend is not ready"}},
)
async def readyz(settings: SettingsDep, audit: AuditDep, feeds: FeedsDep) -> Health | JSONResponse:
    checks = {
        "nats": await audit.ready() or "ok",
        "data": "ok"
        if os.access(settings.data_dir, os.W_OK)
        else f"{settings.data_dir} is not writable",
    }
    if feeds is not None:
        checks["kubernetes"] = feeds.ready() or "ok"
    if all(state == "ok" for state in checks.values()):
        return Health(status="ok", version=llm_infra.__version__, checks=checks)
    down = Health(status="unavailable", version=llm_infra.__version__, checks=checks)
    return JSONResponse(down.model_dump(), status_code=503, headers={"Retry-After": "1"})
