"""The wire shapes of an error: RFC 9457 problem documents and per-field issues.

Plain pydantic models with no knowledge of the error classes: `_tree` fills a
`Problem` from an error (`InfraError.to_problem`) and rebuilds an error from
one (`from_problem`); the control plane sends it as application/problem+json.
"""

from __future__ import annotations

import pydantic

# A tag URI (RFC 4151) names the problem type without promising a web page
# behind it, which RFC 9457 §3.1.1 allows; the code keeps it stable.
PROBLEM_TYPE_PREFIX = "tag:llmdevops.io,2026:problem:"


def problem_type(code: str) -> str:
    """The stable problem `type` URI of an error code."""
    return f"{PROBLEM_TYPE_PREFIX}{code}"


class FieldIssue(pydantic.BaseModel):
    """One invalid field of a rejected document (a pydantic error, a Kubernetes Status cause)."""

    model_config = pydantic.ConfigDict(frozen=True)

    field: str | None = None
    """Dotted path of the field, e.g. ``spec.dimensions`` or ``items.0.name``."""
    message: str
    reason: str | None = None
    """Machine-readable kind: pydantic's error type or Kubernetes' cause reason."""


class Problem(pydantic.BaseModel):
    """An RFC 9457 problem document; extension members are kept as extra fields.

    ``problem.model_dump(exclude_none=True, by_alias=True)`` is the JSON body
    to send as ``application/problem+json``.
    """

    model_config = pydantic.ConfigDict(
        extra="allow", frozen=True, validate_by_name=True, validate_by_alias=True
    )

    problem_type: str = pydantic.Field(default="about:blank", alias="type")
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    # Extension members every llm-infra problem carries.
    code: str | None = None
    category: str | None = None
    retryable: bool | None = None
    retry_after: float | None = None
