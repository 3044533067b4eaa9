"""VectorStore: the API every backend offers, with the policy shared by all of them.

The public methods check input (ids, vector length, finiteness), map ids,
record a span and a latency histogram, and translate library errors into
`llm_infra.errors`; a backend implements only the `_` methods that talk to its
engine. Batches never fail as a whole for one bad point: `insert_batch` stores
the good ones and reports the bad ones by id.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

from llm_infra import errors
from llm_infra.vector import _ids, _telemetry
from llm_infra.vector._checks import Vector, check_batch, check_query
from llm_infra.vector._config import CollectionConfig
from llm_infra.vector._filter import MetadataFilter
from llm_infra.vector._types import CollectionStats, Hit, InsertResult, Point, PointId, Record

# (qdrant id, vector, payload) as a backend stores it.
Row = tuple[int | str, list[float], dict[str, Any]]


class UnindexedFilterWarning(UserWarning):
    """A filter reads a payload field without an index: correct, but a full scan (~100x slower)."""


class VectorStore(ABC):
    """One collection, behind the same async API on every backend."""

    backend: ClassVar[str]

    def __init__(self, name: str, config: CollectionConfig) -> None:
        self.name = name
        self.config = config
        self._warned_fields: set[str] = set()

    # -- writes --------------------------------------------------------------------------------

    async def insert(
        self, point_id: PointId, vector: Vector, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Store one point (replacing a point with the same id); raises if it is refused."""
        result = await self.insert_batch([Point(point_id, vector, payload)])
        if result.failed:
            raise next(iter(result.failed.values()))

    async def insert_batch(self, points: Iterable[Point]) -> InsertResult:
        """Store many points; refused ones are reported by id and the rest are stored."""
        start = time.perf_counter()
        batch = list(points)
        with _telemetry.operation("insert_batch", self, points=len(batch)):
            vectors, failed_at = check_batch([p.vector for p in batch], self.config.dimensions)
            failed: dict[PointId, errors.InfraError] = {}
            rows: list[Row] = []
            for index, (point, vector) in enumerate(zip(batch, vectors, strict=True)):
                if index in failed_at:
                    failed[point.id] = failed_at[index]
                    continue
                try:
                    stored_id, original = _ids.to_qdrant(point.id)
                except errors.InfraError as exc:
                    failed[point.id] = exc
                    continue
                payload = dict(point.payload or {})
                if original is not None:
                    payload[_ids.ORIGINAL_ID_KEY] = original
                rows.append((stored_id, vector, payload))
            if rows:
                await self._upsert(rows)
        return InsertResult(len(rows), failed, time.perf_counter() - start)

    async def delete(
        self, ids: Sequence[PointId] | None = None, *, filter: MetadataFilter | None = None
    ) -> None:
        """Delete points by id, or every point a filter matches (exactly one of the two)."""
        if (ids is None) == (filter is None):
            raise errors.ValidationError("delete takes ids or a filter, not both or neither")
        with _telemetry.operation("delete", self):
            if ids is not None:
                await self._delete_ids([_ids.to_qdrant(i)[0] for i in ids])
            else:
                assert filter is not None
                await self._delete_filter(filter)

    async def update_metadata(
        self, point_id: PointId, payload: Mapping[str, Any], *, replace: bool = False
    ) -> None:
        """Merge `payload` into the point's payload (or replace it whole)."""
        stored_id, original = _ids.to_qdrant(point_id)
        new = dict(payload)
        if original is not None:
            new[_ids.ORIGINAL_ID_KEY] = original  # keep the caller's id through a replace
        with _telemetry.operation("update_metadata", self):
            await self._set_payload(stored_id, new, replace=replace)

    # -- reads ---------------------------------------------------------------------------------

    async def search(
        self,
        query: Vector,
        k: int = 10,
        *,
        filter: MetadataFilter | None = None,
        hnsw_ef: int | None = None,
        exact: bool | None = None,
        with_vector: bool = False,
        with_payload: bool = True,
    ) -> list[Hit]:
        """The `k` nearest points to `query`, best first."""
        vector = check_query(query, self.config.dimensions)
        _check_k(k)
        self._warn_unindexed(filter)
        with _telemetry.operation("search", self, k=k, filtered=filter is not None):
            found = await self._search(
                [vector],
                k,
                filter,
                self._ef(hnsw_ef),
                self._exact(exact),
                with_vector,
                with_payload,
            )
        return found[0]

    async def search_batch(
        self,
        queries: Sequence[Vector],
        k: int = 10,
        *,
        filter: MetadataFilter | None = None,
        hnsw_ef: int | None = None,
        exact: bool | None = None,
        with_vector: bool = False,
        with_payload: bool = True,
    ) -> list[list[Hit]]:
        """`search` for many queries in one call: one engine pass, far less overhead per query."""
        vectors = [check_query(q, self.config.dimensions) for q in queries]
        _check_k(k)
        self._warn_unindexed(filter)
        with _telemetry.operation("search_batch", self, k=k, queries=len(vectors)):
            return await self._search(
                vectors, k, filter, self._ef(hnsw_ef), self._exact(exact), with_vector, with_payload
            )

    async def get(self, point_id: PointId, *, with_vector: bool = False) -> Record | None:
        """The stored point, or None."""
        with _telemetry.operation("get", self):
            return await self._get(_ids.to_qdrant(point_id)[0], with_vector)

    async def count(self, filter: MetadataFilter | None = None) -> int:
        """Points stored (matching `filter`, if given); exact."""
        self._warn_unindexed(filter)
        with _telemetry.operation("count", self):
            return await self._count(filter)

    async def stats(self) -> CollectionStats:
        """Points, indexed vectors, dimensions, distance and size."""
        return await self._stats()

    async def optimize(self) -> bool:
        """Build the index over points written since the last build; True if anything changed."""
        with _telemetry.operation("optimize", self):
            return await self._optimize()

    async def close(self) -> None:
        await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- shared policy -------------------------------------------------------------------------

    def _ef(self, hnsw_ef: int | None) -> int | None:
        return hnsw_ef if hnsw_ef is not None else self.config.hnsw_ef

    def _exact(self, exact: bool | None) -> bool:
        return exact if exact is not None else self.config.exact

    def _warn_unindexed(self, filter: MetadataFilter | None) -> None:
        if filter is None:
            return
        for field in (
            set(filter.fields()) - self.config.payload_indexes.keys() - self._warned_fields
        ):
            self._warned_fields.add(field)
            warnings.warn(
                UnindexedFilterWarning(
                    f"collection {self.name!r} filters on {field!r}, which has no payload index:"
                    f" every such search scans. Add it to spec.payloadIndexes (or"
                    f" CollectionConfig.payload_indexes)."
                ),
                stacklevel=3,
            )

    def _hit(
        self, stored_id: PointId, score: float, payload: dict[str, Any] | None, vector: Any
    ) -> Hit:
        return Hit(
            _ids.from_qdrant(stored_id, payload), score, _ids.public_payload(payload), vector
        )

    # -- what a backend implements -------------------------------------------------------------

    @abstractmethod
    async def _upsert(self, rows: list[Row]) -> None: ...

    @abstractmethod
    async def _delete_ids(self, ids: list[int | str]) -> None: ...

    @abstractmethod
    async def _delete_filter(self, filter: MetadataFilter) -> None: ...

    @abstractmethod
    async def _set_payload(
        self, stored_id: int | str, payload: dict[str, Any], *, replace: bool
    ) -> None: ...

    @abstractmethod
    async def _search(
        self,
        vectors: list[list[float]],
        k: int,
        filter: MetadataFilter | None,
        hnsw_ef: int | None,
        exact: bool,
        with_vector: bool,
        with_payload: bool,
    ) -> list[list[Hit]]: ...

    @abstractmethod
    async def _get(self, stored_id: int | str, with_vector: bool) -> Record | None: ...

    @abstractmethod
    async def _count(self, filter: MetadataFilter | None) -> int: ...

    @abstractmethod
    async def _stats(self) -> CollectionStats: ...

    @abstractmethod
    async def _optimize(self) -> bool: ...

    @abstractmethod
    async def _close(self) -> None: ...


def _check_k(k: object) -> None:  # object: callers may pass anything at run time
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise errors.ValidationError("k must be a positive integer", field="k", actual=str(k))
