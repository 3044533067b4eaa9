"""llm_infra.client: typed clients of the llm-infra control plane's HTTP API.

    from llm_infra.client import ControlPlaneClient

    async with ControlPlaneClient(url, token=token) as cp:
        info = await cp.ensure_collection("team-a", "docs", spec, "team-a-docs")

The operator uses it for embedded collections, which the control plane owns
(the operator never opens a shard). Errors are `llm_infra.errors`, rebuilt
from the server's problem documents.
"""

from llm_infra.client._audit import (
    AppendAuditEventsRequest,
    AppendAuditEventsResponse,
    AppendedRecord,
    AuditClientMixin,
    AuditEventsPage,
    AuditStatus,
    AuditVerification,
    SinkDelivery,
)
from llm_infra.client._collections import (
    CollectionConfigSummary,
    CollectionInfo,
    CollectionName,
    ControlPlaneClient,
    DropResult,
    EnsureCollectionRequest,
)
from llm_infra.client._config import (
    CONFIG_EVENT,
    ConfigClientMixin,
    ConfigList,
    ConfigSummary,
    ConfigVersion,
    ServedConfigSource,
    watch_settings,
)
from llm_infra.client._transport import DEFAULT_RETRY, NO_RETRY
from llm_infra.client._vectors import (
    MAX_K,
    MAX_SEARCHES,
    MAX_UPSERT_POINTS,
    CollectionStatsResult,
    CountRequest,
    CountResult,
    DeletePointsRequest,
    DeletePointsResult,
    FieldCondition,
    FilterMatch,
    FilterRange,
    PointData,
    PointFailure,
    PointFilter,
    PointRecord,
    ScoredPoint,
    SearchBatchRequest,
    SearchBatchResult,
    SearchRequest,
    SearchResult,
    UpsertRequest,
    UpsertResult,
    VectorClientMixin,
    WirePointId,
)

__all__ = [
    "CONFIG_EVENT",
    "DEFAULT_RETRY",
    "MAX_K",
    "MAX_SEARCHES",
    "MAX_UPSERT_POINTS",
    "NO_RETRY",
    "AppendAuditEventsRequest",
    "AppendAuditEventsResponse",
    "AppendedRecord",
    "AuditClientMixin",
    "AuditEventsPage",
    "AuditStatus",
    "AuditVerification",
    "CollectionConfigSummary",
    "CollectionInfo",
    "CollectionName",
    "CollectionStatsResult",
    "ConfigClientMixin",
    "ConfigList",
    "ConfigSummary",
    "ConfigVersion",
    "ControlPlaneClient",
    "CountRequest",
    "CountResult",
    "DeletePointsRequest",
    "DeletePointsResult",
    "DropResult",
    "EnsureCollectionRequest",
    "FieldCondition",
    "FilterMatch",
    "FilterRange",
    "PointData",
    "PointFailure",
    "PointFilter",
    "PointRecord",
    "ScoredPoint",
    "SearchBatchRequest",
    "SearchBatchResult",
    "SearchRequest",
    "SearchResult",
    "ServedConfigSource",
    "SinkDelivery",
    "UpsertRequest",
    "UpsertResult",
    "VectorClientMixin",
    "WirePointId",
    "watch_settings",
]
