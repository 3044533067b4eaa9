"""The config API: read a served ConfigSource document (ETag / If-None-Match) and watch it (SSE).

The documents come from `ConfigStore` (fed by the standalone applier or the
ConfigMap watcher); the wire models are the SDK's (`llm_infra.client`), which
`ControlPlaneClient.get_config`/`watch_config` read back. Errors answer as
problems (`problems.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response
from fastapi.responses import StreamingResponse

from llm_infra import errors
from llm_infra.client import CONFIG_EVENT, ConfigList, ConfigSummary, ConfigVersion
from llm_infra_controlplane.config_store import ConfigStore
from llm_infra_controlplane.deps import ConfigsDep
from llm_infra_controlplane.routes.collections import Name, Namespace

HEARTBEAT_INTERVAL = 15.0
"""Seconds between keep-alive comments on an idle watch stream (proxies drop silent ones)."""
KEEPALIVE = ": keepalive\n\n"

# Authentication plugs in here, as a router dependency, with the rest of the /v1 API.
router = APIRouter(prefix="/v1/namespaces/{namespace}/configs", tags=["configs"])

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
    response_class=StreamingResponse,
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
    heartbeat: Annotated[float, Depends(heartbeat_interval)],
    last_event_id: Annotated[
        str | None, Header(description="the contentHash the client has: not sent again")
    ] = None,
) -> StreamingResponse:
    _served(store, namespace, name)  # a 404 problem now, not an empty stream
    versions = store.watch(namespace, name, after_hash=last_event_id or None)
    return StreamingResponse(
        _event_stream(versions, heartbeat),
        media_type="text/event-stream",
        # X-Accel-Buffering: a buffering proxy (nginx) would hold events back.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
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


def encode_event(version: ConfigVersion) -> str:
    """One version as an SSE event; its JSON holds no raw newline, so one data line."""
    data = version.model_dump_json(by_alias=True)
    return f"event: {CONFIG_EVENT}\nid: {version.content_hash}\ndata: {data}\n\n"


async def _event_stream(
    versions: AsyncGenerator[ConfigVersion, None], heartbeat: float
) -> AsyncGenerator[str, None]:
    """Each version as an event, a keep-alive comment after `heartbeat` idle seconds.

    The stream ends with `versions` (config removed, store closed) or, when the
    client goes away, with starlette cancelling it; either way the watch ends.
    """
    # The pending step is awaited through asyncio.wait, never cancelled by a timeout:
    # cancelling the generator's own await would end the watch.
    step: asyncio.Future[ConfigVersion] | None = None
    try:
        while True:
            if step is None:
                step = asyncio.ensure_future(anext(versions))
            done, _ = await asyncio.wait({step}, timeout=heartbeat)
            if not done:
                yield KEEPALIVE
                continue
            try:
                version = step.result()
            except StopAsyncIteration:
                return
            step = None
            yield encode_event(version)
    finally:
        if step is not None and not step.done():
            step.cancel()  # ends the watch too: the cancellation runs through it
            await asyncio.wait({step})
        else:
            await versions.aclose()
