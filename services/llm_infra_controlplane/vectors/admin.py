"""The collection admin API: ensure, read and drop the embedded collection of a VectorCollection.

The operator calls it (through `llm_infra.client.ControlPlaneClient`) for
`backend.embedded` collections, which this process owns. The path names the
VectorCollection (namespace/name); the body or `collectionName` names the
collection in the engine, always one of the path's namespace (a caller's rights
on a namespace never reach another's collections), and never one bound to
another VectorCollection (409). The work is `CollectionRegistry`'s; errors
answer as problems (`web.problems`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from llm_infra.client import CollectionInfo, CollectionName, DropResult, EnsureCollectionRequest
from llm_infra_controlplane.vectors.routes import CollectionsDep
from llm_infra_controlplane.web import links
from llm_infra_controlplane.web.auth import CheckedRoute, require
from llm_infra_controlplane.web.params import Name, Namespace

# Callers are checked from the headers, before the body is read (web.auth.CheckedRoute).
router = APIRouter(
    prefix="/v1/namespaces/{namespace}/collections",
    tags=["collections"],
    route_class=CheckedRoute,
    dependencies=[require("collections", writes="admin")],
)

NameQuery = Annotated[
    CollectionName | None,
    Query(
        alias="collectionName",
        description="the collection's name in the engine, within the namespace; default: the"
        " one of its last ensure, else the VectorCollection's name",
    ),
]


@router.put(
    "/{name}",
    response_model=CollectionInfo,
    response_model_by_alias=True,
    summary="Create or update the collection as the spec says",
    responses={
        200: links.response(
            links.to(
                "collection_info", "drop_collection", collectionName="$request.body#/collectionName"
            ),
            links.to(
                "upsert_points",
                "search_points",
                "search_points_batch",
                "count_points",
                "collection_stats",
                "delete_points",
            ),
        )
    },
)
async def ensure_collection(
    namespace: Namespace, name: Name, body: EnsureCollectionRequest, registry: CollectionsDep
) -> CollectionInfo:
    return await registry.ensure(namespace, name, body.collection_name, body.spec)


@router.get(
    "/{name}",
    response_model=CollectionInfo,
    response_model_by_alias=True,
    summary="The collection and its stats",
    responses={
        200: links.response(
            links.to("drop_collection", collectionName="$response.body#/collectionName")
        )
    },
)
async def collection_info(
    namespace: Namespace, name: Name, registry: CollectionsDep, collection_name: NameQuery = None
) -> CollectionInfo:
    return await registry.info(namespace, name, collection_name)


@router.delete(
    "/{name}",
    response_model=DropResult,
    response_model_by_alias=True,
    summary="Delete the collection and its points (idempotent)",
    # Read back, the collection and everything in it answers 404.
    responses={200: links.response(links.to("collection_info", "collection_stats"))},
)
async def drop_collection(
    namespace: Namespace, name: Name, registry: CollectionsDep, collection_name: NameQuery = None
) -> DropResult:
    return DropResult(dropped=await registry.drop_of(namespace, name, collection_name))
