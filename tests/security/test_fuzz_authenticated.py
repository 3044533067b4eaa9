"""schemathesis as a tenant: generated requests with a real API key, and no namespace but its own.

The tenant's key has admin on namespace ``default`` only, where one object of
each kind is seeded; every generated case is sent with it under uvicorn with
the control plane's own protocol (`cli.server_config`). Each answer must
conform to the document (as in tests/integration/controlplane/test_openapi_fuzz.py,
which fuzzes with authentication off), and no request naming another
namespace may succeed: whatever the generator puts in the path, a 2xx there is
a tenant reaching another's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI

from llm_infra_controlplane import cli
from llm_infra_controlplane.access import admin_key, policy
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from tests.integration.controlplane.test_openapi_fuzz import CHECKS, NAMESPACE, _seed

EXAMPLES = 8
STARTUP_DEADLINE = 30.0


@schemathesis.check
def no_other_namespace(ctx: Any, response: Any, case: schemathesis.Case[Any]) -> None:
    namespace = case.path_parameters.get("namespace") if case.path_parameters else None
    if namespace not in (None, NAMESPACE) and response.status_code < 300:
        raise AssertionError(
            f"{case.operation.label} in namespace {namespace!r} answered"
            f" {response.status_code} to a tenant of {NAMESPACE!r} only"
        )


def _tenant() -> tuple[str, Any]:
    async def issue() -> tuple[str, Any]:
        key, record = await admin_key.issue_api_key("tenant")
        return key.get_secret_value(), record

    return asyncio.run(issue())


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory, nats_url: str) -> Iterator[tuple[str, str]]:
    """(base URL, the tenant's key): the seeded app under uvicorn, as `llm-infra` runs it."""
    tmp = tmp_path_factory.mktemp("cp-fuzz-tenant")
    key, record = _tenant()
    settings = Settings(
        data_dir=tmp / "data",
        nats_url=nats_url,
        standalone_admin_key=False,
        api_keys=(record,),
        access_rules=(
            policy.AccessRule(
                subjects=("apikey:tenant",), namespaces=(NAMESPACE,), actions=("admin",)
            ),
        ),
        port=0,
        log_level="warning",
    )
    app = create_app(settings)
    lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def seeded(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            await _seed(app, tmp)
            yield

    app.router.lifespan_context = seeded
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(cli.server_config(app, settings))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + STARTUP_DEADLINE
        while not server.started:
            assert thread.is_alive(), "the control plane stopped while starting"
            assert time.monotonic() < deadline, f"not started within {STARTUP_DEADLINE}s"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}", key
        server.should_exit = True
        thread.join(timeout=STARTUP_DEADLINE)


schema = schemathesis.openapi.from_dict(
    create_app(Settings(standalone_admin_key=False)).openapi(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"coverage": {"enabled": False}},
        }
    ),
).exclude(path_regex=r"/watch$")


@schema.parametrize()
def test_a_tenant_gets_conforming_answers_and_no_other_namespace(
    case: schemathesis.Case[Any], tenant: tuple[str, str]
) -> None:
    base_url, key = tenant
    headers = {"Authorization": f"Bearer {key}"}
    case.call_and_validate(base_url, headers=headers, checks=[*CHECKS, no_other_namespace])
    if case.path_parameters and "namespace" in case.path_parameters:
        # Once more inside the tenant's namespace: the calls it may make must conform too.
        case.path_parameters = {**case.path_parameters, "namespace": NAMESPACE}
        case.call_and_validate(base_url, headers=headers, checks=[*CHECKS, no_other_namespace])
