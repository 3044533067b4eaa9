"""Every error the control plane answers, as an RFC 9457 problem (application/problem+json).

`install(app)` registers the handlers: an `llm_infra.errors.InfraError` answers
its own status and code (`to_problem`), so `ControlPlaneClient` re-raises the
same error class; a request that fails validation answers 422 naming each field;
framework errors (unknown path, wrong method) and unexpected exceptions answer
problems too, the latter without their message (it stays in the log).

The OpenAPI document says so: `responses(*API_ERRORS, 503)` declares statuses
as problem documents (`main.py` gives each router the statuses it can answer; a
declared 422 also keeps FastAPI from adding its default one, HTTPValidationError
as application/json, which this app never answers), and `install` adds the
schemas they refer to (`Problem`, `ValidationProblem`, `FieldIssue`).
"""

from __future__ import annotations

import copy
import http
import math
from collections.abc import Mapping
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import json_schema
from starlette.exceptions import HTTPException

from llm_infra import errors

PROBLEM_JSON = "application/problem+json"
UNAVAILABLE_RETRY_AFTER = 1.0
"""Seconds a 503 asks clients to wait when the error names no delay of its own."""
# Where FastAPI says a value came from; the field path below it is what the caller wrote.
_SOURCES = {"body", "query", "path", "header", "cookie"}

API_ERRORS = (400, 401, 403, 404, 413, 422, 429, 500)
"""What every /v1 route can answer: a body that cannot be parsed, no or bad credentials, no
right, no such object (or path), a body over its limit, an invalid parameter or body field,
too many failed sign-ins, a bug."""
_SCHEMAS = "#/components/schemas/"
_REQUIRED_MEMBERS = ("type", "title", "status")
_DESCRIPTIONS = {
    400: "The body cannot be parsed (not UTF-8), the request has several Authorization"
    " headers, or the body does not fit the resource (a vector's"
    " dimensions: `expected`, `got`)",
    401: "No valid credentials: send 'Authorization: Bearer <API key or JWT>'",
    403: "The caller has no access rule granting this action here",
    404: "No such object (or path): the problem names it",
    409: "The request conflicts with the object's state: the problem says how",
    413: "The body exceeds the route's limit (limits.max_body_bytes or"
    " limits.max_vector_body_bytes): send less per request",
    422: "A parameter or body field is invalid: `field` names the first, `errors` each one",
    429: "Too many failed sign-ins from this address: retry after Retry-After seconds",
    500: "An unexpected error: details are in the control plane's log",
    502: "A backend refused or failed the request",
    503: "A backend is unavailable: retry after Retry-After seconds",
    504: "A backend did not answer in time",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}


class ValidationProblem(errors.Problem):
    """The problem of a request that failed validation (422): every invalid field, named."""

    field: str | None = None
    """Dotted path of the first invalid field, e.g. ``points.0.vector``."""
    issues: list[errors.FieldIssue] = pydantic.Field(default_factory=list, alias="errors")


def install(app: FastAPI) -> None:
    """Answer every error as a problem, and declare the problem schemas in the OpenAPI document."""
    app.add_exception_handler(errors.InfraError, _infra_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    _document(app)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a router or route: each of `statuses` answers a problem document."""
    return {status: _response(status) for status in statuses}


def _response(status: int) -> dict[str, Any]:
    model = ValidationProblem if status == 422 else errors.Problem
    declared: dict[str, Any] = {
        "description": _DESCRIPTIONS.get(status) or http.HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"{_SCHEMAS}{model.__name__}"}}},
    }
    if status in _HEADERS:
        declared["headers"] = copy.deepcopy(_HEADERS[status])
    return declared


def _document(app: FastAPI) -> None:
    """Complete FastAPI's document once, as it builds it; `app.openapi()` still caches it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()  # FastAPI's: builds the document and keeps it in app.openapi_schema
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(_component_schemas())
        _complete_responses(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _component_schemas() -> dict[str, Any]:
    _, schemas = json_schema.models_json_schema(
        [(errors.Problem, "serialization"), (ValidationProblem, "serialization")],
        ref_template=_SCHEMAS + "{model}",
    )
    found: dict[str, Any] = schemas["$defs"]
    # Every handler here sets these (the model's defaults would let any JSON object pass).
    for name in (errors.Problem.__name__, ValidationProblem.__name__):
        found[name]["required"] = list(_REQUIRED_MEMBERS)
    return found


def _complete_responses(document: dict[str, Any]) -> None:
    """Give each error status declared without a body the problem content and headers."""
    # A route's own `responses={404: {"description": ...}}` replaces its router's 404 whole
    # (FastAPI merges per status), yet the handlers above answer it as a problem all the same.
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for status, declared in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400 and "content" not in declared:
                    declared.update(
                        {k: v for k, v in _response(int(status)).items() if k not in declared}
                    )
            # Router and route statuses arrive in merge order: list them as a reader looks.
            operation["responses"] = dict(sorted(operation.get("responses", {}).items()))


def problem_response(error: errors.InfraError, request: Request) -> JSONResponse:
    """`error` as the problem document the SDK turns back into it (`errors.from_problem`)."""
    body = error.to_problem(instance=request.url.path).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    if isinstance(error, errors.CollectionConfigMismatch) and error.field:
        # The operator reports these in the VectorCollection's status: one entry per field.
        body["fields"] = [
            {"field": error.field, "expected": error.expected, "actual": error.actual}
        ]
    headers: dict[str, str] = {}
    retry_after = error.retry_after()
    if retry_after is None and error.status == 503:
        # A dependency is down: say when to come back (the OpenAPI document promises it).
        retry_after = UNAVAILABLE_RETRY_AFTER
    if retry_after is not None:
        headers["Retry-After"] = str(math.ceil(retry_after))
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="llm-infra"'
    return _problem(body, error.status, headers or None)


def status_response(status: int, detail: str, request: Request) -> JSONResponse:
    """A problem of `status` for what is no `InfraError`: the HTTP layer's own refusals."""
    body = errors.Problem(
        title=http.HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    return _problem(body, status, None)


async def _infra_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.InfraError)  # registered for InfraError only
    return problem_response(exc, request)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Never the rejected `input`: it may be a credential.
    issues = [
        errors.FieldIssue(field=_field(issue["loc"]), message=issue["msg"], reason=issue["type"])
        for issue in exc.errors()
    ]
    first = issues[0] if issues else errors.FieldIssue(message="invalid request")
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    error = errors.ValidationError(
        f"{first.field or 'request'}: {first.message}{more}", field=first.field, errors=issues
    )
    return problem_response(error, request)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (400, 413):  # the guard's and the body reader's: a sentence
        return status_response(exc.status_code, str(exc.detail), request)
    body = errors.Problem(
        title=str(exc.detail), status=exc.status_code, instance=request.url.path
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    return _problem(body, exc.status_code, exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer, so the server logs it.
    error = errors.UnexpectedError("internal error: see the control plane's log")
    return problem_response(error, request)


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = list(loc)
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    return ".".join(str(part) for part in parts) or None


def _problem(body: dict[str, Any], status: int, headers: Mapping[str, str] | None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
