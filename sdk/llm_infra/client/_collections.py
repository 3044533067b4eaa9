"""The collection admin API of the control plane: its wire models and the client half.

The control plane owns the embedded (qdrant-edge) collections; the operator
ensures, reads and drops them through `ControlPlaneClient` instead of opening a
shard. The models here are the wire contract of both sides (the control plane's
routes validate and answer with them), in the CRD's camelCase.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self
from urllib.parse import quote

import httpx
from pydantic import ConfigDict, Field

from llm_infra import errors, http
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.client._audit import AuditClientMixin
from llm_infra.client._config import ConfigClientMixin
from llm_infra.client._transport import DEFAULT_RETRY, pooled_transport
from llm_infra.client._vectors import VectorClientMixin
from llm_infra.client._wire import Wire

CollectionName = Annotated[
    str, Field(pattern=r"^[a-zA-Z0-9_-][a-zA-Z0-9_.-]*$", min_length=1, max_length=255)
]
"""A collection's name in Qdrant (and its directory name in the embedded core, within the
VectorCollection's namespace): letters, digits, '_', '-', '.', not starting with a dot."""


class EnsureCollectionRequest(Wire):
    """Body of PUT /v1/namespaces/{namespace}/collections/{name}."""

    model_config = ConfigDict(extra="forbid")

    collection_name: CollectionName
    """The collection's name in Qdrant: spec.collectionName, or its default."""
    spec: VectorCollectionSpec
    """The VectorCollection's spec."""


class CollectionConfigSummary(Wire):
    """The engine settings a collection runs with."""

    dimensions: int
    distance: str
    on_disk: bool
    hnsw_m: int
    hnsw_ef_construct: int
    quantization: str | None = None
    payload_indexes: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)


class CollectionInfo(Wire):
    """A collection as the control plane holds it, and what the last ensure changed."""

    namespace: str
    name: str
    """The VectorCollection's namespace and name."""
    collection_name: str
    backend: Literal["embedded", "qdrant"] = "embedded"
    created: bool = False
    changes: list[str] = Field(default_factory=list)
    """What this call changed, in words; empty when the collection already matched."""
    points_count: int
    indexed_vectors_count: int
    segments: int | None = None
    disk_bytes: int | None = None
    config: CollectionConfigSummary


class DropResult(Wire):
    """Answer of DELETE: whether there was a collection to drop."""

    dropped: bool


class ControlPlaneClient(AuditClientMixin, ConfigClientMixin, VectorClientMixin):
    """An async client of the control plane's API; errors come back as `llm_infra.errors`.

        async with ControlPlaneClient("http://llm-infra-controlplane:8080") as cp:
            info = await cp.ensure_collection("team-a", "docs", spec, "team-a-docs")

    A problem document (RFC 9457) is raised as the error it describes
    (`errors.from_problem`): CollectionConfigMismatch, ValidationError naming
    the field, CollectionNotFound, ... Transport failures raise the mapped
    httpx error (HttpConnectError, HttpTimeout: retryable). Retryable
    failures (a restart, a 503 while NATS reconnects) are retried within
    `retry` (`NO_RETRY` for callers with their own backoff); every route is
    safe to repeat. Requests go through aiohttp's connection pool
    (`pooled_transport`); `transport` replaces it (tests: httpx.ASGITransport).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: http.RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.base_url = base_url
        self._retry = retry
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            transport=transport or pooled_transport(),
        )

    def __repr__(self) -> str:
        return f"ControlPlaneClient({self.base_url!r})"  # never the token

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- collections ---------------------------------------------------------------------------

    async def ensure_collection(
        self, namespace: str, name: str, spec: VectorCollectionSpec, collection_name: str
    ) -> CollectionInfo:
        """Create or update the embedded collection of VectorCollection `namespace/name`.

        Raises CollectionConfigMismatch (nothing changed) when its dimensions or
        distance differ from the existing collection's.
        """
        body = EnsureCollectionRequest(collection_name=collection_name, spec=spec)
        response = await self._send(
            "PUT",
            _collection_path(namespace, name),
            json=body.model_dump(mode="json", by_alias=True, exclude_none=True),
        )
        return CollectionInfo.model_validate_json(response.content)

    async def collection_info(
        self, namespace: str, name: str, collection_name: str | None = None
    ) -> CollectionInfo | None:
        """The collection and its stats, or None if there is none.

        `collection_name` is one of the namespace's collections; it defaults, on the server,
        to the one of the VectorCollection's last ensure (else its name).
        """
        try:
            response = await self._send(
                "GET", _collection_path(namespace, name), params=_query(collection_name)
            )
        except errors.CollectionNotFound:
            return None
        return CollectionInfo.model_validate_json(response.content)

    async def drop_collection(
        self, namespace: str, name: str, collection_name: str | None = None
    ) -> bool:
        """Delete the collection and its points; False if there was none (idempotent)."""
        response = await self._send(
            "DELETE", _collection_path(namespace, name), params=_query(collection_name)
        )
        return DropResult.model_validate_json(response.content).dropped


def _collection_path(namespace: str, name: str) -> str:
    return f"/v1/namespaces/{quote(namespace, safe='')}/collections/{quote(name, safe='')}"


def _query(collection_name: str | None) -> dict[str, str]:
    return {} if collection_name is None else {"collectionName": collection_name}
