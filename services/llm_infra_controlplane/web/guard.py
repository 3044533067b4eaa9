"""The first thing every request meets: one credential, a body within its limit, a known caller.

A pure ASGI middleware (it must run before FastAPI reads a body, which FastAPI
does before any dependency): for each HTTP request it

1. refuses a request with more than one ``Authorization`` header (400): which
   one a proxy or a framework honours differs, so none is;
2. authenticates /v1 requests from their headers (`access.Security`), so a
   caller without valid credentials gets its 401 before its body is read or
   parsed. The identity is left in the request state; `web.auth.require` then
   authorizes it for the route (403);
3. refuses a declared ``Content-Length`` over the route's limit (413) before a
   byte of the body is read, and stops a body without one (chunked) at the limit.

The limits are `Settings.limits` (`ServerLimits`): point upserts and batch
searches may send `max_vector_body_bytes`, everything else `max_body_bytes`.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_infra import errors
from llm_infra_controlplane.settings import ServerLimits
from llm_infra_controlplane.web import problems

IDENTITY_STATE = "identity"
"""The request-state key of the caller `Guard` authenticated."""

_VECTOR_BODIES = re.compile(r"^/v1/namespaces/[^/]+/collections/[^/]+/(?:points|search/batch)$")


class Guard:
    """Limits a request's body and authenticates its caller before the app reads the body."""

    def __init__(self, app: ASGIApp, limits: ServerLimits) -> None:
        self.app = app
        self.limits = limits

    def body_limit(self, method: str, path: str) -> int:
        if method == "POST" and _VECTOR_BODIES.match(path):
            return self.limits.max_vector_body_bytes
        return self.limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.body_limit(scope["method"], scope["path"])
        try:
            _check_authorization(scope)
            if scope["path"].startswith("/v1/"):
                security = scope["app"].state.security
                client = scope.get("client")
                identity = await security.authenticate(
                    Request(scope).headers, client=client[0] if client else None
                )
                scope.setdefault("state", {})[IDENTITY_STATE] = identity
            _check_length(scope, limit)
        except errors.InfraError as exc:
            await problems.problem_response(exc, Request(scope))(scope, receive, send)
            return
        except HTTPException as exc:
            await problems.status_response(exc.status_code, str(exc.detail), Request(scope))(
                scope, receive, send
            )
            return
        await self.app(scope, _limited(receive, limit), send)


def _check_authorization(scope: Scope) -> None:
    if sum(name == b"authorization" for name, _ in scope["headers"]) > 1:
        raise HTTPException(
            400, "send one Authorization header: this request has several, and none is chosen"
        )


def _check_length(scope: Scope, limit: int) -> None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                raise HTTPException(400, "Content-Length is not a number of bytes")
            if int(value) > limit:
                raise HTTPException(413, _too_large(limit))


def _too_large(limit: int) -> str:
    return (
        f"the body exceeds this route's limit of {limit} bytes (limits.max_body_bytes, or"
        " limits.max_vector_body_bytes for point upserts and batch searches): send less per"
        " request"
    )


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive`, stopping (413) once the body passes `limit` bytes, whatever its framing."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI lets an HTTPException from the body read through as is.
                raise HTTPException(413, _too_large(limit))
        return message

    return limited


__all__ = ["IDENTITY_STATE", "Guard"]
