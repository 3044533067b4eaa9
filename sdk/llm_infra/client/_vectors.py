"""The vector data API of the control plane: its wire models and the client half.

`/v1/namespaces/{namespace}/collections/{name}/...` upserts, searches, reads,
deletes and counts the points of a VectorCollection's embedded collection
(`llm_infra_controlplane.routes.vectors` serves it). The models here are the
contract of both sides, in camelCase; `PointFilter` is the JSON form of
`llm_infra.vector.MetadataFilter` (Qdrant's must/should/mustNot shape), with
conversions both ways. `VectorClientMixin` gives `ControlPlaneClient` the same
calls as `llm_infra.VectorStore`, answering the SDK's own `Hit`,
`Record` and `CollectionStats`. Neighbour: `_collections` (admin API, client).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from llm_infra import errors, vector
from llm_infra.client._transport import Sender
from llm_infra.client._wire import StrictWire, Wire
from llm_infra.vector import F, MetadataFilter

MAX_UPSERT_POINTS = 1000
"""Points per upsert request; split bigger loads (`upsert_points` does)."""
MAX_SEARCHES = 1000
"""Queries per batch search request."""
MAX_K = 1000
"""Hits per query."""

WirePointId = (
    Annotated[StrictInt, Field(ge=0, le=2**64 - 1)] | Annotated[StrictStr, Field(min_length=1)]
)
"""A point id on the wire: an unsigned integer, or a string (UUIDs as they are, others mapped)."""
MatchValue = StrictStr | StrictInt | StrictBool
Vector = Sequence[float] | npt.NDArray[np.floating]

_JSON_HEADERS = {"content-type": "application/json"}


# Requests refuse unknown members (a typo must not silently drop a filter): StrictWire.
# Answers are read leniently, so a newer server never breaks an older client.
class _Answer(Wire):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


# -- filters -----------------------------------------------------------------------------------


class FilterMatch(StrictWire):
    """Exactly one of: `value` (equals), `any` (equals one of), `text` (full-text; text index)."""

    value: MatchValue | None = None
    any: list[MatchValue] | None = Field(None, min_length=1)
    text: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(x is not None for x in (self.value, self.any, self.text)) != 1:
            raise ValueError("a match takes exactly one of value, any or text")
        return self


class FilterRange(StrictWire):
    """Numeric bounds; at least one of gt, gte, lt, lte."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.gt is None and self.gte is None and self.lt is None and self.lte is None:
            raise ValueError("a range takes at least one of gt, gte, lt or lte")
        return self


class FieldCondition(StrictWire):
    """A condition on the payload field `key`: exactly one of `match` or `range`."""

    key: str = Field(min_length=1)
    match: FilterMatch | None = None
    range: FilterRange | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.match is None) == (self.range is None):
            raise ValueError("a condition takes exactly one of match or range")
        return self

    def to_metadata(self) -> MetadataFilter:
        if self.match is not None:
            if self.match.any is not None:
                return F.in_(self.key, self.match.any)
            if self.match.text is not None:
                return F.contains(self.key, self.match.text)
            assert self.match.value is not None  # exactly one is set
            return F.eq(self.key, self.match.value)
        assert self.range is not None
        bounds = [
            build(self.key, bound)
            for build, bound in (
                (F.gt, self.range.gt),
                (F.gte, self.range.gte),
                (F.lt, self.range.lt),
                (F.lte, self.range.lte),
            )
            if bound is not None
        ]
        return bounds[0] if len(bounds) == 1 else F.and_(*bounds)


def _condition_kind(value: Any) -> str:
    has_key = "key" in value if isinstance(value, dict) else isinstance(value, FieldCondition)
    return "condition" if has_key else "filter"


Condition = Annotated[
    Annotated[FieldCondition, Tag("condition")] | Annotated["PointFilter", Tag("filter")],
    Discriminator(_condition_kind),
]
"""A field condition (has `key`) or a nested filter."""


class PointFilter(StrictWire):
    """A payload filter: every `must`, at least one `should`, no `mustNot` condition matches.

    The JSON form of `llm_infra.vector.F` filters (`from_metadata`, `to_metadata`):

        {"must": [{"key": "lang", "match": {"value": "en"}},
                  {"key": "year", "range": {"gte": 2020}}],
         "mustNot": [{"key": "status", "match": {"any": ["draft", "deleted"]}}]}
    """

    must: list[Condition] | None = None
    should: list[Condition] | None = None
    must_not: list[Condition] | None = None

    @classmethod
    def from_metadata(cls, node: MetadataFilter) -> PointFilter:
        condition = _condition(node)
        return condition if isinstance(condition, PointFilter) else cls(must=[condition])

    def to_metadata(self) -> MetadataFilter | None:
        """The filter as `F` builds it; None for an empty filter (it matches every point)."""
        parts: list[MetadataFilter] = []
        if self.must:
            parts.extend(_metadata(c) for c in self.must)
        if self.should:
            parts.append(F.or_(*(_metadata(c) for c in self.should)))
        if self.must_not:
            parts.extend(F.not_(_metadata(c)) for c in self.must_not)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else F.and_(*parts)


def _metadata(condition: FieldCondition | PointFilter) -> MetadataFilter:
    node = condition.to_metadata()
    if node is None:
        # Inside must/should/mustNot an empty filter would flip meaning by position: refuse it.
        raise errors.ValidationError(
            "a nested filter needs at least one of must, should or mustNot",
            field="filter",
        )
    return node


def _condition(node: MetadataFilter) -> FieldCondition | PointFilter:
    if node.op == "and":
        return PointFilter(must=[_condition(child) for child in node.children])
    if node.op == "or":
        return PointFilter(should=[_condition(child) for child in node.children])
    if node.op == "not":
        return PointFilter(must_not=[_condition(node.children[0])])
    assert node.field is not None  # every leaf has one (built by F)
    if node.op == "ne":
        return PointFilter(must_not=[_condition(F.eq(node.field, node.value))])
    if node.op == "eq" and isinstance(node.value, float):
        # Exact match takes str, int and bool; F matches a float as the range [v, v].
        return FieldCondition(key=node.field, range=FilterRange(gte=node.value, lte=node.value))
    if node.op == "eq":
        return FieldCondition(key=node.field, match=FilterMatch(value=node.value))
    if node.op == "in":
        return FieldCondition(key=node.field, match=FilterMatch(any=list(node.value)))
    if node.op == "contains":
        return FieldCondition(key=node.field, match=FilterMatch(text=node.value))
    return FieldCondition(key=node.field, range=FilterRange.model_validate({node.op: node.value}))


PointFilter.model_rebuild()


# -- requests ----------------------------------------------------------------------------------


class PointData(StrictWire):
    """A point to store: its id, vector and payload."""

    id: WirePointId
    vector: list[float]
    payload: dict[str, Any] | None = None


class UpsertRequest(StrictWire):
    """Body of POST .../points."""

    points: list[PointData] = Field(max_length=MAX_UPSERT_POINTS)


class SearchRequest(StrictWire):
    """Body of POST .../search (and one entry of a batch)."""

    vector: list[float] = Field(min_length=1)
    k: int = Field(10, ge=1, le=MAX_K)
    filter: PointFilter | None = None
    hnsw_ef: int | None = Field(None, ge=1)
    """Search breadth of HNSW; default: the collection's searchDefaults."""
    exact: bool | None = None
    """Brute force instead of the index; default: the collection's searchDefaults."""
    with_payload: bool = True
    with_vector: bool = False


class SearchBatchRequest(StrictWire):
    """Body of POST .../search/batch: the searches run together, answered in order."""

    searches: list[SearchRequest] = Field(min_length=1, max_length=MAX_SEARCHES)


class DeletePointsRequest(StrictWire):
    """Body of POST .../points/delete: `ids`, or every point a `filter` matches."""

    ids: list[WirePointId] | None = Field(None, max_length=MAX_UPSERT_POINTS)
    filter: PointFilter | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("delete takes exactly one of ids or filter")
        return self


class CountRequest(StrictWire):
    """Body of POST .../count: no filter counts every point."""

    filter: PointFilter | None = None


# -- answers -----------------------------------------------------------------------------------


class PointFailure(_Answer):
    """A point the upsert refused, and why (the error's code and message)."""

    id: WirePointId
    code: str
    detail: str

    def error(self) -> errors.InfraError:
        """The refusal as the `llm_infra.errors` class its code names."""
        return errors.from_problem({"code": self.code, "detail": self.detail})


class UpsertResult(_Answer):
    """Points stored, and those refused by id (the others are stored all the same)."""

    upserted: int
    errors: list[PointFailure] = Field(default_factory=list)


class ScoredPoint(_Answer):
    id: WirePointId
    score: float
    payload: dict[str, Any] | None = None
    """Present unless the search asked withPayload=false."""
    vector: list[float] | None = None
    """Present when the search asked withVector=true."""


class SearchResult(_Answer):
    hits: list[ScoredPoint]
    """Best first."""


class SearchBatchResult(_Answer):
    results: list[SearchResult]
    """One per search, in the order asked."""


class PointRecord(_Answer):
    id: WirePointId
    payload: dict[str, Any] = Field(default_factory=dict)
    vector: list[float] | None = None


class DeletePointsResult(_Answer):
    deleted: int
    """Points this call removed (0 when there was nothing to delete: deletes are idempotent)."""


class CountResult(_Answer):
    count: int


class CollectionStatsResult(_Answer):
    points: int
    indexed_vectors: int
    dimensions: int
    distance: Literal["Cosine", "Dot", "Euclid", "Manhattan"]
    segments: int | None = None
    disk_bytes: int | None = None


# -- client --------------------------------------------------------------------------------------


class VectorClientMixin(Sender):
    """The vector data calls of `ControlPlaneClient`, shaped like `llm_infra.VectorStore`.

    Collections are named by their VectorCollection (`namespace`, `name`); the
    control plane finds the collection behind it. Errors are the SDK's:
    CollectionNotFound, DimensionMismatch (expected/actual), ValidationError
    naming the field. Bodies are encoded and decoded with orjson, and hits are
    built as `Hit` tuples without a model in between: searches are the hot path.
    """

    async def upsert_points(
        self, namespace: str, name: str, points: Iterable[vector.Point | PointData]
    ) -> UpsertResult:
        """Store points (replacing same ids), in requests of MAX_UPSERT_POINTS.

        Refused points are reported by id in the result and the rest are
        stored; a request of which no point could be stored raises its first
        refusal instead (DimensionMismatch, InvalidVector, ...).
        """
        total, failures = 0, list[PointFailure]()
        batch: list[dict[str, Any]] = []
        for point in points:
            batch.append(_point_body(point))
            if len(batch) == MAX_UPSERT_POINTS:
                total, failures = await self._upsert(namespace, name, batch, total, failures)
                batch = []
        if batch:
            total, failures = await self._upsert(namespace, name, batch, total, failures)
        return UpsertResult(upserted=total, errors=failures)

    async def search(
        self,
        namespace: str,
        name: str,
        query: Vector,
        k: int = 10,
        *,
        filter: MetadataFilter | PointFilter | None = None,
        hnsw_ef: int | None = None,
        exact: bool | None = None,
        with_vector: bool = False,
        with_payload: bool = True,
    ) -> list[vector.Hit]:
        """The `k` nearest points to `query`, best first."""
        body = _search_body(query, k, filter, hnsw_ef, exact, with_vector, with_payload)
        answer = await self._post_json(namespace, name, "/search", body)
        return _hits(answer["hits"])

    async def search_batch(
        self,
        namespace: str,
        name: str,
        queries: Sequence[Vector],
        k: int = 10,
        *,
        filter: MetadataFilter | PointFilter | None = None,
        hnsw_ef: int | None = None,
        exact: bool | None = None,
        with_vector: bool = False,
        with_payload: bool = True,
    ) -> list[list[vector.Hit]]:
        """`search` for many queries in one request (and one engine pass), answered in order."""
        common = _search_body([], k, filter, hnsw_ef, exact, with_vector, with_payload)
        searches = [common | {"vector": query} for query in queries]
        answer = await self._post_json(namespace, name, "/search/batch", {"searches": searches})
        return [_hits(result["hits"]) for result in answer["results"]]

    async def get_point(
        self, namespace: str, name: str, point_id: vector.PointId, *, with_vector: bool = False
    ) -> vector.Record | None:
        """The stored point, or None.

        The id travels in the path, where a string of digits reads as that
        integer id: fetch such string ids through `search` or `count` filters.
        """
        params = {"withVector": "true"} if with_vector else None
        try:
            path = _path(namespace, name, f"/points/{quote(str(point_id), safe='')}")
            response = await self._send("GET", path, params=params)
        except errors.NotFound:  # the point; a missing collection is CollectionNotFound
            return None
        record = PointRecord.model_validate_json(response.content)
        return vector.Record(record.id, record.payload, record.vector)

    async def delete_points(
        self,
        namespace: str,
        name: str,
        ids: Sequence[vector.PointId] | None = None,
        *,
        filter: MetadataFilter | PointFilter | None = None,
    ) -> int:
        """Delete points by id, or every point a filter matches; how many were removed."""
        body: dict[str, Any] = {}
        if ids is not None:
            body["ids"] = [str(i) if not isinstance(i, int | str) else i for i in ids]
        if filter is not None:
            body["filter"] = _filter_body(filter)
        answer = await self._post_json(namespace, name, "/points/delete", body)
        return int(answer["deleted"])

    async def count(
        self, namespace: str, name: str, filter: MetadataFilter | PointFilter | None = None
    ) -> int:
        """Points stored (matching `filter`, if given); exact."""
        body = {} if filter is None else {"filter": _filter_body(filter)}
        answer = await self._post_json(namespace, name, "/count", body)
        return int(answer["count"])

    async def collection_stats(self, namespace: str, name: str) -> vector.CollectionStats:
        """Points, indexed vectors, dimensions, distance, segments and size on disk."""
        response = await self._send("GET", _path(namespace, name, "/stats"))
        stats = CollectionStatsResult.model_validate_json(response.content)
        return vector.CollectionStats(
            points=stats.points,
            indexed_vectors=stats.indexed_vectors,
            dimensions=stats.dimensions,
            distance=stats.distance,
            segments=stats.segments,
            disk_bytes=stats.disk_bytes,
        )

    # -- internals -----------------------------------------------------------------------------

    async def _upsert(
        self,
        namespace: str,
        name: str,
        batch: list[dict[str, Any]],
        total: int,
        failures: list[PointFailure],
    ) -> tuple[int, list[PointFailure]]:
        answer = await self._post_json(namespace, name, "/points", {"points": batch})
        result = UpsertResult.model_validate(answer)
        return total + result.upserted, failures + result.errors

    async def _post_json(self, namespace: str, name: str, suffix: str, body: Any) -> Any:
        response = await self._send(
            "POST",
            _path(namespace, name, suffix),
            content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
            headers=_JSON_HEADERS,
        )
        with errors.translate():
            return orjson.loads(response.content)


def _path(namespace: str, name: str, suffix: str) -> str:
    collection = f"/v1/namespaces/{quote(namespace, safe='')}/collections/{quote(name, safe='')}"
    return collection + suffix


def _point_body(point: vector.Point | PointData) -> dict[str, Any]:
    if isinstance(point, PointData):
        return point.model_dump(mode="json", by_alias=True, exclude_none=True)
    body: dict[str, Any] = {
        "id": point.id if isinstance(point.id, int | str) else str(point.id),
        "vector": point.vector if isinstance(point.vector, np.ndarray) else list(point.vector),
    }
    if point.payload is not None:
        body["payload"] = dict(point.payload)
    return body


def _filter_body(filter: MetadataFilter | PointFilter) -> dict[str, Any]:
    wire = filter if isinstance(filter, PointFilter) else PointFilter.from_metadata(filter)
    return wire.model_dump(mode="json", by_alias=True, exclude_none=True)


def _search_body(
    query: Vector,
    k: int,
    filter: MetadataFilter | PointFilter | None,
    hnsw_ef: int | None,
    exact: bool | None,
    with_vector: bool,
    with_payload: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vector": query,
        "k": k,
        "withPayload": with_payload,
        "withVector": with_vector,
    }
    if filter is not None:
        body["filter"] = _filter_body(filter)
    if hnsw_ef is not None:
        body["hnswEf"] = hnsw_ef
    if exact is not None:
        body["exact"] = exact
    return body


def _hits(hits: list[dict[str, Any]]) -> list[vector.Hit]:
    return [vector.Hit(h["id"], h["score"], h.get("payload"), h.get("vector")) for h in hits]
