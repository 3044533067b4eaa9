"""Quickstart: vectors, config and audit through the control plane `llm-infra up` runs.

Start it in one terminal (`make up`), then, in another, with the admin key it printed:

    LLM_INFRA_TOKEN=llmi_... .venv/bin/python examples/quickstart.py

It uses the resources of this folder: the VectorCollection `quickstart` (384
dimensions), the ConfigSource `rag-app` and the AuditSink `quickstart`, all in
namespace `default`. The embeddings are stand-ins (a seeded hash of the text):
put your embedding model's vectors in their place.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random

from llm_infra import vector
from llm_infra.client import ControlPlaneClient
from llm_infra.vector import F

URL = os.environ.get("LLM_INFRA_URL", "http://127.0.0.1:8080")
TOKEN = os.environ.get("LLM_INFRA_TOKEN")
NAMESPACE = "default"
DIMENSIONS = 384

DOCS = {
    "install.md": ("Run make up, then open http://127.0.0.1:8080/docs.", "guide"),
    "vectors.md": ("Collections live in the embedded Qdrant core or a Qdrant server.", "guide"),
    "audit.md": ("Audit events are hash-chained, so an edit or a gap is detected.", "security"),
}


def embed(text: str) -> list[float]:
    """A stand-in embedding: deterministic, unit length, and not semantic at all."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())  # noqa: S311 - not for security
    values = [rng.gauss(0.0, 1.0) for _ in range(DIMENSIONS)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


async def main() -> None:
    async with ControlPlaneClient(URL, token=TOKEN) as cp:
        # Vectors: upsert three documents, then search with a payload filter.
        points = [
            vector.Point(doc_id, embed(text), {"source": source, "text": text})
            for doc_id, (text, source) in DOCS.items()
        ]
        stored = await cp.upsert_points(NAMESPACE, "quickstart", points)
        print(f"vectors: stored {stored.upserted} points")
        query = embed(DOCS["audit.md"][0])
        hits = await cp.search(
            NAMESPACE, "quickstart", query, k=2, filter=F.eq("source", "security")
        )
        print(f"vectors: best match {hits[0].id} (score {hits[0].score:.3f})")

        # Config: the merged, validated document of ConfigSource rag-app.
        served = await cp.get_config(NAMESPACE, "rag-app")
        assert served is not None
        print(f"config: rag-app version {served.version}: {served.document}")

        # Audit: record what happened, then check the chain has not been tampered with.
        event = {
            "actor": {"id": "quickstart", "kind": "user"},
            "action": "collections.search",
            "resource": {"kind": "vectorcollections", "namespace": NAMESPACE, "name": "quickstart"},
            "outcome": "success",
        }
        appended = await cp.append_audit_events(NAMESPACE, "quickstart", [event])
        print(f"audit: appended record seq {appended.records[0].seq}")
        verified = await cp.verify_audit(NAMESPACE, "quickstart")
        print(f"audit: chain of {verified.records} records verifies: {verified.ok}")


if __name__ == "__main__":
    asyncio.run(main())
