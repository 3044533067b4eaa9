"""The control plane answers its probes; the app is built by create_app, with no network."""

from __future__ import annotations

from pathlib import Path

import httpx

import llm_infra
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings


async def test_healthz_and_readyz(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, standalone_admin_key=False))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://cp") as client,
    ):
        live = await client.get("/healthz")
        assert live.json() == {"status": "ok", "version": llm_infra.__version__, "checks": {}}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"nats": "ok", "data": "ok"}  # audit off: no NATS
        assert (await client.get("/nope")).status_code == 404


async def test_openapi_documents_the_probes() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
        spec = (await client.get("/openapi.json")).json()
    assert {"/healthz", "/readyz", "/v1/namespaces/{namespace}/configs/{name}"} <= set(
        spec["paths"]
    )
    assert spec["info"]["version"] == llm_infra.__version__
