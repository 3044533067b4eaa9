"""The vector data API: points and searches of a VectorCollection's collection, on any backend.

`/v1/namespaces/{namespace}/collections/{name}/...` names the VectorCollection;
`CollectionRegistry.store_of` finds the store serving it: its Qdrant server's
collection for `backend.qdrant`, else its embedded collection in its namespace
(the one of its last ensure, else its name). The work is the `llm_infra.vector.VectorStore`
API, the same on both. Wire models are `llm_infra.client`'s, shared with the SDK client.

Decisions a caller sees:
- an upsert stores the good points and lists the refused ones by id (200); a
  request of which no point could be stored answers its first refusal as a
  problem, as a single insert would;
- a dimension mismatch answers 400 with `expected` and `got` members (the error
  tree's default for it is 422; this API promises 400, see `_VectorRoute`);
- reads answer bytes made by orjson from plain dicts: searches are the hot
  path, and a response model per hit would cost more than the engine call. The
  models still describe every body in the OpenAPI document (`response_model`).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from llm_infra import errors, vector
from llm_infra.client import (
    CollectionStatsResult,
    CountRequest,
    CountResult,
    DeletePointsRequest,
    DeletePointsResult,
    PointFilter,
    PointRecord,
    SearchBatchRequest,
    SearchBatchResult,
    SearchRequest,
    SearchResult,
    UpsertRequest,
    UpsertResult,
)
from llm_infra.vector import MetadataFilter, VectorStore
from llm_infra_controlplane.access.policy import READ_ONLY_ROUTE
from llm_infra_controlplane.vectors.registry import CollectionRegistry
from llm_infra_controlplane.web import deps, links, problems
from llm_infra_controlplane.web.auth import CheckedRoute, require
from llm_infra_controlplane.web.params import Name, Namespace

_logger = logging.getLogger(__name__)
_DIGITS = re.compile(r"[0-9]+")


class _OrjsonRequest(Request):
    """A request whose JSON body orjson parses: several times faster than `json` on vectors.

    orjson's decode error is a `json.JSONDecodeError`, so FastAPI still answers 422.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class _VectorRoute(CheckedRoute):
    """Parses bodies with orjson; answers DimensionMismatch as 400 with `expected` and `got`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(_OrjsonRequest(request.scope, request.receive))
            except errors.DimensionMismatch as exc:
                return _dimension_problem(exc, request)

        return handle


# Callers are checked from the headers, before the body is read (web.auth.CheckedRoute).
router = APIRouter(
    prefix="/v1/namespaces/{namespace}/collections/{name}",
    tags=["vectors"],
    route_class=_VectorRoute,
    dependencies=[require("collections")],
)
CollectionsDep = Annotated[CollectionRegistry, deps.state("collections")]

PointIdPath = Annotated[
    str,
    Path(
        alias="id",
        min_length=1,
        description="the point id; a string of digits reads as that unsigned integer id",
    ),
]
WithVector = Annotated[bool, Query(alias="withVector", description="include the vector")]


@router.post(
    "/points",
    response_model=UpsertResult,
    summary="Upsert a batch of points; refused points are reported by id",
    responses={
        200: links.response(
            links.to("get_point", "delete_point", id="$request.body#/points/0/id"),
            links.to("search_points", "count_points", "collection_stats"),
        ),
        # No such collection: this is how one is made.
        404: links.response(links.to("ensure_collection")),
    },
)
async def upsert_points(
    namespace: Namespace, name: Name, body: UpsertRequest, registry: CollectionsDep
) -> Response:
    store = await registry.store_of(namespace, name)
    result = await store.insert_batch(
        vector.Point(point.id, point.vector, point.payload) for point in body.points
    )
    if result.inserted == 0 and result.failed:
        point_id, error = next(iter(result.failed.items()))
        raise _for_point(point_id, error)
    refused = [
        {"id": point_id, "code": error.code, "detail": error.message}
        for point_id, error in result.failed.items()
    ]
    return _json({"upserted": result.inserted, "errors": refused})


@router.post(
    "/search",
    response_model=SearchResult,
    summary="The k nearest points to a vector, best first",
    openapi_extra=READ_ONLY_ROUTE,  # a POST that only reads
    responses={200: links.response(links.to("get_point", id="$response.body#/hits/0/id"))},
)
async def search_points(
    namespace: Namespace, name: Name, body: SearchRequest, registry: CollectionsDep
) -> Response:
    store = await registry.store_of(namespace, name)
    with _logged_warnings(body.filter is not None):
        hits = await store.search(
            body.vector,
            body.k,
            filter=_filter(body.filter),
            hnsw_ef=body.hnsw_ef,
            exact=body.exact,
            with_vector=body.with_vector,
            # Always read: string ids come back from the payload (llm_infra.vector._ids).
            with_payload=True,
        )
    return _json({"hits": _hits(hits, body.with_payload, body.with_vector)})


@router.post(
    "/search/batch",
    response_model=SearchBatchResult,
    summary="Many searches in one request, answered in order",
    openapi_extra=READ_ONLY_ROUTE,  # a POST that only reads
)
async def search_points_batch(
    namespace: Namespace, name: Name, body: SearchBatchRequest, registry: CollectionsDep
) -> Response:
    store = await registry.store_of(namespace, name)
    # Searches that share their options go to the engine as one batch (usually all of them).
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, one in enumerate(body.searches):
        groups.setdefault(_options(one), []).append(index)
    results: list[dict[str, Any]] = [{}] * len(body.searches)
    with _logged_warnings(any(one.filter is not None for one in body.searches)):
        for indexes in groups.values():
            first = body.searches[indexes[0]]
            found = await store.search_batch(
                [body.searches[i].vector for i in indexes],
                first.k,
                filter=_filter(first.filter),
                hnsw_ef=first.hnsw_ef,
                exact=first.exact,
                with_vector=first.with_vector,
                with_payload=True,
            )
            for index, hits in zip(indexes, found, strict=True):
                results[index] = {"hits": _hits(hits, first.with_payload, first.with_vector)}
    return _json({"results": results})


@router.get(
    "/points/{id}",
    response_model=PointRecord,
    summary="One stored point",
    responses={
        200: links.response(links.to("delete_point", id="$request.path.id")),
        404: {"description": "no such point, or no such collection"},
    },
)
async def get_point(
    namespace: Namespace,
    name: Name,
    point_id: PointIdPath,
    registry: CollectionsDep,
    with_vector: WithVector = False,
) -> Response:
    store = await registry.store_of(namespace, name)
    record = await store.get(_point_id(point_id), with_vector=with_vector)
    if record is None:
        raise errors.NotFound(
            f"no point {point_id!r} in VectorCollection {namespace}/{name}", service="vectors"
        )
    body: dict[str, Any] = {"id": record.id, "payload": record.payload}
    if with_vector:
        body["vector"] = record.vector
    return _json(body)


@router.delete(
    "/points/{id}",
    response_model=DeletePointsResult,
    summary="Delete one point (idempotent)",
    # Read back, the point answers 404.
    responses={200: links.response(links.to("get_point", id="$request.path.id"))},
)
async def delete_point(
    namespace: Namespace, name: Name, point_id: PointIdPath, registry: CollectionsDep
) -> Response:
    store = await registry.store_of(namespace, name)
    return _json({"deleted": await _deleted(store, [_point_id(point_id)], None)})


@router.post(
    "/points/delete",
    response_model=DeletePointsResult,
    summary="Delete points by id, or every point a filter matches",
)
async def delete_points(
    namespace: Namespace, name: Name, body: DeletePointsRequest, registry: CollectionsDep
) -> Response:
    store = await registry.store_of(namespace, name)
    return _json({"deleted": await _deleted(store, body.ids, _filter(body.filter))})


@router.post(
    "/count",
    response_model=CountResult,
    summary="Points stored, or matching a filter; exact",
    openapi_extra=READ_ONLY_ROUTE,  # a POST that only reads
)
async def count_points(
    namespace: Namespace, name: Name, registry: CollectionsDep, body: CountRequest | None = None
) -> Response:
    store = await registry.store_of(namespace, name)
    with _logged_warnings(body is not None and body.filter is not None):
        count = await store.count(_filter(body.filter) if body else None)
    return _json({"count": count})


@router.get(
    "/stats",
    response_model=CollectionStatsResult,
    summary="Points, indexed vectors, dimensions, distance, segments and size on disk",
)
async def collection_stats(namespace: Namespace, name: Name, registry: CollectionsDep) -> Response:
    store = await registry.store_of(namespace, name)
    stats = await store.stats()
    return _json(
        {
            "points": stats.points,
            "indexedVectors": stats.indexed_vectors,
            "dimensions": stats.dimensions,
            "distance": stats.distance,
            "segments": stats.segments,
            "diskBytes": stats.disk_bytes,
        }
    )


# -- helpers ---------------------------------------------------------------------------------


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _hits(hits: list[vector.Hit], with_payload: bool, with_vector: bool) -> list[dict[str, Any]]:
    if with_vector:
        return [
            {"id": h.id, "score": h.score, "payload": h.payload, "vector": h.vector}
            if with_payload
            else {"id": h.id, "score": h.score, "vector": h.vector}
            for h in hits
        ]
    if with_payload:
        return [{"id": h.id, "score": h.score, "payload": h.payload} for h in hits]
    return [{"id": h.id, "score": h.score} for h in hits]


def _filter(wire: PointFilter | None) -> MetadataFilter | None:
    return None if wire is None else wire.to_metadata()


def _options(search: SearchRequest) -> tuple[Any, ...]:
    wire_filter = None if search.filter is None else search.filter.model_dump_json()
    return (
        search.k,
        wire_filter,
        search.hnsw_ef,
        search.exact,
        search.with_payload,
        search.with_vector,
    )


def _point_id(text: str) -> vector.PointId:
    # As in Qdrant's own API: a path segment of digits is an integer id.
    return int(text) if _DIGITS.fullmatch(text) else text


async def _deleted(
    store: VectorStore, ids: Sequence[vector.PointId] | None, filter: MetadataFilter | None
) -> int:
    # Neither engine says how many points a delete removed: count before and after.
    # Exact on the embedded core (its calls run inline, nothing writes in between);
    # on a Qdrant server a concurrent writer's points can skew the difference.
    before = await store.count()
    if ids is not None or filter is not None:
        await store.delete(ids, filter=filter)
    return before - await store.count()


def _for_point(point_id: vector.PointId, error: errors.InfraError) -> errors.InfraError:
    """`error` with the refused point's id in its message (same class and context)."""
    document = error.to_problem().model_dump(mode="json", by_alias=True, exclude_none=True)
    document["detail"] = f"point {point_id!r}: {error.message}"
    return errors.from_problem(document)


def _dimension_problem(error: errors.DimensionMismatch, request: Request) -> JSONResponse:
    body = error.to_problem(instance=request.url.path).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    body |= {"status": 400, "expected": error.expected, "got": error.actual}
    return JSONResponse(body, status_code=400, media_type=problems.PROBLEM_JSON)


@contextmanager
def _logged_warnings(filtered: bool) -> Iterator[None]:
    # The store warns once per unindexed filter field, for SDK users; a server logs it
    # instead. Only filtered calls can warn: the others skip catch_warnings' cost.
    if not filtered:
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", vector.UnindexedFilterWarning)
        yield
    for warning in caught:
        _logger.warning("%s", warning.message)
