"""Fixtures that hand over ready, real servers (tests/servers), and their logs on failure.

Servers are session-scoped and start on first use, so a unit-only run starts
none. Each lives in its own temp dir and is stopped when the session ends.
`http` and `cp` are clients of a module's in-process `app` fixture.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import pytest
from fastapi import FastAPI

from llm_infra.client import ControlPlaneClient
from tests.servers import qdrant
from tests.servers.documents import DocumentServer
from tests.servers.helm import Helm
from tests.servers.kube import KubeServer
from tests.servers.nats import NatsServer
from tests.servers.openbao import OpenBao
from tests.servers.redis import RedisServer

pytest_plugins = ["pytester"]


@runtime_checkable
class _HasLog(Protocol):
    name: str

    def log_tail(self) -> str: ...


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        seen: set[int] = set()
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, _HasLog) and id(value) not in seen:
                seen.add(id(value))
                report.sections.append((f"server log: {value.name}", value.log_tail()))
    return report


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeServer]:
    """etcd + kube-apiserver with RBAC; `kube.kubeconfig` is an admin kubeconfig."""
    with KubeServer(tmp_path_factory.mktemp("kube")) as server:
        yield server


@pytest.fixture(scope="session")
def kubeconfig(kube: KubeServer) -> Path:
    return kube.kubeconfig


@pytest.fixture
def namespace(kube: KubeServer) -> str:
    """A fresh namespace per test: deleted ones stay Terminating without a controller-manager."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory, kube: KubeServer) -> Helm:
    return Helm(tmp_path_factory.mktemp("helm"), kube.kubeconfig)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """OpenBao dev server: `bao.url`, `bao.token` (root), KV v2 at `secret/`."""
    with OpenBao(tmp_path_factory.mktemp("openbao")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def served() -> Iterator[DocumentServer]:
    """A local HTTP server of documents: `served.documents[path] = body`, `.url`, `.seen`."""
    with DocumentServer() as server:
        yield server


@pytest.fixture
def edge_shard_dir(tmp_path: Path) -> Path:
    """A fresh directory for one qdrant-edge shard (one owner per directory)."""
    return tmp_path / "shard"


@pytest.fixture(scope="session", params=qdrant.backends())
def qdrant_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[qdrant.QdrantBackend]:
    """The Qdrant API: qdrant-client local mode, and a real server when QDRANT_URL is set."""
    backend = qdrant.connect(request.param, tmp_path_factory.mktemp(f"qdrant-{request.param}"))
    yield backend
    backend.client.close()


# In process, no socket: a module that defines an `app` fixture (a `create_app` whose lifespan it
# runs) gets these two clients of it.
@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the module's `app`, through httpx's ASGI transport."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
        yield client


@pytest.fixture
async def cp(app: FastAPI) -> AsyncIterator[ControlPlaneClient]:
    """The SDK client of the module's `app`, through httpx's ASGI transport."""
    transport = httpx.ASGITransport(app=app)
    async with ControlPlaneClient("http://cp", transport=transport) as client:
        yield client


@pytest.fixture
def key_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Grows by one entry (its hash algorithm) per secret check API key verification pays."""
    from llm_infra import auth

    checks: list[str] = []
    real = auth.ApiKeyAuthenticator._verify

    def counted(self: auth.ApiKeyAuthenticator, *args: Any) -> bool:
        checks.append(str(args[0]))
        return real(self, *args)

    monkeypatch.setattr(auth.ApiKeyAuthenticator, "_verify", counted)
    return checks
