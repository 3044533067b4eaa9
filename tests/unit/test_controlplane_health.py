"""The control plane answers its probes; the app is built by create_app, with no network."""

from __future__ import annotations

import httpx

import llm_infra
from llm_infra_controlplane.main import create_app


async def test_healthz_and_readyz() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
        for path in ("/healthz", "/readyz"):
            response = await client.get(path)
            assert response.status_code == 200
            assert response.json() == {"status": "ok", "version": llm_infra.__version__}
        assert (await client.get("/nope")).status_code == 404


async def test_openapi_documents_the_probes() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
        spec = (await client.get("/openapi.json")).json()
    assert {"/healthz", "/readyz"} <= set(spec["paths"])
    assert spec["info"]["version"] == llm_infra.__version__
