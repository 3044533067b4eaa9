"""EdgeStore: a collection in the embedded Qdrant core (qdrant-edge), one directory per collection.

Layout: `<dir>/collection.json` (our CollectionConfig; qdrant-edge does not
hand its config back) and `<dir>/shard/` (the qdrant-edge shard). A directory
has one owner at a time: qdrant-edge holds an exclusive lock on it, and a
second open, in this process or another, fails with `errors.CollectionLocked`.

qdrant-edge has no background optimizer: points stay in an unindexed segment,
searched exactly (correct, but slower), until `optimize()` builds the HNSW
graph. `IndexPolicy` does that for the caller after bulk writes. qdrant-edge
0.9 holds the GIL while it optimizes, so a build pauses the process; the policy
therefore builds once per `unindexed_threshold` points, not per write.

Calls into the engine run inline: a query is ~0.1-0.3 ms of Rust, less than
a hop to a worker thread would cost, and, holding the GIL, gains nothing there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import qdrant_edge as qe

from llm_infra import errors
from llm_infra.vector._base import Row, VectorStore
from llm_infra.vector._config import CollectionConfig
from llm_infra.vector._filter import MetadataFilter
from llm_infra.vector._ids import ORIGINAL_ID_KEY, from_qdrant, public_payload
from llm_infra.vector._plan import CollectionPlan, plan
from llm_infra.vector._types import CollectionStats, Hit, PointId, Record

_DISTANCE = {
    "Cosine": qe.Distance.Cosine,
    "Dot": qe.Distance.Dot,
    "Euclid": qe.Distance.Euclid,
    "Manhattan": qe.Distance.Manhattan,
}
_PAYLOAD_TYPE = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
    "geo": qe.PayloadSchemaType.Geo,
    "datetime": qe.PayloadSchemaType.Datetime,
    "uuid": qe.PayloadSchemaType.Uuid,
    "text": qe.PayloadSchemaType.Text,
}
_COMPRESSION = {
    "x4": qe.CompressionRatio.X4,
    "x8": qe.CompressionRatio.X8,
    "x16": qe.CompressionRatio.X16,
    "x32": qe.CompressionRatio.X32,
    "x64": qe.CompressionRatio.X64,
}
CONFIG_FILE = "collection.json"
SHARD_DIR = "shard"


@dataclass(frozen=True)
class IndexPolicy:
    """When the store builds the index by itself.

    After a write, once the unindexed points reach `unindexed_threshold` and
    also `growth` times the indexed ones: the second condition spaces builds
    out geometrically as a collection grows, so a bulk load of n points costs
    about 2n of index building instead of n²/threshold. `unindexed_threshold=None`
    turns it off (call `optimize()` yourself, e.g. after a bulk load).
    """

    unindexed_threshold: int | None = 20_000
    growth: float = 1.0


class EdgeStore(VectorStore):
    """A collection in the embedded Qdrant core."""

    backend: ClassVar[str] = "embedded"

    def __init__(
        self,
        name: str,
        config: CollectionConfig,
        shard: qe.EdgeShard,
        policy: IndexPolicy,
        directory: Path,
    ) -> None:
        super().__init__(name, config)
        self.directory = directory
        self.last_plan = CollectionPlan()
        """What `open` changed to match the config it was given (empty when nothing)."""
        self._shard: qe.EdgeShard | None = shard
        self._policy = policy
        self._indexed = 0
        self._unindexed = 0

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        config: CollectionConfig | None = None,
        *,
        name: str | None = None,
        policy: IndexPolicy | None = None,
    ) -> EdgeStore:
        """Open the collection in `directory`, creating it from `config` if it does not exist.

        Reopening with a `config` whose dimensions or distance differ from the
        stored ones raises CollectionConfigMismatch and touches nothing; other
        differences (payload indexes) are applied.
        """
        root = Path(directory)
        name = name or root.name
        stored = root / CONFIG_FILE
        observed = CollectionConfig.from_json(stored.read_text()) if stored.exists() else None
        desired = config or observed
        if desired is None:
            raise errors.CollectionNotFound(
                f"no collection in {root}: pass a CollectionConfig to create it", collection=name
            )
        decided = plan(desired, observed)
        if decided.mismatch is not None:
            raise errors.CollectionConfigMismatch(
                f"the collection has {decided.mismatch.field} {decided.mismatch.actual},"
                f" the config asks for {decided.mismatch.expected}; nothing was changed",
                field=decided.mismatch.field,
                expected=decided.mismatch.expected,
                actual=decided.mismatch.actual,
                collection=name,
            )
        if decided.create:
            (root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
            with errors.translate(_edge_error):
                shard = qe.EdgeShard.create(str(root / SHARD_DIR), _edge_config(desired))
        else:
            # HNSW or quantization changes take effect through load(config); the
            # next optimize() rebuilds what they touch.
            changed = decided.index_settings or decided.quantization
            shard = _load(root / SHARD_DIR, name, _edge_config(desired) if changed else None)
        store = cls(name, desired, shard, policy or IndexPolicy(), root)
        store.last_plan = decided
        for field in decided.drop_indexes:
            store.shard.update(qe.UpdateOperation.delete_field_index(field))
        for field, kind in decided.create_indexes.items():
            try:
                operation = qe.UpdateOperation.create_field_index(field, _PAYLOAD_TYPE[kind])
            except ValueError:  # qdrant-edge parses the path: its message may echo raw bytes
                raise errors.ValidationError(
                    f"payload index {field!r} is not a payload path: use dotted keys such as"
                    " metadata.lang (tags[] for the items of an array)",
                    field="payload_indexes",
                ) from None
            store.shard.update(operation)
        _write_atomically(stored, desired.to_json())
        info = shard.info()
        store._indexed = min(info.indexed_vectors_count, info.points_count)
        store._unindexed = info.points_count - store._indexed
        return store

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise errors.VectorError("the store is closed", collection=self.name)
        return self._shard

    # -- engine calls --------------------------------------------------------------------------

    async def _upsert(self, rows: list[Row]) -> None:
        points = [qe.Point(point_id, vector, payload) for point_id, vector, payload in rows]
        with errors.translate(_edge_error):
            self.shard.update(qe.UpdateOperation.upsert_points(points))
        self._unindexed += len(rows)
        threshold = self._policy.unindexed_threshold
        if threshold is not None and self._unindexed >= max(
            threshold, self._policy.growth * self._indexed
        ):
            await self._optimize()

    async def _delete_ids(self, ids: list[int | str]) -> None:
        with errors.translate(_edge_error):
            self.shard.update(qe.UpdateOperation.delete_points(list[PointId](ids)))

    async def _delete_filter(self, filter: MetadataFilter) -> None:
        with errors.translate(_edge_error):
            self.shard.update(qe.UpdateOperation.delete_points_by_filter(filter.to_edge()))

    async def _set_payload(
        self, stored_id: int | str, payload: dict[str, Any], *, replace: bool
    ) -> None:
        if not self.shard.retrieve([stored_id], False, False):
            raise errors.NotFound(f"no point {stored_id!r}", service="qdrant-edge")
        make = qe.UpdateOperation.overwrite_payload if replace else qe.UpdateOperation.set_payload
        with errors.translate(_edge_error):
            self.shard.update(make([stored_id], payload))

    def _params(self, hnsw_ef: int | None, exact: bool) -> qe.SearchParams:
        quantization = None
        if self.config.quantization is not None:
            quantization = qe.QuantizationSearchParams(
                rescore=self.config.rescore, oversampling=self.config.oversampling
            )
        return qe.SearchParams(hnsw_ef=hnsw_ef, exact=exact, quantization=quantization)

    async def _search(
        self,
        vectors: list[list[float]],
        k: int,
        filter: MetadataFilter | None,
        hnsw_ef: int | None,
        exact: bool,
        with_vector: bool,
        with_payload: bool,
    ) -> list[list[Hit]]:
        params = self._params(hnsw_ef, exact)
        edge_filter = filter.to_edge() if filter is not None else None
        requests = [
            qe.QueryRequest(
                query=qe.Query.Nearest(vector),
                limit=k,
                filter=edge_filter,
                params=params,
                with_payload=with_payload,
                with_vector=with_vector,
            )
            for vector in vectors
        ]
        with errors.translate(_edge_error):
            if len(requests) == 1:
                found = [self.shard.query(requests[0])]
            else:
                found = self.shard.query_batch(qe.QueryBatchRequest(requests))
        # The hot path: most payloads carry no original id, so build the Hit directly.
        key, hit = ORIGINAL_ID_KEY, self._hit
        results: list[list[Hit]] = []
        for points in found:
            hits = []
            for point in points:
                payload = point.payload if with_payload else None
                vector = point.vector if with_vector else None
                if payload is not None and key in payload:
                    hits.append(hit(point.id, point.score, payload, vector))
                else:
                    hits.append(Hit(point.id, point.score, payload, vector))  # type: ignore[arg-type]
            results.append(hits)
        return results

    async def _get(self, stored_id: int | str, with_vector: bool) -> Record | None:
        with errors.translate(_edge_error):
            records = self.shard.retrieve([stored_id], True, with_vector)
        if not records:
            return None
        record = records[0]
        payload = record.payload or {}
        return Record(
            from_qdrant(record.id, payload),
            public_payload(payload) or {},
            record.vector if with_vector else None,  # type: ignore[arg-type]
        )

    async def _count(self, filter: MetadataFilter | None) -> int:
        request = qe.CountRequest(exact=True, filter=filter.to_edge() if filter else None)
        with errors.translate(_edge_error):
            return self.shard.count(request)

    async def _stats(self) -> CollectionStats:
        info = self.shard.info()
        return CollectionStats(
            points=info.points_count,
            indexed_vectors=min(info.indexed_vectors_count, info.points_count),
            dimensions=self.config.dimensions,
            distance=self.config.distance,
            segments=info.segments_count,
            disk_bytes=_disk_usage(self.directory),
        )

    async def _optimize(self) -> bool:
        with errors.translate(_edge_error):
            changed = self.shard.optimize()
            info = self.shard.info()
        self._indexed = min(info.indexed_vectors_count, info.points_count)
        self._unindexed = info.points_count - self._indexed
        return changed

    async def _close(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            with errors.translate(_edge_error):
                shard.flush()
                shard.close()


def _edge_config(config: CollectionConfig) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(
            size=config.dimensions, distance=_DISTANCE[config.distance], on_disk=config.on_disk
        ),
        hnsw_config=qe.HnswIndexConfig(
            m=config.hnsw_m,
            ef_construct=config.hnsw_ef_construct,
            full_scan_threshold=config.full_scan_threshold,
        ),
        quantization_config=_quantization(config),
        # Index every segment that optimize() sees, whatever its size: the
        # policy above decides when, not a size threshold the user cannot see.
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
        max_search_threads=config.search_threads,
    )


def _quantization(config: CollectionConfig) -> Any:
    if config.quantization == "scalar":
        return qe.ScalarQuantizationConfig(
            qe.ScalarType.Int8, quantile=config.scalar_quantile, always_ram=config.quantized_in_ram
        )
    if config.quantization == "product":
        return qe.ProductQuantizationConfig(
            _COMPRESSION[config.product_compression], always_ram=config.quantized_in_ram
        )
    if config.quantization == "binary":
        return qe.BinaryQuantizationConfig(always_ram=config.quantized_in_ram)
    return None


def _edge_error(exc: BaseException) -> errors.InfraError:
    # qdrant-edge raises plain Exceptions carrying Qdrant's own messages, which
    # from_qdrant reads (dimension errors, missing collections) as for local mode.
    if type(exc) is Exception:
        return errors.from_qdrant(ValueError(str(exc)))
    return errors.from_exception(exc)


def _load(shard_dir: Path, name: str, config: qe.EdgeConfig | None) -> qe.EdgeShard:
    try:
        return qe.EdgeShard.load(str(shard_dir), config)
    except Exception as exc:  # noqa: BLE001 - qdrant-edge raises plain Exception; mapped below
        if "WouldBlock" in str(exc):
            raise errors.CollectionLocked(
                f"{shard_dir.parent} is open in another store or process: one owner per directory"
                " (close the other store, or serve the collection through the control plane)",
                collection=name,
            ) from None
        raise _edge_error(exc) from None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _disk_usage(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
