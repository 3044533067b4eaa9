"""/readyz checks the backends for real: NATS up is ready, NATS unreachable is 503 naming it."""

from __future__ import annotations

from pathlib import Path

import httpx

from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from tests.servers._process import free_port


async def _ready(settings: Settings) -> httpx.Response:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://cp") as client,
    ):
        return await client.get("/readyz")


async def test_ready_with_nats(tmp_path: Path, nats_url: str) -> None:
    answer = await _ready(Settings(data_dir=tmp_path, nats_url=nats_url, auth_mode="none"))
    assert answer.status_code == 200
    assert answer.json()["checks"] == {"nats": "ok", "data": "ok"}


async def test_not_ready_while_nats_is_unreachable(tmp_path: Path) -> None:
    closed = f"nats://127.0.0.1:{free_port()}"
    answer = await _ready(Settings(data_dir=tmp_path, nats_url=closed, auth_mode="none"))
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["data"] == "ok"
    assert body["checks"]["nats"] != "ok"
