"""Liveness and readiness: what Kubernetes probes and `llm-infra up` users curl first."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

import llm_infra

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str


@router.get("/healthz", response_model=Health, summary="The process is up and serving")
async def healthz() -> Health:
    return Health(status="ok", version=llm_infra.__version__)


@router.get("/readyz", response_model=Health, summary="Ready to take traffic")
async def readyz() -> Health:
    # No backends yet: readiness equals liveness until the control plane
    # holds engines (vector, NATS, config) whose health it must report.
    return Health(status="ok", version=llm_infra.__version__)
