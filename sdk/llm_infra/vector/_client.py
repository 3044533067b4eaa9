"""`qdrant_client`: the one way llm-infra opens a qdrant-client, so every caller agrees on it.

The operator (ensuring collections), the control plane (serving them) and
`QdrantStore`/`drop_collection` all open their clients here: a server by `url`
(REST, or gRPC), or qdrant-client's local mode standing in for every server
where none can run (`location`: ":memory:", or a directory). No version probe
at construction: it would call the server from a thread that only warns; the
first real call reports an unreachable or incompatible server as an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llm_infra import errors

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient

MEMORY = ":memory:"


def qdrant_client(
    url: str | None = None,
    *,
    api_key: str | None = None,
    location: str | None = None,
    grpc: bool = False,
) -> AsyncQdrantClient:
    """A client of the server at `url`, or of local mode at `location` (which wins when set)."""
    if url is None and not location:
        # qdrant-client would silently fall back to localhost:6333.
        raise errors.ConfigError("a Qdrant collection needs a url (or a location)", key="url")
    # Imported here: only Qdrant-server collections need the network client.
    from qdrant_client import AsyncQdrantClient

    with errors.translate(errors.from_qdrant):
        if location == MEMORY:
            return AsyncQdrantClient(location=MEMORY)
        if location:
            return AsyncQdrantClient(path=location)
        return AsyncQdrantClient(
            url=url, api_key=api_key, prefer_grpc=grpc, check_compatibility=False
        )


__all__ = ["qdrant_client"]
