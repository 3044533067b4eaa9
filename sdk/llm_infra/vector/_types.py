"""The values the vector API takes and returns, the same for every backend."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from llm_infra import errors

PointId = int | str | uuid.UUID
"""Unsigned ints and UUIDs are Qdrant ids as they are; other strings map to UUIDs (see `_ids`)."""

Distance = Literal["Cosine", "Dot", "Euclid", "Manhattan"]
PayloadType = Literal["keyword", "integer", "float", "bool", "geo", "datetime", "uuid", "text"]


@dataclass(frozen=True, slots=True)
class Point:
    """A vector to store, with its id and payload."""

    id: PointId
    vector: Sequence[float] | npt.NDArray[np.floating]
    payload: Mapping[str, Any] | None = None


class Hit(NamedTuple):
    """A search result: the id as it was inserted, its score, and what was asked for.

    A NamedTuple, not a dataclass: searches build thousands of these per
    second, and a tuple is built several times faster than a frozen dataclass.
    """

    id: PointId
    score: float
    payload: dict[str, Any] | None = None
    vector: list[float] | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """A stored point, as `get` returns it."""

    id: PointId
    payload: dict[str, Any]
    vector: list[float] | None = None


@dataclass(frozen=True, slots=True)
class InsertResult:
    """What `insert_batch` did: good points are stored even when others in the batch are not."""

    inserted: int
    failed: dict[PointId, errors.InfraError] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True, slots=True)
class CollectionStats:
    """Size and shape of a collection."""

    points: int
    indexed_vectors: int
    dimensions: int
    distance: Distance
    segments: int | None = None
    disk_bytes: int | None = None
