"""Decide what `ensure_collection` must do: the pure half of reconciling a collection with its spec.

`plan(desired, observed)` compares two CollectionConfigs and says: create,
refuse (an immutable field differs: nothing may be touched), or which mutable
settings to change in place. Each backend applies a plan in its own terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_infra.vector._config import IMMUTABLE, CollectionConfig
from llm_infra.vector._types import PayloadType

_INDEX_SETTINGS = ("hnsw_m", "hnsw_ef_construct", "full_scan_threshold")
_QUANTIZATION_SETTINGS = (
    "quantization",
    "scalar_quantile",
    "product_compression",
    "quantized_in_ram",
)


@dataclass(frozen=True)
class Mismatch:
    field: str
    expected: str
    actual: str


@dataclass(frozen=True)
class CollectionPlan:
    """What to do; an empty plan (`noop`) means the collection already matches its spec."""

    create: bool = False
    mismatch: Mismatch | None = None
    create_indexes: dict[str, PayloadType] = field(default_factory=dict)
    drop_indexes: tuple[str, ...] = ()
    index_settings: bool = False
    quantization: bool = False
    add_aliases: tuple[str, ...] = ()
    remove_aliases: tuple[str, ...] = ()

    @property
    def noop(self) -> bool:
        return self == CollectionPlan()


def plan(desired: CollectionConfig, observed: CollectionConfig | None) -> CollectionPlan:
    if observed is None:
        return CollectionPlan(
            create=True,
            create_indexes=dict(desired.payload_indexes),
            add_aliases=desired.aliases,
        )
    for name in IMMUTABLE:
        wanted, actual = getattr(desired, name), getattr(observed, name)
        if wanted != actual:
            return CollectionPlan(mismatch=Mismatch(name, str(wanted), str(actual)))
    wanted_indexes, stored_indexes = desired.payload_indexes, observed.payload_indexes
    # An index whose type changed is dropped and created again.
    retyped = {
        f
        for f in wanted_indexes.keys() & stored_indexes.keys()
        if wanted_indexes[f] != stored_indexes[f]
    }
    return CollectionPlan(
        create_indexes={
            f: t for f, t in wanted_indexes.items() if f not in stored_indexes or f in retyped
        },
        drop_indexes=tuple(sorted((stored_indexes.keys() - wanted_indexes.keys()) | retyped)),
        index_settings=any(getattr(desired, s) != getattr(observed, s) for s in _INDEX_SETTINGS),
        quantization=any(
            getattr(desired, s) != getattr(observed, s) for s in _QUANTIZATION_SETTINGS
        ),
        add_aliases=tuple(a for a in desired.aliases if a not in observed.aliases),
        remove_aliases=tuple(a for a in observed.aliases if a not in desired.aliases),
    )
