"""llm_infra.client: typed clients of the llm-infra control plane's HTTP API.

    from llm_infra.client import ControlPlaneClient

    async with ControlPlaneClient(url, token=token) as cp:
        info = await cp.ensure_collection("team-a", "docs", spec, "team-a-docs")

The operator uses it for embedded collections, which the control plane owns
(the operator never opens a shard). Errors are `llm_infra.errors`, rebuilt
from the server's problem documents.
"""

from llm_infra.client._collections import (
    CollectionConfigSummary,
    CollectionInfo,
    CollectionName,
    ControlPlaneClient,
    DropResult,
    EnsureCollectionRequest,
)

__all__ = [
    "CollectionConfigSummary",
    "CollectionInfo",
    "CollectionName",
    "ControlPlaneClient",
    "DropResult",
    "EnsureCollectionRequest",
]
