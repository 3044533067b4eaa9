"""schemathesis against the control plane's OpenAPI document: no 5xx, every answer as declared.

Each response must be a non-5xx whose status, content type, required headers
(Retry-After, WWW-Authenticate) and body the document declares for its
operation: errors as problem documents (application/problem+json).

The app (`create_app`, auth off) runs under uvicorn on a free loopback port for
the whole module, on the real NATS, with its embedded collections in a temp
dir. Its lifespan also seeds one object of each kind (collection `default/docs`,
config `default/app`, audit sink `default/trail`) so that generated requests
reach real objects, not only 404s: each case is sent as generated, then once
more with its namespace and name pinned to the seeded object of its kind.

Why uvicorn and not schemathesis' in-process ASGI transport: that transport
runs the app's lifespan on an event loop of its own and its pytest plugin ends
it after every test, so the state built at startup (NATS, shards) would not
last the module, and could not be seeded from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from schemathesis import checks
from schemathesis.core.result import Ok

from llm_infra import config
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from tests.servers.asgi import serve_in_thread

NAMESPACE = "default"
SEEDED = {"collections": "docs", "configs": "app", "auditsinks": "trail"}
MIN_CASES = 500
FUZZ_EXAMPLES = 30
"""Random cases per operation (fuzzing phase); the coverage phase adds its boundary cases."""
# The coverage phase runs for every operation but these: their filter bodies make over
# 1,200 boundary cases each, and each valid audit batch makes every later verify walk a
# longer chain (about 1 s per verify after a few thousand events).
NO_COVERAGE_PATHS = r"/(search|search/batch|points/delete|count)$"
NO_COVERAGE_NAMES = r"^POST .*/auditsinks/\{name\}/events$"
NO_COVERAGE = {"coverage": {"enabled": False}}
# Pinned, these would drop or reshape the seeded collection under the operations after them.
NOT_PINNED = {
    "PUT /v1/namespaces/{namespace}/collections/{name}",
    "DELETE /v1/namespaces/{namespace}/collections/{name}",
}

# No 5xx, and each answer as the document declares it: status, media type, headers, body.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


async def _seed(app: FastAPI, tmp: Path, namespace: str = NAMESPACE) -> None:
    """One real object of each kind, created as the standalone applier creates them."""
    spec = VectorCollectionSpec.model_validate({"vectors": {"size": 4, "distance": "Cosine"}})
    await app.state.collections.ensure(namespace, SEEDED["collections"], "docs", spec)
    document = {"model": "gpt-4o-mini", "temperature": 0.2, "features": {"rerank": True}}
    app.state.configs.publish(namespace, SEEDED["configs"], document, config.content_hash(document))
    sink = AuditSinkSpec.model_validate(
        {"stream": {"storage": "memory"}, "sinks": [{"name": "file", "file": {"path": "/a.jsonl"}}]}
    )
    await app.state.audit.ensure_sink(
        namespace, SEEDED["auditsinks"], sink, file_root=tmp / "audit-sinks"
    )


def _seeded_app(tmp: Path, nats_url: str) -> FastAPI:
    settings = Settings(
        data_dir=tmp / "data", nats_url=nats_url, auth_mode="none", standalone_admin_key=False
    )
    app = create_app(settings)
    lifespan = app.router.lifespan_context

    # Seeded inside the lifespan: the clients it builds belong to uvicorn's event loop.
    @contextlib.asynccontextmanager
    async def seeded(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            await _seed(app, tmp)
            yield

    app.router.lifespan_context = seeded
    return app


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, nats_url: str) -> Iterator[str]:
    """The seeded app under uvicorn on a free loopback port, for the whole module."""
    app = _seeded_app(tmp_path_factory.mktemp("cp-fuzz"), nats_url)
    with serve_in_thread(uvicorn.Config(app, lifespan="on", ws="none", log_level="warning")) as url:
        yield url


# The document comes from an app that is never started: routes and models make it, no
# runtime state does. (schemathesis.pytest.from_fixture, which would load it from the
# served app, fails on pytest 9.2: it sets `Node._nodeid`, which pytest no longer has.)
# Deterministic and without an example database, so every run sends the same cases.
# The watch endpoint is excluded: it streams (SSE) until the client goes away, so a
# request for the seeded config would never complete.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(auth_mode="none", standalone_admin_key=False)).openapi(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {
                "max-examples": FUZZ_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "operations": [
                {"include-path-regex": NO_COVERAGE_PATHS, "phases": NO_COVERAGE},
                {"include-name-regex": NO_COVERAGE_NAMES, "phases": NO_COVERAGE},
            ],
        }
    ),
).exclude(path_regex=r"/watch$")


def _pinned(case: schemathesis.Case[Any]) -> dict[str, str] | None:
    """The case's path parameters pointed at the seeded object of its kind, if it names one."""
    if "name" not in case.path_parameters or case.operation.label in NOT_PINNED:
        return None
    kind = case.path.split("/")[4]  # /v1/namespaces/{namespace}/<kind>/{name}...
    return {**case.path_parameters, "namespace": NAMESPACE, "name": SEEDED[kind]}


@pytest.fixture(scope="module")
def sent() -> Iterator[list[str]]:
    """The operation of every generated case sent (the pinned resends are not counted).

    Once every operation of the document has run here, the module has sent at least
    MIN_CASES cases (issue #8's floor): a run of some operations (-k) checks no total.
    """
    labels: list[str] = []
    yield labels
    operations = {
        result.ok().label for result in schema.get_all_operations() if isinstance(result, Ok)
    }
    if operations <= set(labels):
        assert len(labels) >= MIN_CASES, f"{len(labels)} cases over {len(operations)} operations"


@schema.parametrize()
def test_answers_conform(case: schemathesis.Case[Any], base_url: str, sent: list[str]) -> None:
    sent.append(case.operation.label)
    case.call_and_validate(base_url, checks=CHECKS)
    if (pinned := _pinned(case)) is not None:
        case.path_parameters = pinned
        case.call_and_validate(base_url, checks=CHECKS)
