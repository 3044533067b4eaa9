"""Conditions the reconcilers set, the Ready summary, and the events their transitions post.

Every kind reports a few specific conditions (BackendReachable, SpecApplied,
Validated, ResolvedRefs...) and a Ready that summarises them: True when all
are True, else False with the reason and message of the first that is not.
A transition (status or reason change) of any condition becomes one
Kubernetes Event: Normal when it turned True, Warning otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_infra.api.conditions import Condition, get_condition, set_condition

READY = "Ready"


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


class StatusConditions:
    """Builds one reconcile's conditions on top of the previous ones."""

    def __init__(self, previous: list[Condition], generation: int | None) -> None:
        self._conditions = list(previous)
        self._previous = list(previous)
        self._generation = generation
        self._order: list[str] = []

    def set(self, type_: str, status: bool | None, reason: str, message: str = "") -> None:
        """Set one condition; the order of calls is the order Ready looks for a culprit in."""
        if type_ not in self._order:
            self._order.append(type_)
        self._conditions = set_condition(
            self._conditions,
            type_,
            status,
            reason=reason,
            message=message,
            observed_generation=self._generation,
        )

    def ready(self, reason: str, message: str = "") -> bool:
        """Set Ready from the conditions set so far; `reason`/`message` apply when all hold."""
        for type_ in self._order:
            condition = get_condition(self._conditions, type_)
            if condition is not None and condition.status != "True":
                self._set_ready(False, condition.reason, condition.message)
                return False
        self._set_ready(True, reason, message)
        return True

    def _set_ready(self, status: bool, reason: str, message: str) -> None:
        self._conditions = set_condition(
            self._conditions,
            READY,
            status,
            reason=reason,
            message=message,
            observed_generation=self._generation,
        )

    @property
    def conditions(self) -> list[Condition]:
        """Ready first (kubectl and humans read it first), then the rest in setting order."""
        rank = {READY: -1} | {t: i for i, t in enumerate(self._order)}
        return sorted(self._conditions, key=lambda c: rank.get(c.type, len(rank)))

    def transitions(self) -> list[Event]:
        return transitions(self._previous, self.conditions)


def transitions(before: list[Condition], after: list[Condition]) -> list[Event]:
    """One event per condition whose status or reason changed."""
    events = []
    for condition in after:
        old = get_condition(before, condition.type)
        if old is not None and (old.status, old.reason) == (condition.status, condition.reason):
            continue
        type_ = "Normal" if condition.status == "True" else "Warning"
        text = f"{condition.type}={condition.status}"
        if condition.message:
            text = f"{text}: {condition.message}"
        events.append(Event(type_, condition.reason, text))
    return events


__all__ = ["READY", "Event", "StatusConditions", "transitions"]
