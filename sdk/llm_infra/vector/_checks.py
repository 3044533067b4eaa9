"""Vector checks at the edge: right length, finite, not empty; L2 normalization helpers.

Batches are checked with numpy in one pass (a Python loop over 100k x 128
components would cost more than the insert); a single query is checked with a
plain loop, which is faster than building an array for 128 floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from llm_infra import errors

Vector = Sequence[float] | npt.NDArray[np.floating]


def check_query(vector: Vector, dimensions: int) -> list[float]:
    """The query as a list of floats, or a typed error saying what is wrong with it."""
    values = vector.tolist() if isinstance(vector, np.ndarray) else vector
    if len(values) != dimensions:
        raise _wrong_length(len(values), dimensions)
    if not all(map(math.isfinite, values)):
        raise errors.InvalidVector(
            "the query has NaN or infinite components", dimensions=dimensions
        )
    return values if isinstance(values, list) else list(values)


def check_batch(
    vectors: Sequence[Vector], dimensions: int
) -> tuple[list[list[float]], dict[int, errors.InfraError]]:
    """(the vectors as lists, {index: error} of those refused)."""
    failed: dict[int, errors.InfraError] = {}
    rows: list[list[float]] = []
    for index, vector in enumerate(vectors):
        values = vector.tolist() if isinstance(vector, np.ndarray) else vector
        rows.append(values if isinstance(values, list) else list(values))
        if len(values) != dimensions:
            failed[index] = _wrong_length(len(values), dimensions)
    candidates = [i for i in range(len(rows)) if i not in failed]
    if candidates:
        matrix = np.asarray([rows[i] for i in candidates], dtype=np.float64)
        for position in np.flatnonzero(~np.isfinite(matrix).all(axis=1)):
            failed[candidates[int(position)]] = errors.InvalidVector(
                "the vector has NaN or infinite components", dimensions=dimensions
            )
    return rows, failed


def _wrong_length(length: int, dimensions: int) -> errors.InfraError:
    if length == 0:
        return errors.InvalidVector("the vector is empty", dimensions=dimensions)
    return errors.DimensionMismatch(expected=dimensions, actual=length)


def normalize(vector: Vector) -> list[float]:
    """The vector scaled to unit L2 length (Cosine collections store them so)."""
    array = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    if norm == 0.0 or not math.isfinite(norm):
        raise errors.InvalidVector("a zero or non-finite vector has no direction")
    return (array / norm).tolist()  # type: ignore[no-any-return]


def normalize_batch(vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Each row scaled to unit L2 length."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise errors.InvalidVector("zero or non-finite rows have no direction")
    normalized: npt.NDArray[np.float32] = matrix / norms
    return normalized
