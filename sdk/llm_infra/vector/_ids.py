"""Point ids: what Qdrant accepts as is, and a stable UUID for every other string.

Qdrant takes unsigned integers and UUIDs. Any other string (a document path,
a slug) is mapped to a UUIDv5 in a namespace of ours, so the same string always
lands on the same point, and the original is kept in the payload under
`ORIGINAL_ID_KEY` so results give back what the caller inserted.
"""

from __future__ import annotations

import uuid
from typing import Any

from llm_infra import errors
from llm_infra.vector._types import PointId

ORIGINAL_ID_KEY = "_llm_infra_id"
_NAMESPACE = uuid.UUID("6f1f5b1e-6a53-4c1b-9d0f-2b1e7c4a9e10")


def to_qdrant(point_id: PointId) -> tuple[int | str, str | None]:
    """(id Qdrant stores, original string to keep in the payload or None)."""
    if isinstance(point_id, bool):
        raise errors.ValidationError(
            "a point id cannot be a bool", field="id", actual=str(point_id)
        )
    if isinstance(point_id, int):
        if point_id < 0:
            raise errors.ValidationError(
                "integer point ids must be >= 0", field="id", actual=str(point_id)
            )
        return point_id, None
    if isinstance(point_id, uuid.UUID):
        return str(point_id), None
    if isinstance(point_id, str):
        if not point_id:
            raise errors.ValidationError("a point id cannot be empty", field="id")
        try:
            return str(uuid.UUID(point_id)), None
        except ValueError:
            return str(uuid.uuid5(_NAMESPACE, point_id)), point_id
    raise errors.ValidationError(
        f"point ids are ints, UUIDs or strings, not {type(point_id).__name__}", field="id"
    )


def from_qdrant(stored_id: PointId, payload: dict[str, Any] | None) -> PointId:
    """The id the caller inserted, from what Qdrant returned."""
    if payload and ORIGINAL_ID_KEY in payload:
        return str(payload[ORIGINAL_ID_KEY])
    return stored_id


def public_payload(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """The payload without our bookkeeping key."""
    if payload is None or ORIGINAL_ID_KEY not in payload:
        return payload
    return {k: v for k, v in payload.items() if k != ORIGINAL_ID_KEY}
