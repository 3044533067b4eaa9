"""The OpenAPI document declares the problem answers the control plane gives, and they match it.

The document comes from `create_app` (no server is started for it). The answers come from
the app over httpx's ASGI transport with its lifespan run and no network (no NATS: the
audit API is off), and from a small app with `problems.install` for the errors that need a
backend down. Each answer is checked against its declaration: status, content type,
required headers, and body against the declared schema (jsonschema-rs).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import APIRouter, FastAPI

from llm_infra import errors
from llm_infra_controlplane.access import policy
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from llm_infra_controlplane.web import problems

PROBLEM_JSON = "application/problem+json"
V1 = "/v1/namespaces/{namespace}"
SEARCH = V1 + "/collections/{name}/search"
STATS = V1 + "/collections/{name}/stats"
EVENTS = V1 + "/auditsinks/{name}/events"
CONFIGS = V1 + "/configs"
SCHEMAS = "#/components/schemas/"


def _app(tmp_path: Path, auth_mode: policy.AuthMode = "none") -> FastAPI:
    return create_app(Settings(data_dir=tmp_path, auth_mode=auth_mode, standalone_admin_key=False))


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    return _app(tmp_path).openapi()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = _app(tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://cp") as client,
    ):
        yield client


def _problem_schema(declared: dict[str, Any]) -> str:
    """The component a declared response's problem body refers to; only problem+json allowed."""
    assert list(declared["content"]) == [PROBLEM_JSON]
    ref: str = declared["content"][PROBLEM_JSON]["schema"]["$ref"]
    return ref.removeprefix(SCHEMAS)


def _assert_as_declared(
    document: dict[str, Any], path: str, method: str, answer: httpx.Response
) -> None:
    """`answer` is what `document` declares for its status: content type, headers, body."""
    responses = document["paths"][path][method]["responses"]
    assert str(answer.status_code) in responses, (answer.status_code, sorted(responses))
    declared = responses[str(answer.status_code)]
    assert answer.headers["content-type"] == PROBLEM_JSON
    for name, header in declared.get("headers", {}).items():
        assert not header["required"] or name in answer.headers, name
    schema = declared["content"][PROBLEM_JSON]["schema"] | {"components": document["components"]}
    jsonschema_rs.validator_for(schema).validate(answer.json())


def test_a_vectors_route_declares_404_and_422_problems(document: dict[str, Any]) -> None:
    responses = document["paths"][SEARCH]["post"]["responses"]
    assert _problem_schema(responses["404"]) == "Problem"
    assert _problem_schema(responses["422"]) == "ValidationProblem"
    issues = document["components"]["schemas"]["ValidationProblem"]["properties"]["errors"]
    assert issues["items"] == {"$ref": SCHEMAS + "FieldIssue"}


def test_the_audit_events_route_declares_503_with_retry_after(document: dict[str, Any]) -> None:
    for method in ("get", "post"):
        unavailable = document["paths"][EVENTS][method]["responses"]["503"]
        assert _problem_schema(unavailable) == "Problem"
        retry_after = unavailable["headers"]["Retry-After"]
        assert retry_after["required"] is True
        assert retry_after["schema"]["type"] == "integer"
    assert "409" in document["paths"][EVENTS]["post"]["responses"]  # an id stored long ago


def test_every_v1_operation_declares_the_api_errors(document: dict[str, Any]) -> None:
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    ]
    assert len(operations) > 10
    for path, method, operation in operations:
        responses = operation["responses"]
        for status in problems.API_ERRORS:
            assert _problem_schema(responses[str(status)]), (method, path, status)
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
        assert list(responses) == sorted(responses), (method, path)


def test_fastapi_default_422_is_gone(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in json.dumps(document)
    assert "ValidationError" not in document["components"]["schemas"]


def test_the_document_is_built_once_and_served_as_built(tmp_path: Path) -> None:
    app = _app(tmp_path)
    first = app.openapi()
    assert app.openapi() is first
    assert {"Problem", "ValidationProblem", "FieldIssue"} <= set(first["components"]["schemas"])
    assert first["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]


async def test_the_served_document_is_the_completed_one(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    assert _problem_schema(served["paths"][SEARCH]["post"]["responses"]["422"])


async def test_validation_and_not_found_answer_as_declared(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    invalid = await client.post(
        V1.format(namespace="default") + "/collections/docs/search", json={}
    )
    assert invalid.status_code == 422
    _assert_as_declared(document, SEARCH, "post", invalid)
    assert invalid.json()["field"] == "vector"

    unknown = await client.get(V1.format(namespace="default") + "/collections/nope/stats")
    assert unknown.status_code == 404
    _assert_as_declared(document, STATS, "get", unknown)

    unparsable = await client.post(
        V1.format(namespace="default") + "/auditsinks/trail/events",
        content=b"\xff\xff",  # not UTF-8: FastAPI cannot even parse it
        headers={"content-type": "application/json"},
    )
    assert unparsable.status_code == 400
    _assert_as_declared(document, EVENTS, "post", unparsable)


async def test_missing_credentials_answer_401_as_declared(tmp_path: Path) -> None:
    app = _app(tmp_path, auth_mode="api-key")
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://cp") as client,
    ):
        answer = await client.get(V1.format(namespace="default") + "/configs")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    _assert_as_declared(app.openapi(), CONFIGS, "get", answer)


def _backend_app() -> FastAPI:
    """A router of the control plane's shape whose routes fail as a backend would."""
    router = APIRouter(responses=problems.responses(*problems.API_ERRORS, 503))

    @router.get("/queue", summary="NATS is down")
    async def queue() -> None:
        raise errors.MessageQueueError("NATS is unreachable", operation=errors.MqOperation.CONNECT)

    @router.get("/vectors", summary="Qdrant is down")
    async def vectors() -> None:
        raise errors.VectorUnavailable("qdrant did not answer")

    @router.get("/gone", summary="nothing here", responses={404: {"description": "gone"}})
    async def gone() -> None:
        raise errors.NotFound("nothing here: it is gone")

    app = FastAPI()
    problems.install(app)
    app.include_router(router)
    return app


async def test_a_backend_down_answers_503_with_retry_after_as_declared() -> None:
    app = _backend_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/queue", "/vectors"):
            answer = await client.get(path)
            assert answer.status_code == 503
            assert int(answer.headers["retry-after"]) >= 1
            _assert_as_declared(app.openapi(), path, "get", answer)


async def test_a_route_worded_404_still_declares_the_problem() -> None:
    app = _backend_app()
    declared = app.openapi()["paths"]["/gone"]["get"]["responses"]["404"]
    assert declared["description"] == "gone"  # the route's wording wins over the router's
    assert _problem_schema(declared) == "Problem"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/gone")
    assert answer.status_code == 404
    _assert_as_declared(app.openapi(), "/gone", "get", answer)


@pytest.mark.parametrize(
    ("page", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc")]
)
async def test_the_docs_pages_load_their_assets_from_the_control_plane(
    client: httpx.AsyncClient, page: str, asset: str
) -> None:
    html = (await client.get(page)).text
    # Offline and behind a strict egress policy alike: no CDN, every asset served here.
    assert "cdn." not in html
    assert "fonts.googleapis" not in html
    scripts = re.findall(r'src="([^"]+)"', html)
    [local] = [src for src in scripts if asset in src]
    assert local.startswith("/")
    served = await client.get(local)
    assert served.status_code == 200
    assert len(served.content) > 100_000  # the whole bundle, not a stub


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for item in document["paths"].values()
        for operation in item.values()
    }


def _declares(document: dict[str, Any], schema: dict[str, Any], pointer: str) -> bool:
    """Whether `schema` (refs resolved) declares the member a JSON pointer names."""
    tokens = [token for token in pointer.split("/") if token]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].removeprefix(SCHEMAS)]
    if not tokens:
        return True
    if "anyOf" in schema:
        return any(_declares(document, branch, pointer) for branch in schema["anyOf"])
    head, rest = tokens[0], "/".join(tokens[1:])
    if head.isdigit():
        return "items" in schema and _declares(document, schema["items"], rest)
    member = schema.get("properties", {}).get(head)
    return member is not None and _declares(document, member, rest)


def _link_source(operation: dict[str, Any], status: str, expression: str) -> tuple[str, Any]:
    """Where a link's runtime expression reads: ("path", names) or ("schema", pointer, schema)."""
    where, _, pointer = expression.partition("#")
    if where.startswith(("$request.path.", "$request.query.")):
        return "parameter", where.rsplit(".", 1)[1]
    if where == "$request.body":
        content = operation["requestBody"]["content"]["application/json"]
        return "body", (content["schema"], pointer)
    assert where == "$response.body", expression
    content = operation["responses"][status]["content"]["application/json"]
    return "body", (content["schema"], pointer)


def test_every_link_reaches_a_declared_operation_with_declared_values(
    document: dict[str, Any],
) -> None:
    # Stateful tests and generated clients follow these: a link to a renamed operation, a
    # parameter the target lacks, or a pointer into a field that is not there breaks them.
    operations = _operations(document)
    seen = 0
    for source in operations.values():
        for status, declared in source["responses"].items():
            for name, link in declared.get("links", {}).items():
                seen += 1
                target = operations[link["operationId"]]
                accepted = {parameter["name"] for parameter in target.get("parameters", [])}
                for parameter, expression in link["parameters"].items():
                    assert parameter in accepted, (source["operationId"], name, parameter)
                    kind, value = _link_source(source, status, expression)
                    if kind == "parameter":
                        given = {p["name"] for p in source.get("parameters", [])}
                        assert value in given, (source["operationId"], name, expression)
                    else:
                        schema, pointer = value
                        assert _declares(document, schema, pointer), (name, expression)
    assert seen >= 20, seen


def test_operation_ids_are_the_route_functions_names(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert {"ensure_collection", "upsert_points", "get_point", "append_events"} <= set(operations)
    assert len(operations) == sum(len(item) for item in document["paths"].values())
