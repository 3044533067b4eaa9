"""The config API of the real app: GET/list over ASGI, the SSE watch and the SDK over a socket.

The app is `create_app` with its lifespan (real NATS for the audit service it
starts). GET and list go through httpx's ASGI transport; the watch stream
needs a real server, since that transport buffers whole responses: uvicorn
serves the app on a free port in this test's event loop, and the test
publishes into the app's own `ConfigStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from llm_infra import config, errors, jsondoc
from llm_infra.client import (
    ConfigVersion,
    ControlPlaneClient,
    ServedConfigSource,
    watch_settings,
)
from llm_infra_controlplane.access import admin_key, policy
from llm_infra_controlplane.configs import routes as configs
from llm_infra_controlplane.configs.store import ConfigStore
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from tests.servers._process import free_port

DEADLINE = 5.0
"""Bound of every wait for something that normally takes milliseconds."""
DELIVERY = 1.0
"""How soon a published version must reach an open watch stream."""
HEARTBEAT = 0.2
T = TypeVar("T")
URL = "/v1/namespaces/team-a/configs"


def _settings(tmp_path: Path, nats_url: str, **overrides: Any) -> Settings:
    # Authentication is tested on its own (controlplane/test_access.py); here, the config API.
    fields: dict[str, Any] = {"auth_mode": "none", "standalone_admin_key": False} | overrides
    return Settings(data_dir=tmp_path / "data", nats_url=nats_url, **fields)


def _publish(store: ConfigStore, document: dict[str, object], name: str = "app") -> ConfigVersion:
    return store.publish("team-a", name, document, config.content_hash(document))


@pytest.fixture
async def app(tmp_path: Path, nats_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(_settings(tmp_path, nats_url))
    # httpx's ASGI transport sends no lifespan events: run the app's lifespan here.
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def store(app: FastAPI) -> ConfigStore:
    configs_: ConfigStore = app.state.configs
    return configs_


async def test_get_answers_the_version_with_its_etag(
    http: httpx.AsyncClient, store: ConfigStore
) -> None:
    version = _publish(store, {"model": "small", "temperature": 0.2})
    response = await http.get(f"{URL}/app")
    assert response.status_code == 200
    assert response.headers["etag"] == f'"{version.content_hash}"'
    assert response.headers["cache-control"] == "no-cache"
    body = response.json()
    assert set(body) == {"namespace", "name", "version", "contentHash", "document", "updatedAt"}
    assert (body["version"], body["contentHash"], body["document"]) == (
        1,
        version.content_hash,
        {"model": "small", "temperature": 0.2},
    )


@pytest.mark.parametrize(
    "if_none_match",
    ['"{hash}"', 'W/"{hash}"', '"stale", "{hash}"', "*"],
    ids=["strong", "weak", "list", "any"],
)
async def test_a_matching_if_none_match_answers_304_without_a_body(
    http: httpx.AsyncClient, store: ConfigStore, if_none_match: str
) -> None:
    version = _publish(store, {"model": "small"})
    header = if_none_match.format(hash=version.content_hash)
    response = await http.get(f"{URL}/app", headers={"If-None-Match": header})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == version.etag


async def test_a_stale_if_none_match_answers_the_new_version(
    http: httpx.AsyncClient, store: ConfigStore
) -> None:
    old = _publish(store, {"model": "small"})
    new = _publish(store, {"model": "large"})
    response = await http.get(f"{URL}/app", headers={"If-None-Match": old.etag})
    assert response.status_code == 200
    assert response.json()["contentHash"] == new.content_hash


@pytest.mark.parametrize("path", ["/app", "/app/watch"])
async def test_an_unknown_config_is_a_404_problem_naming_the_fix(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(f"{URL}{path}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "external.not_found"
    assert "team-a/app" in problem["detail"]
    assert "apply a ConfigSource named 'app'" in problem["detail"]


async def test_a_bad_namespace_is_a_422_problem_naming_the_field(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/namespaces/Team_A/configs/app")
    assert response.status_code == 422
    assert response.json()["field"] == "namespace"


async def test_list_answers_the_namespaces_configs(
    http: httpx.AsyncClient, store: ConfigStore
) -> None:
    app = _publish(store, {"v": 1})
    _publish(store, {"v": 2}, name="worker")
    worker = _publish(store, {"v": 3}, name="worker")
    store.publish("team-b", "app", {}, config.content_hash({}))
    response = await http.get(URL)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["name"], i["version"], i["contentHash"]) for i in items] == [
        ("app", 1, app.content_hash),
        ("worker", 2, worker.content_hash),
    ]
    assert all("document" not in item for item in items)
    assert (await http.get("/v1/namespaces/team-c/configs")).json() == {"items": []}


async def test_the_client_reads_configs_with_etags(
    cp: ControlPlaneClient, store: ConfigStore
) -> None:
    version = _publish(store, {"model": "small"})
    got = await cp.get_config("team-a", "app")
    assert got == version
    assert await cp.get_config("team-a", "app", etag=version.etag) is None
    assert await cp.get_config("team-a", "app", etag=version.content_hash) is None
    newer = _publish(store, {"model": "large"})
    assert await cp.get_config("team-a", "app", etag=version.etag) == newer
    assert [(c.name, c.version) for c in await cp.list_configs("team-a")] == [("app", 2)]
    with pytest.raises(errors.NotFound) as missing:
        await cp.get_config("team-a", "nope")
    assert "apply a ConfigSource named 'nope'" in str(missing.value)


async def test_the_client_watch_ends_when_the_config_is_gone(cp: ControlPlaneClient) -> None:
    async with asyncio.timeout(DEADLINE):
        assert [v async for v in cp.watch_config("team-a", "nope")] == []


# -- over a socket -----------------------------------------------------------------------------


class _Uvicorn(uvicorn.Server):
    """uvicorn in the test's loop, shut down as `llm-infra up` must: the watches end first.

    uvicorn waits for open responses before the lifespan shutdown, so an open
    watch stream would hold shutdown up forever unless the store closes first.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test runner keeps its signals

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        store: ConfigStore = self.app.state.configs
        store.close()
        await super().shutdown(sockets)


@dataclasses.dataclass
class Served:
    """One running control plane."""

    app: FastAPI
    port: int
    server: _Uvicorn
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> ConfigStore:
        store: ConfigStore = self.app.state.configs
        return store

    async def stop(self) -> None:
        self.server.should_exit = True
        async with asyncio.timeout(DEADLINE):
            await self.task


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path, nats_url: str) -> AsyncIterator[Serve]:
    """Start the app under uvicorn (`port=` to come back on the same one, other keywords are
    Settings); all stop at the end."""
    running: list[Served] = []

    async def start(port: int | None = None, **settings: Any) -> Served:
        app = create_app(_settings(tmp_path, nats_url, **settings))
        app.dependency_overrides[configs.heartbeat_interval] = lambda: HEARTBEAT
        port = port or free_port()
        server = _Uvicorn(
            uvicorn.Config(app, host="127.0.0.1", port=port, ws="none", log_level="warning"), app
        )
        served = Served(app, port, server, asyncio.create_task(server.serve()))
        running.append(served)
        async with asyncio.timeout(DEADLINE):
            while not server.started:
                assert not served.task.done(), "uvicorn stopped while starting"
                await asyncio.sleep(0.01)
        return served

    yield start
    for served in running:
        if not served.task.done():
            await served.stop()


class _Events:
    """The events of one raw watch response, and its text (comments included)."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.aiter_bytes()
        self._decoder = jsondoc.SseDecoder()
        self._ready: list[jsondoc.SseEvent] = []
        self.text = ""

    async def _read(self) -> bool:
        chunk = await anext(self._chunks, None)
        if chunk is None:
            return False
        self.text += chunk.decode()
        self._ready.extend(self._decoder.feed(chunk))
        return True

    async def next(self, within: float = DELIVERY) -> jsondoc.SseEvent:
        async with asyncio.timeout(within):
            while not self._ready:
                assert await self._read(), "the stream ended"
        return self._ready.pop(0)

    async def until_text(self, text: str, within: float = DEADLINE) -> None:
        async with asyncio.timeout(within):
            while text not in self.text:
                assert await self._read(), "the stream ended"

    async def end(self, within: float = DEADLINE) -> None:
        async with asyncio.timeout(within):
            while await self._read():
                pass


def _version(event: jsondoc.SseEvent) -> ConfigVersion:
    assert event.event == "config"
    version = ConfigVersion.model_validate_json(event.data)
    assert event.id == version.content_hash
    return version


async def _next(items: AsyncIterator[T], within: float = DELIVERY) -> T:
    async with asyncio.timeout(within):
        return await anext(items)


async def test_the_stream_sends_the_current_version_then_each_new_one(serve: Serve) -> None:
    served = await serve()
    first = _publish(served.store, {"model": "small"})
    async with (
        httpx.AsyncClient(base_url=served.url) as http,
        http.stream("GET", f"{URL}/app/watch") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        events = _Events(response)
        assert _version(await events.next()) == first
        await events.until_text(": keepalive\n\n")  # idle: heartbeats keep proxies from timing out
        second = _publish(served.store, {"model": "large"})
        assert _version(await events.next()) == second
        assert (second.version, second.document) == (2, {"model": "large"})


async def test_last_event_id_skips_the_version_the_client_has(serve: Serve) -> None:
    served = await serve()
    first = _publish(served.store, {"model": "small"})
    headers = {"Last-Event-ID": first.content_hash}
    async with (
        httpx.AsyncClient(base_url=served.url) as http,
        http.stream("GET", f"{URL}/app/watch", headers=headers) as response,
    ):
        events = _Events(response)
        await events.until_text(": keepalive")
        assert "event:" not in events.text
        second = _publish(served.store, {"model": "large"})
        assert _version(await events.next()) == second


async def test_one_watcher_leaving_does_not_disturb_the_others(serve: Serve) -> None:
    served = await serve()
    first = _publish(served.store, {"v": 1})
    async with ControlPlaneClient(served.url) as a, ControlPlaneClient(served.url) as b:
        leaving, staying = a.watch_config("team-a", "app"), b.watch_config("team-a", "app")
        assert await _next(leaving) == first
        assert await _next(staying) == first
        await leaving.aclose()  # hangs up mid-stream
        second = _publish(served.store, {"v": 2})
        assert await _next(staying) == second
        third = _publish(served.store, {"v": 3})
        assert await _next(staying) == third
        await staying.aclose()


async def test_shutdown_with_an_open_stream_completes_and_ends_it_cleanly(serve: Serve) -> None:
    served = await serve()
    first = _publish(served.store, {"v": 1})
    async with (
        httpx.AsyncClient(base_url=served.url) as http,
        http.stream("GET", f"{URL}/app/watch") as response,
    ):
        events = _Events(response)
        assert _version(await events.next()) == first
        await served.stop()  # bounded by DEADLINE
        await events.end()  # a complete response: no error, no hang


async def test_the_client_resumes_after_a_restart_and_stops_when_the_config_is_gone(
    serve: Serve,
) -> None:
    served = await serve()
    first = _publish(served.store, {"model": "small"})
    async with ControlPlaneClient(served.url) as cp:
        versions = cp.watch_config("team-a", "app", backoff_initial=0.05, backoff_max=0.2)
        assert await _next(versions) == first
        await served.stop()
        restarted = await serve(port=served.port)
        # The new process publishes what the client has, then news: only the news arrives.
        _publish(restarted.store, {"model": "small"})
        second = _publish(restarted.store, {"model": "large"})
        assert await _next(versions, DEADLINE) == second
        restarted.store.remove("team-a", "app")
        async with asyncio.timeout(DEADLINE):
            assert [v async for v in versions] == []


class AppSettings(config.InfraSettings):
    model: str
    max_tokens: int = 256


async def test_settings_reload_with_each_valid_version_and_keep_the_last_good(
    serve: Serve,
) -> None:
    served = await serve()
    _publish(served.store, {"model": "small"})
    source = ServedConfigSource(served.url, "team-a", "app")
    # `read` is synchronous (settings load synchronously): off this loop, which serves it.
    loaded = await asyncio.to_thread(config.load_settings, AppSettings, sources=[source], env=False)
    assert (loaded.model, loaded.max_tokens) == ("small", 256)

    rejected: list[errors.InfraError] = []
    reported = asyncio.Event()

    def on_error(error: errors.InfraError) -> None:
        rejected.append(error)
        reported.set()

    updates = watch_settings(AppSettings, source, env=False, on_error=on_error)
    current = await _next(updates)
    assert (current.model, current.max_tokens) == ("small", 256)

    _publish(served.store, {"model": "large", "max_tokens": "plenty"})
    pending = asyncio.ensure_future(_next(updates, DEADLINE))
    async with asyncio.timeout(DEADLINE):
        await reported.wait()
    assert not pending.done()  # the invalid version produced no settings
    (error,) = rejected
    assert isinstance(error, errors.ConfigError)
    assert error.key == "max_tokens"
    assert "config team-a/app served by" in str(error)
    assert "(version 2)" in str(error)
    assert "plenty" not in str(error)  # a value may be a secret: never in the message

    _publish(served.store, {"model": "large", "max_tokens": 512})
    current = await pending
    assert (current.model, current.max_tokens) == ("large", 512)
    await updates.aclose()


async def test_an_invalid_first_version_is_the_callers_error(serve: Serve) -> None:
    served = await serve()
    _publish(served.store, {"max_tokens": 5})
    source = ServedConfigSource(served.url, "team-a", "app")
    with pytest.raises(errors.ConfigError) as invalid:
        await _next(watch_settings(AppSettings, source, env=False), DEADLINE)
    assert invalid.value.key == "model"
    with pytest.raises(errors.NotFound):
        await asyncio.to_thread(ServedConfigSource(served.url, "team-a", "nope").read)


async def test_the_source_and_the_watch_send_the_token(serve: Serve) -> None:
    key, record = await admin_key.issue_api_key("reader")
    reader = policy.AccessRule(subjects=("apikey:reader",), kinds=("configs",), actions=("read",))
    served = await serve(auth_mode="api-key", api_keys=(record,), access_rules=(reader,))
    _publish(served.store, {"model": "small"})
    token = key.get_secret_value()

    source = ServedConfigSource(served.url, "team-a", "app", token=token)
    assert (await asyncio.to_thread(source.read)) == {"model": "small"}
    updates = watch_settings(AppSettings, source, env=False)
    assert (await _next(updates)).model == "small"
    await updates.aclose()

    anonymous = ServedConfigSource(served.url, "team-a", "app")
    with pytest.raises(errors.MissingCredentials):
        await asyncio.to_thread(anonymous.read)
    with pytest.raises(errors.MissingCredentials):  # refused, not retried forever
        await _next(watch_settings(AppSettings, anonymous, env=False), DEADLINE)
