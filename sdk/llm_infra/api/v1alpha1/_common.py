"""Field types the four kinds share: references to objects, durations, names, labels, selectors."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from llm_infra.api._model import ApiModel
from llm_infra.api._resource import DNS_LABEL, DNS_SUBDOMAIN

LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

# Whitespace spelled out in every pattern: `\s` is ASCII to the API server (Go's regexp) and
# Unicode to pydantic (Rust's regex), so "http://a\u00a0b" matched one and not the other.
# These are Unicode's White_Space characters, the Unicode ones written as themselves (Go,
# Rust and Python share no escape for them).
SPACE = r"\t\n\v\f\r " + "\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
HTTP_URL = rf"^https?://[^{SPACE}/]+(/.*)?$"
"""An http(s) URL with a host (and no whitespace in it)."""

# A duration as Go and CEL write it, with each unit at most once and in order (h, m, s, ms),
# and digits bounded: the largest one ("999999.9h999999.9m999999999.9s999999999999.9ms")
# is under 180 years, so CEL's duration() can never overflow (Go durations end near 292
# years) and a too-large value is refused by this pattern, naming its field, instead of
# failing inside a rule that converts it.
DURATION_PATTERN = (
    r"^([0-9]{1,6}(\.[0-9]{1,9})?h)?([0-9]{1,6}(\.[0-9]{1,9})?m)?"
    r"([0-9]{1,9}(\.[0-9]{1,9})?s)?([0-9]{1,12}(\.[0-9]{1,9})?ms)?$"
)
MAX_DURATION_SECONDS = 200 * 365 * 86400
"""Longer than any duration the pattern admits, shorter than Go's (and CEL's) limit."""

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(duration: str) -> float:
    """Seconds in a `Duration`: the same sum CEL's duration() makes, for Python-side rules."""
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(duration))


def _bounded(duration: str) -> str:
    # The pattern already bounds every duration; this keeps the bound if the pattern ever
    # loosens, so no Python-side rule judges a value CEL could not convert.
    if duration_seconds(duration) > MAX_DURATION_SECONDS:
        raise ValueError(f"a duration must be under {MAX_DURATION_SECONDS // 86400 // 365} years")
    return duration


Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        min_length=1,
        max_length=32,
        examples=["30s", "5m", "1h30m"],
    ),
    AfterValidator(_bounded),
]


def cel_duration_ok(expression: str) -> str:
    """CEL that is true when `expression` is a `Duration`, to guard a duration() call.

    The API server runs a rule even when a field of the object failed its pattern; without
    this guard a malformed duration is reported as a conversion error of the rule.
    """
    # A raw CEL string: the pattern's backslashes are no CEL escapes.
    return f"{expression}.matches(r'{DURATION_PATTERN}')"


def cel_duration_at_most(shorter: str, longer: str) -> str:
    """CEL for `duration(shorter) <= duration(longer)`, true while either is unset or malformed.

    `shorter` and `longer` are field names of `self`.
    """
    a, b = f"self.{shorter}", f"self.{longer}"
    return (
        f"!has({a}) || !has({b}) || !{cel_duration_ok(a)} || !{cel_duration_ok(b)}"
        f" || duration({a}) <= duration({b})"
    )


Name = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]
"""A name inside a resource (a sink, a target, a layer): a DNS label."""

ObjectName = Annotated[str, Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)]
"""The name of a Kubernetes object (a Secret, a ConfigMap): a DNS subdomain, as the API server
requires, so `openai.api-key` is one."""

LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)

LabelKey = Annotated[
    str,
    Field(
        pattern=LABEL_KEY,
        max_length=317,
        description="keys must be label keys: an optional DNS-subdomain prefix and /, then a"
        " name of at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends",
    ),
]
"""A label (or annotation) key: `[prefix/]name`."""

LabelValue = Annotated[str, Field(pattern=LABEL_VALUE, max_length=63)]
"""A label value: empty, or at most 63 alphanumerics, `-`, `_` and `.`, alphanumeric at both
ends."""


class SecretKeyRef(ApiModel):
    """A key of a Secret in the object's namespace."""

    name: ObjectName
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key within the Secret."""


class SecretRef(ApiModel):
    """A Secret in the object's namespace."""

    name: ObjectName
    """Name of the Secret."""


class LabelSelector(ApiModel):
    """Selects objects by their labels (all must match)."""

    match_labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """Labels an object must carry, all of them."""
