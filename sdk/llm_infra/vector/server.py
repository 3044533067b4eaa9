"""QdrantStore: a collection on a Qdrant server, through qdrant-client's async client.

REST by default (`grpc=True` prefers gRPC for points and searches). The same
class runs on qdrant-client's local mode (`location=":memory:"` or `path=`),
the stand-in for a server in tests and CI; local mode is exact brute force
(`hnsw_ef`, HNSW and quantization settings are accepted and have no effect),
ignores payload indexes (filters still work: they scan), and reports neither,
so `connect` trusts the given config for them there.

Qdrant's config holds the collection's shape (dimensions, distance, HNSW,
quantization, payload indexes): unlike EdgeStore, nothing is kept beside it.
The search defaults of a CollectionConfig (`hnsw_ef`, `exact`, `rescore`,
`oversampling`) are not server settings: a store opened without a config uses
the library defaults.

A server builds its indexes by itself (the optimizer runs after writes), so
`optimize()` does nothing and returns False. An unreachable server surfaces as
`errors.VectorUnavailable` (retryable).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, cast, get_args

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.local.async_qdrant_local import AsyncQdrantLocal

from llm_infra import errors
from llm_infra.vector._base import Row, VectorStore
from llm_infra.vector._client import qdrant_client
from llm_infra.vector._config import CollectionConfig, Quantization
from llm_infra.vector._filter import MetadataFilter
from llm_infra.vector._ids import from_qdrant, public_payload
from llm_infra.vector._plan import CollectionPlan, plan
from llm_infra.vector._types import CollectionStats, Distance, Hit, PayloadType, Record

_DISTANCE: dict[Distance, models.Distance] = {
    "Cosine": models.Distance.COSINE,
    "Dot": models.Distance.DOT,
    "Euclid": models.Distance.EUCLID,
    "Manhattan": models.Distance.MANHATTAN,
}
_PAYLOAD_TYPE: dict[PayloadType, models.PayloadSchemaType] = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "bool": models.PayloadSchemaType.BOOL,
    "geo": models.PayloadSchemaType.GEO,
    "datetime": models.PayloadSchemaType.DATETIME,
    "uuid": models.PayloadSchemaType.UUID,
    "text": models.PayloadSchemaType.TEXT,
}
_COMPRESSION = {
    "x4": models.CompressionRatio.X4,
    "x8": models.CompressionRatio.X8,
    "x16": models.CompressionRatio.X16,
    "x32": models.CompressionRatio.X32,
    "x64": models.CompressionRatio.X64,
}
# What local mode neither applies nor reports: taken from the given config there.
_LOCAL_UNREPORTED = (
    "hnsw_m",
    "hnsw_ef_construct",
    "full_scan_threshold",
    "quantization",
    "scalar_quantile",
    "product_compression",
    "quantized_in_ram",
    "payload_indexes",
)
# gRPC status codes that mean "no usable answer": retry later.
_GRPC_UNAVAILABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}


class QdrantStore(VectorStore):
    """A collection on a Qdrant server (or in qdrant-client's local mode)."""

    backend: ClassVar[str] = "qdrant"

    def __init__(
        self, name: str, config: CollectionConfig, client: AsyncQdrantClient, *, owns_client: bool
    ) -> None:
        super().__init__(name, config)
        self.last_plan = CollectionPlan()
        """What `connect` changed to match the config it was given (empty when nothing)."""
        self._client: AsyncQdrantClient | None = client
        self._owns_client = owns_client
        self._local = _is_local(client)

    @classmethod
    async def connect(
        cls,
        name: str,
        config: CollectionConfig | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        grpc: bool = False,
        location: str | None = None,
        path: str | None = None,
        client: AsyncQdrantClient | None = None,
    ) -> QdrantStore:
        """Open the collection `name`, creating it from `config` if it does not exist.

        Where: `url` (a server; REST, or gRPC with `grpc=True`), `location=":memory:"`
        or `path` (qdrant-client local mode), or an existing `client` (left open by
        `close()`). Reopening with a `config` whose dimensions or distance differ
        from the collection's raises CollectionConfigMismatch and touches nothing;
        other differences (payload indexes, HNSW, quantization, aliases) are applied.
        Without a `config`, a missing collection raises CollectionNotFound.
        """
        owns_client = client is None
        if client is None:
            client = qdrant_client(url, api_key=api_key, location=path or location, grpc=grpc)
        try:
            store = await cls._open(name, config, client, owns_client=owns_client)
        except BaseException:
            if owns_client:
                with errors.translate(_qdrant_error):
                    await client.close()
            raise
        return store

    @classmethod
    async def _open(
        cls,
        name: str,
        config: CollectionConfig | None,
        client: AsyncQdrantClient,
        *,
        owns_client: bool,
    ) -> QdrantStore:
        local = _is_local(client)
        with errors.translate(_qdrant_error):
            exists = await client.collection_exists(name)
        observed = await _observed_config(client, name) if exists else None
        if local and observed is not None and config is not None:
            observed = dataclasses.replace(
                observed, **{f: getattr(config, f) for f in _LOCAL_UNREPORTED}
            )
        desired = config or observed
        if desired is None:
            raise errors.CollectionNotFound(
                f"no collection {name!r} on the server: pass a CollectionConfig to create it",
                collection=name,
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
        store = cls(name, desired, client, owns_client=owns_client)
        store.last_plan = decided
        await store._apply(decided, local)
        return store

    async def _apply(self, decided: CollectionPlan, local: bool) -> None:
        client, name, config = self.client, self.name, self.config
        with errors.translate(_qdrant_error):
            if decided.create:
                await client.create_collection(
                    name,
                    vectors_config=models.VectorParams(
                        size=config.dimensions,
                        distance=_DISTANCE[config.distance],
                        on_disk=config.on_disk,
                    ),
                    hnsw_config=_hnsw(config),
                    quantization_config=_quantization(config),
                )
            elif not local:  # local mode ignores both
                if decided.index_settings:
                    await client.update_collection(name, hnsw_config=_hnsw(config))
                if decided.quantization:
                    await client.update_collection(
                        name, quantization_config=_quantization(config) or models.Disabled.DISABLED
                    )
            if not local:  # local mode ignores payload indexes (and warns about each)
                for field in decided.drop_indexes:
                    await client.delete_payload_index(name, field, wait=True)
                for field, kind in decided.create_indexes.items():
                    await client.create_payload_index(name, field, _PAYLOAD_TYPE[kind], wait=True)
            operations: list[models.AliasOperations] = [
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
                for alias in decided.remove_aliases
            ]
            operations += [
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=name, alias_name=alias)
                )
                for alias in decided.add_aliases
            ]
            if operations:
                await client.update_collection_aliases(change_aliases_operations=operations)

    @property
    def client(self) -> AsyncQdrantClient:
        if self._client is None:
            raise errors.VectorError("the store is closed", collection=self.name)
        return self._client

    # -- engine calls --------------------------------------------------------------------------

    async def _upsert(self, rows: list[Row]) -> None:
        points = [
            models.PointStruct(id=point_id, vector=vector, payload=payload)
            for point_id, vector, payload in rows
        ]
        with errors.translate(_qdrant_error):
            await self.client.upsert(self.name, points=points, wait=True)

    async def _delete_ids(self, ids: list[int | str]) -> None:
        with errors.translate(_qdrant_error):
            await self.client.delete(
                self.name, points_selector=models.PointIdsList(points=list(ids)), wait=True
            )

    async def _delete_filter(self, filter: MetadataFilter) -> None:
        selector = models.FilterSelector(filter=filter.to_qdrant())
        with errors.translate(_qdrant_error):
            await self.client.delete(self.name, points_selector=selector, wait=True)

    async def _set_payload(
        self, stored_id: int | str, payload: dict[str, Any], *, replace: bool
    ) -> None:
        client = self.client
        with errors.translate(_qdrant_error):
            found = await client.retrieve(
                self.name, ids=[stored_id], with_payload=False, with_vectors=False
            )
        if not found:
            raise errors.NotFound(f"no point {stored_id!r}", service="qdrant")
        selector = models.PointIdsList(points=[stored_id])
        with errors.translate(_qdrant_error):
            if replace:
                await client.overwrite_payload(self.name, payload, points=selector, wait=True)
            else:
                await client.set_payload(self.name, payload, points=selector, wait=True)

    def _params(self, hnsw_ef: int | None, exact: bool) -> models.SearchParams | None:
        if self._local:
            return None  # local mode is always exact and warns about any search params
        quantization = None
        if self.config.quantization is not None:
            quantization = models.QuantizationSearchParams(
                rescore=self.config.rescore, oversampling=self.config.oversampling
            )
        return models.SearchParams(hnsw_ef=hnsw_ef, exact=exact, quantization=quantization)

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
        qdrant_filter = filter.to_qdrant() if filter is not None else None
        client = self.client
        with errors.translate(_qdrant_error):
            if len(vectors) == 1:
                response = await client.query_points(
                    self.name,
                    query=vectors[0],
                    query_filter=qdrant_filter,
                    search_params=params,
                    limit=k,
                    with_payload=with_payload,
                    with_vectors=with_vector,
                )
                found = [response.points]
            else:
                requests = [
                    models.QueryRequest(
                        query=vector,
                        filter=qdrant_filter,
                        params=params,
                        limit=k,
                        with_payload=with_payload,
                        with_vector=with_vector,
                    )
                    for vector in vectors
                ]
                responses = await client.query_batch_points(self.name, requests=requests)
                found = [r.points for r in responses]
        hit = self._hit
        return [
            [hit(p.id, p.score, p.payload, p.vector if with_vector else None) for p in points]
            for points in found
        ]

    async def _get(self, stored_id: int | str, with_vector: bool) -> Record | None:
        with errors.translate(_qdrant_error):
            records = await self.client.retrieve(
                self.name, ids=[stored_id], with_payload=True, with_vectors=with_vector
            )
        if not records:
            return None
        record = records[0]
        payload = record.payload or {}
        return Record(
            from_qdrant(record.id, payload),
            public_payload(payload) or {},
            cast("list[float]", record.vector) if with_vector else None,
        )

    async def _count(self, filter: MetadataFilter | None) -> int:
        with errors.translate(_qdrant_error):
            result = await self.client.count(
                self.name, count_filter=filter.to_qdrant() if filter else None, exact=True
            )
        return result.count

    async def _stats(self) -> CollectionStats:
        with errors.translate(_qdrant_error):
            info = await self.client.get_collection(self.name)
        points = info.points_count or 0
        return CollectionStats(
            points=points,
            indexed_vectors=min(info.indexed_vectors_count or 0, points),
            dimensions=self.config.dimensions,
            distance=self.config.distance,
            segments=info.segments_count,
            disk_bytes=None,  # the server does not report it per collection
        )

    async def _optimize(self) -> bool:
        # The server's optimizer indexes new segments by itself, in the background;
        # there is nothing to trigger from here.
        return False

    async def _close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            if self._owns_client:
                with errors.translate(_qdrant_error):
                    await client.close()


def _is_local(client: AsyncQdrantClient) -> bool:
    return isinstance(getattr(client, "_client", None), AsyncQdrantLocal)


async def _observed_config(client: AsyncQdrantClient, name: str) -> CollectionConfig:
    """The CollectionConfig the server holds for `name` (search defaults: the library's)."""
    with errors.translate(_qdrant_error):
        info = await client.get_collection(name)
        aliases = await client.get_collection_aliases(name)
    vectors = info.config.params.vectors
    if not isinstance(vectors, models.VectorParams):
        raise errors.ValidationError(
            f"collection {name!r} has named vectors, not supported by llm_infra.vector yet",
            field="vectors",
        )
    hnsw = info.config.hnsw_config
    override = vectors.hnsw_config
    quantization = vectors.quantization_config or info.config.quantization_config
    return CollectionConfig(
        dimensions=vectors.size,
        distance=vectors.distance.value,
        on_disk=bool(vectors.on_disk),
        hnsw_m=_first(override.m if override else None, hnsw.m),
        hnsw_ef_construct=_first(override.ef_construct if override else None, hnsw.ef_construct),
        full_scan_threshold=_first(
            override.full_scan_threshold if override else None, hnsw.full_scan_threshold
        ),
        payload_indexes={
            field: index.data_type.value
            for field, index in info.payload_schema.items()
            if index.data_type.value in get_args(PayloadType)
        },
        aliases=tuple(sorted(a.alias_name for a in aliases.aliases)),
        **_observed_quantization(quantization),
    )


def _first(value: int | None, default: int) -> int:
    return value if value is not None else default


def _observed_quantization(config: models.QuantizationConfig | None) -> dict[str, Any]:
    quantization: Quantization
    if isinstance(config, models.ScalarQuantization):
        quantization = "scalar"
        return {
            "quantization": quantization,
            "scalar_quantile": config.scalar.quantile if config.scalar.quantile else 0.99,
            "quantized_in_ram": bool(config.scalar.always_ram),
        }
    if isinstance(config, models.ProductQuantization):
        quantization = "product"
        return {
            "quantization": quantization,
            "product_compression": config.product.compression.value,
            "quantized_in_ram": bool(config.product.always_ram),
        }
    if isinstance(config, models.BinaryQuantization):
        quantization = "binary"
        return {"quantization": quantization, "quantized_in_ram": bool(config.binary.always_ram)}
    return {}


def _hnsw(config: CollectionConfig) -> models.HnswConfigDiff:
    return models.HnswConfigDiff(
        m=config.hnsw_m,
        ef_construct=config.hnsw_ef_construct,
        full_scan_threshold=config.full_scan_threshold,
    )


def _quantization(config: CollectionConfig) -> models.QuantizationConfig | None:
    if config.quantization == "scalar":
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8,
                quantile=config.scalar_quantile,
                always_ram=config.quantized_in_ram,
            )
        )
    if config.quantization == "product":
        return models.ProductQuantization(
            product=models.ProductQuantizationConfig(
                compression=_COMPRESSION[config.product_compression],
                always_ram=config.quantized_in_ram,
            )
        )
    if config.quantization == "binary":
        return models.BinaryQuantization(
            binary=models.BinaryQuantizationConfig(always_ram=config.quantized_in_ram)
        )
    return None


def _qdrant_error(exc: BaseException) -> errors.InfraError:
    # REST and local mode go through from_qdrant. gRPC raises grpc.aio.AioRpcError,
    # which from_qdrant does not know: map its status code here (duck-typed, as
    # grpcio ships no type information).
    code = getattr(exc, "code", None)
    if type(exc).__module__.startswith("grpc") and callable(code):
        status = getattr(code(), "name", "")
        details = getattr(exc, "details", None)
        message = str(details() if callable(details) else exc)
        cause = type(exc).__qualname__
        if status in _GRPC_UNAVAILABLE:
            return errors.VectorUnavailable(message, cause=cause)
        # Qdrant's own messages (missing collection, wrong vector size) read as in local mode.
        return errors.from_qdrant(ValueError(message))
    return errors.from_qdrant(exc)
