"""The config API: read a served ConfigSource document (ETag / If-None-Match) and watch it (SSE).

The documents come from `ConfigStore` (fed by the standalone applier or the
ConfigMap watcher); the wire models are the SDK's (`llm_infra.client`), which
`ControlPlaneClient.get_config`/`watch_config` read back. Errors answer as
problems (`web.problems`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from llm_infra import errors
from llm_infra.client import CONFIG_EVENT, ConfigList, ConfigSummary, ConfigVersion
from llm_infra_controlplane.access.service import Security
from llm_infra_controlplane.configs.store import ConfigStore
from llm_infra_controlplane.web import deps, links
from llm_infra_controlplane.web.auth import CheckedRoute, require
from llm_infra_controlplane.web.params import Name, Namespace

HEARTBEAT_INTERVAL = 15.0
"""Seconds between keep-alive comments on an idle watch stream (proxies drop silent ones)."""
KEEPALIVE_COMMENT = "keepalive"
SEP = "\n"
"""Line ends of the stream: LF, which every SSE reader takes (sse-starlette's default is CRLF)."""

# Callers are checked from the headers, before the body is read (web.auth.CheckedRoute).
router = APIRouter(
    prefix="/v1/namespaces/{namespace}/configs",
    tags=["configs"],
    route_class=CheckedRoute,
    dependencies=[require("configs")],
)
ConfigsDep = Annotated[ConfigStore, deps.state("configs")]
SecurityDep = Annotated[Security, deps.state("security")]

_NOT_FOUND: dict[str, Any] = {
    "description": "No ConfigSource of that name is served (problem document)"
}


def heartbeat_interval() -> float:
    """The keep-alive period of watch streams; tests override this dependency."""
    return HEARTBEAT_INTERVAL


@router.get(
    "",
    response_model=ConfigList,
    response_model_by_alias=True,
    summary="The configs served in the namespace, with their current versions",
    responses={
        200: links.response(
            links.to("get_config", "watch_config", name="$response.body#/items/0/name")
        )
    },
)
async def list_configs(namespace: Namespace, store: ConfigsDep) -> ConfigList:
    served = (store.get(ns, name) for ns, name in store.names() if ns == namespace)
    return ConfigList(
        items=[ConfigSummary.model_validate(v, from_attributes=True) for v in served if v]
    )


@router.get(
    "/{name}",
    response_model=ConfigVersion,
    response_model_by_alias=True,
    summary="The config's current version (ETag; If-None-Match answers 304)",
    responses={
        200: links.response(links.to("watch_config")),
        304: {"description": "The client's version (If-None-Match) is current"},
        404: _NOT_FOUND,
    },
)
async def get_config(
    namespace: Namespace,
    name: Name,
    store: ConfigsDep,
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> ConfigVersion | Response:
    version = _served(store, namespace, name)
    # no-cache: caches may keep it, but must revalidate (cheap: a 304) before each use.
    headers = {"ETag": version.etag, "Cache-Control": "no-cache"}
    if if_none_match is not None and _matches(if_none_match, version.etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return version


@router.get(
    "/{name}/watch",
    response_class=EventSourceResponse,
    summary="Stream the config's current version, then each new one (Server-Sent Events)",
    responses={
        200: {
            "description": "`event: config`, `id: <contentHash>`, `data: <ConfigVersion JSON>`"
            " per version; `: keepalive` comments while idle",
            "content": {"text/event-stream": {}},
        },
        404: _NOT_FOUND,
    },
)
async def watch_config(
    namespace: Namespace,
    name: Name,
    store: ConfigsDep,
    security: SecurityDep,
    principal: deps.PrincipalDep,
    heartbeat: Annotated[float, Depends(heartbeat_interval)],
    last_event_id: Annotated[
        str | None, Header(description="the contentHash the client has: not sent again")
    ] = None,
) -> EventSourceResponse:
    _served(store, namespace, name)  # a 404 problem now, not an empty stream
    versions = store.watch(namespace, name, after_hash=last_event_id or None)
    # A watch lasts no longer than the credential that opened it: the client reconnects
    # (Last-Event-ID) with a fresh one, or gets its 401.
    until = await security.valid_until(principal)
    # sse-starlette sends the keep-alive comments, ends the stream when the client goes
    # (closing `versions`, which ends the watch) and when the server shuts down.
    return EventSourceResponse(
        _events(versions, until),
        sep=SEP,
        ping=heartbeat,
        ping_message_factory=lambda: ServerSentEvent(comment=KEEPALIVE_COMMENT, sep=SEP),
        # no-cache rather than sse-starlette's no-store: the semantics of the GET's answer.
        headers={"Cache-Control": "no-cache"},
    )


def _served(store: ConfigStore, namespace: str, name: str) -> ConfigVersion:
    version = store.get(namespace, name)
    if version is None:
        raise errors.NotFound(
            f"no config {namespace}/{name} is served: apply a ConfigSource named {name!r}"
            f" in namespace {namespace!r}",
            operation="get config",
        )
    return version


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against any listed tag, or `*`."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


async def _events(
    versions: AsyncGenerator[ConfigVersion], until: float | None = None
) -> AsyncGenerator[ServerSentEvent]:
    """Each version as an event; ends (and ends the watch) with the stream, whoever ends it.

    At `until` (epoch seconds: the credential's expiry) the stream ends too.
    """
    async with contextlib.aclosing(versions):
        while True:
            left = None if until is None else until - time.time()
            if left is not None and left <= 0:
                return
            try:
                async with asyncio.timeout(left):
                    version = await anext(versions)
            except (StopAsyncIteration, TimeoutError):
                return
            yield event(version)


def event(version: ConfigVersion) -> ServerSentEvent:
    """One version as an SSE event: `config`, id the content hash, data its JSON."""
    return ServerSentEvent(
        data=version.model_dump_json(by_alias=True),
        event=CONFIG_EVENT,
        id=version.content_hash,
        sep=SEP,
    )
