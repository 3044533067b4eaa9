"""Pure decisions for ensure_stream / ensure_consumer: observed spec + wanted spec -> plan.

No I/O here (the JetStream module observes and applies); unit tests check every rule.
JetStream refuses to change a stream's storage or to lift deny_delete/deny_purge,
and a consumer's ack policy: those are mismatches, reported, never "fixed" by
deleting anything. Everything else (limits, subjects, discard, compression)
changes in place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields

from llm_infra.mq._types import ConsumerSpec, StreamSpec


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A field that differs and cannot change in place."""

    field: str
    expected: str
    actual: str


@dataclass(frozen=True, slots=True)
class StreamPlan:
    action: Action
    spec: StreamSpec
    changes: tuple[str, ...] = ()
    mismatches: tuple[Mismatch, ...] = ()


@dataclass(frozen=True, slots=True)
class ConsumerPlan:
    action: Action
    spec: ConsumerSpec
    changes: tuple[str, ...] = ()
    mismatches: tuple[Mismatch, ...] = ()


@dataclass(frozen=True, slots=True)
class ObservedConsumer:
    """A consumer as found: its spec fields plus what our spec fixes implicitly."""

    spec: ConsumerSpec
    explicit_ack: bool = True
    pull: bool = True


def decide_stream(wanted: StreamSpec, observed: StreamSpec | None) -> StreamPlan:
    if observed is None:
        return StreamPlan(Action.CREATE, wanted)
    mismatches: list[Mismatch] = []
    if wanted.storage != observed.storage:
        mismatches.append(Mismatch("storage", str(wanted.storage), str(observed.storage)))
    mismatches.extend(  # the server refuses to lift these
        Mismatch(flag, "False", "True")
        for flag in ("deny_delete", "deny_purge")
        if getattr(observed, flag) and not getattr(wanted, flag)
    )
    changes = tuple(
        f.name
        for f in fields(StreamSpec)
        if f.name not in {"name", "storage"}
        and _differs(getattr(wanted, f.name), getattr(observed, f.name))
        # Metadata: the keys the spec sets must hold its values; others are not ours to drop.
        and (f.name != "metadata" or _missing_labels(wanted.metadata, observed.metadata))
    )
    if mismatches:
        return StreamPlan(Action.NONE, wanted, changes, tuple(mismatches))
    return StreamPlan(Action.UPDATE if changes else Action.NONE, wanted, changes)


def decide_consumer(wanted: ConsumerSpec, observed: ObservedConsumer | None) -> ConsumerPlan:
    if observed is None:
        return ConsumerPlan(Action.CREATE, wanted)
    mismatches: list[Mismatch] = []
    if not observed.explicit_ack:
        mismatches.append(Mismatch("ack_policy", "explicit", "other"))
    if not observed.pull:
        mismatches.append(Mismatch("deliver", "pull", "push"))
    changes = tuple(
        f.name
        for f in fields(ConsumerSpec)
        if f.name != "durable" and _differs(getattr(wanted, f.name), getattr(observed.spec, f.name))
    )
    if mismatches:
        return ConsumerPlan(Action.NONE, wanted, changes, tuple(mismatches))
    return ConsumerPlan(Action.UPDATE if changes else Action.NONE, wanted, changes)


def _missing_labels(wanted: Mapping[str, str], observed: Mapping[str, str]) -> bool:
    return any(observed.get(key) != value for key, value in wanted.items())


def _differs(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        # The server stores durations in nanoseconds: compare to the microsecond.
        return abs(float(a) - float(b)) > 1e-6  # type: ignore[arg-type]
    if isinstance(a, tuple) or isinstance(b, tuple):
        return sorted(map(str, a)) != sorted(map(str, b))  # type: ignore[call-overload]
    return a != b
