"""Every error the control plane answers, as an RFC 9457 problem (application/problem+json).

`install(app)` registers the handlers: an `llm_infra.errors.InfraError` answers
its own status and code (`to_problem`), so `ControlPlaneClient` re-raises the
same error class; a request that fails validation answers 422 naming each field;
framework errors (unknown path, wrong method) and unexpected exceptions answer
problems too, the latter without their message (it stays in the log).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from llm_infra import errors

PROBLEM_JSON = "application/problem+json"
UNAVAILABLE_RETRY_AFTER = 1.0
"""Seconds a 503 asks clients to wait when the error names no delay of its own."""
# Where FastAPI says a value came from; the field path below it is what the caller wrote.
_SOURCES = {"body", "query", "path", "header", "cookie"}


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.InfraError, _infra_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


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
    if retry_after is None and error.status == 503 and error.is_retryable():
        retry_after = UNAVAILABLE_RETRY_AFTER  # a dependency is down: say when to come back
    if retry_after is not None:
        headers["Retry-After"] = str(math.ceil(retry_after))
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="llm-infra"'
    return _problem(body, error.status, headers or None)


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
