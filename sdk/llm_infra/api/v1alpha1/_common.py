"""Field types the four kinds share: references to Secrets, durations, names, selectors."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from llm_infra.api._model import ApiModel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Duration = Annotated[
    str,
    Field(
        pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
        max_length=32,
        examples=["30s", "5m", "1h30m"],
    ),
]

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(duration: str) -> float:
    """Seconds in a `Duration`: the same sum CEL's duration() makes, for Python-side rules."""
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(duration))


Name = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]


class SecretKeyRef(ApiModel):
    """A key of a Secret in the object's namespace."""

    name: Name
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key within the Secret."""


class SecretRef(ApiModel):
    """A Secret in the object's namespace."""

    name: Name
    """Name of the Secret."""


class LabelSelector(ApiModel):
    """Selects objects by their labels (all must match)."""

    match_labels: dict[str, str] = Field(default_factory=dict, max_length=32)
    """Labels an object must carry, all of them."""
