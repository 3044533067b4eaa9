"""The Qdrant core, three ways: embedded (qdrant-edge), qdrant-client local mode, a real server.

qdrant-edge runs in-process on a shard directory; one owner per directory (it
holds an exclusive WAL lock), so each test gets its own. No Qdrant server binary
can be installed here, so qdrant-client's local mode stands in for the server
API in CI, and the same tests also run against a real server when QDRANT_URL is
set (see `backends()`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qdrant_client import QdrantClient


@dataclass(frozen=True)
class QdrantBackend:
    """A Qdrant API reachable through qdrant-client; `kind` is "local" or "server"."""

    kind: str
    client: QdrantClient
    name: str = "qdrant"

    def log_tail(self) -> str:
        return f"--- qdrant ({self.kind}) has no log of its own ---"


def backends() -> list[str]:
    """The backends to run the Qdrant API tests on: always local, plus the server if configured."""
    return ["local", "server"] if os.environ.get("QDRANT_URL") else ["local"]


def connect(kind: str, workdir: Path) -> QdrantBackend:
    if kind == "server":
        url = os.environ["QDRANT_URL"]
        return QdrantBackend(kind, QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY")))
    return QdrantBackend(kind, QdrantClient(path=str(workdir / "qdrant-local")))
