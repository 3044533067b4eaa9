"""Status conditions in the Kubernetes shape, and the one helper that sets them.

`set_condition` keeps `lastTransitionTime` unless the status flips, so a
reconcile that finds nothing changed rewrites nothing that clients watch for.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import Field

from llm_infra.api._model import ApiModel, KeyedBy

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One aspect of the object's state (metav1.Condition)."""

    type: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=316)
    """What this condition reports, e.g. Ready."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    """Why, in one CamelCase word that programs can match on."""
    message: str = Field("", max_length=32768)
    """Why, for people."""
    last_transition_time: datetime.datetime
    """When the status last changed."""
    observed_generation: int | None = Field(None, ge=0)
    """The .metadata.generation this condition was computed for."""


Conditions = Annotated[list[Condition], KeyedBy("type"), Field(max_length=32)]


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | None,
    *,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: datetime.datetime | None = None,
) -> list[Condition]:
    """Return `conditions` with `type_` set; `status` None means Unknown.

    The transition time moves only when the status changes, as kubectl wait
    and every Kubernetes controller expect.
    """
    new_status: ConditionStatus = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.type == type_), None)
    changed = previous is None or previous.status != new_status
    when = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
    condition = Condition(
        type=type_,
        status=new_status,
        reason=reason,
        message=message,
        last_transition_time=when if changed or previous is None else previous.last_transition_time,
        observed_generation=observed_generation,
    )
    if previous is None:
        return [*conditions, condition]
    return [condition if c.type == type_ else c for c in conditions]


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
