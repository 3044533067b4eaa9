"""The compiled route table: a Route's spec checked and turned into plain numbers for the gateway.

The operator (and, in standalone mode, the control plane itself) calls
`validate_route` for the Route's conditions and `compile_route` for the table;
the control plane's gateway loads the table and serves requests by it without
parsing a duration or a reference again.

Where the table lives: the operator writes one ConfigMap per Route, named by
`route_table_configmap_name`, labelled `ROUTE_TABLE_LABEL: "true"` (a label value
stops at 63 characters, a Route name does not) and holding `RouteTable.to_json()`
under `ROUTE_TABLE_KEY`. The control plane watches ConfigMaps with that label, as
it already does for ConfigSource documents: a ConfigMap is what Kubernetes offers
for a small, namespaced, watchable document (1 MiB at most; a table of 16 targets
is a few kilobytes), needs no extra CRD, and carries no secret: credentials appear
in the table as Secret references, never as values.

Fallback semantics, which `validate_route` checks and the table spells out:
the *try-order* of an error class is the concatenation, in spec order, of the
`to` lists of every fallback entry whose `onErrors` holds that class (two
entries naming the same class are merged, not shadowed). A target may appear
at most once in the try-order of an error class; the gateway skips a target
already tried by the same request, so naming the target a request falls back
from is fine (`to: [llama, openai]` serves failures of either).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import pydantic

from llm_infra import errors, jsondoc
from llm_infra.api.v1alpha1._common import SecretKeyRef, duration_seconds
from llm_infra.api.v1alpha1.route import (
    ErrorClass,
    HeaderMatchType,
    Provider,
    RateLimitScope,
    RouteSpec,
    Strategy,
)

ROUTE_TABLE_KEY = "route.json"
ROUTE_TABLE_LABEL = "infra.llmdevops.io/route-table"
ROUTE_TABLE_HASH_ANNOTATION = "infra.llmdevops.io/table-hash"
"""On the table ConfigMap: `RouteTable.version` of the table it holds (sha256 hex)."""
WEIGHTS_COLUMN_MAX = 1024  # RouteStatus.weights' maxLength

_CONFIGMAP_PREFIX = "llmroute-"
_OBJECT_NAME_MAX = 253
_ERROR_CLASSES: tuple[ErrorClass, ...] = get_args(ErrorClass)

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class RouteProblem:
    """One finding of `validate_route`: where (manifest path), what and how to fix it."""

    field: str
    message: str
    severity: Severity = "error"


# -- validation ------------------------------------------------------------------------------


def validate_route(spec: RouteSpec) -> list[RouteProblem]:
    """Every problem of `spec` the schema cannot see, errors and warnings, in field order.

    Errors (`compile_route` refuses the spec): a fallback naming a target the
    route does not have; a target twice in the try-order of one error class (see
    the module docstring); an invalid regular expression in `match`.
    Warnings: a weight-0 target no fallback reaches; with strategy `cost`, a
    target without both prices.
    """
    return [
        *_match_problems(spec),
        *_fallback_problems(spec),
        *_target_problems(spec),
    ]


def _match_problems(spec: RouteSpec) -> list[RouteProblem]:
    problems: list[RouteProblem] = []
    for i, rule in enumerate(spec.match):
        for j, header in enumerate(rule.headers):
            if header.type == "RegularExpression":
                problems.extend(_regex_problem(f"spec.match[{i}].headers[{j}].value", header.value))
        if rule.content is not None and rule.content.regex is not None:
            problems.extend(_regex_problem(f"spec.match[{i}].content.regex", rule.content.regex))
    return problems


def _regex_problem(field: str, pattern: str) -> list[RouteProblem]:
    try:
        re.compile(pattern)
    except re.error as exc:
        return [RouteProblem(field, f"not a valid regular expression ({exc}): fix the pattern")]
    return []


def _fallback_problems(spec: RouteSpec) -> list[RouteProblem]:
    names = [t.name for t in spec.targets]
    problems: list[RouteProblem] = []
    # error class -> target -> where it first appeared in that class's try-order
    seen: dict[str, dict[str, str]] = {cls: {} for cls in _ERROR_CLASSES}
    for i, fallback in enumerate(spec.fallbacks):
        for j, target in enumerate(fallback.to):
            field = f"spec.fallbacks[{i}].to[{j}]"
            if target not in names:
                problems.append(
                    RouteProblem(
                        field,
                        f"names target {target!r}, which the route does not have: "
                        f"use one of {', '.join(names)}",
                    )
                )
                continue
            for cls in fallback.on_errors:
                first = seen[cls].setdefault(target, field)
                if first != field:
                    problems.append(
                        RouteProblem(
                            field,
                            f"target {target!r} is already in the fallback order of {cls} "
                            f"at {first}: a target may appear at most once per error class; "
                            "remove one of them",
                        )
                    )
    return problems


def _target_problems(spec: RouteSpec) -> list[RouteProblem]:
    reached = {name for fallback in spec.fallbacks for name in fallback.to}
    problems: list[RouteProblem] = []
    for i, target in enumerate(spec.targets):
        if target.weight == 0 and target.name not in reached:
            problems.append(
                RouteProblem(
                    f"spec.targets[{i}].weight",
                    f"target {target.name!r} has weight 0 and no fallback names it, so no "
                    "request reaches it: give it a weight or list it in a fallback's `to`",
                    "warning",
                )
            )
        unpriced = (
            target.input_cost_per_million_tokens is None
            or target.output_cost_per_million_tokens is None
        )
        if spec.strategy == "cost" and unpriced:
            problems.append(
                RouteProblem(
                    f"spec.targets[{i}]",
                    f"strategy cost cannot rank target {target.name!r}, which has no price: set "
                    "inputCostPerMillionTokens and outputCostPerMillionTokens",
                    "warning",
                )
            )
    return problems


# -- credentials and weights -----------------------------------------------------------------


def credential_refs(spec: RouteSpec) -> list[tuple[str, SecretKeyRef]]:
    """(target name, Secret key reference) of every target with credentials, in spec order.

    For checking that the Secrets exist; nothing here reads a value.
    """
    return [(t.name, t.credentials_secret_ref) for t in spec.targets if t.credentials_secret_ref]


def effective_weights(spec: RouteSpec, *, unavailable: Collection[str] = ()) -> dict[str, int]:
    """Each target's share of requests in percent, in spec order.

    Targets with weight > 0 that are not `unavailable` (e.g. their credentials
    are missing) share 100 in proportion to their weights, rounded by largest
    remainder (ties go to the earlier target); the others get 0. All are 0 when
    no target is left.
    """
    weights = {t.name: (0 if t.name in unavailable else t.weight) for t in spec.targets}
    total = sum(weights.values())
    if total == 0:
        return dict.fromkeys(weights, 0)
    shares = {name: divmod(weight * 100, total) for name, weight in weights.items()}
    result = {name: whole for name, (whole, _) in shares.items()}
    left = 100 - sum(result.values())
    # sorted() is stable: equal remainders keep spec order.
    by_remainder = sorted(shares, key=lambda name: shares[name][1], reverse=True)
    for name in by_remainder[:left]:
        result[name] += 1
    return result


def weights_column(weights: Mapping[str, int]) -> str:
    """`openai=70,llama=30` for RouteStatus.weights; whole pairs then `...` past 1024 chars."""
    pairs = [f"{name}={weight}" for name, weight in weights.items()]
    column = ",".join(pairs)
    if len(column) <= WEIGHTS_COLUMN_MAX:
        return column
    kept: list[str] = []
    for pair in pairs:
        if len(",".join([*kept, pair, "..."])) > WEIGHTS_COLUMN_MAX:
            break
        kept.append(pair)
    return ",".join([*kept, "..."])


def route_table_configmap_name(route_name: str) -> str:
    """Name of the ConfigMap holding the Route's table: `llmroute-<name>`, at most 253 chars.

    A name too long for the prefix is cut and suffixed with a hash of the whole
    name, so two long Route names still get different ConfigMaps.
    """
    name = f"{_CONFIGMAP_PREFIX}{route_name}"
    if len(name) <= _OBJECT_NAME_MAX:
        return name
    digest = hashlib.sha256(route_name.encode()).hexdigest()[:10]
    head = name[: _OBJECT_NAME_MAX - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}"


# -- the table -------------------------------------------------------------------------------


class _TableModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class CredentialRef(_TableModel):
    """Where the gateway finds a target's API key: a key of a Secret in the Route's namespace."""

    secret: str
    key: str


class HeaderRule(_TableModel):
    name: str
    value: str
    type: HeaderMatchType


class ContentRule(_TableModel):
    contains: str | None = None
    regex: str | None = None


class MatchRule(_TableModel):
    """All criteria must hold; empty `models` or `headers` match anything."""

    models: tuple[str, ...] = ()
    headers: tuple[HeaderRule, ...] = ()
    content: ContentRule | None = None
    priority: int = 0


class TableTarget(_TableModel):
    """A target as the gateway calls it; prices stay decimal strings (money is not a float)."""

    name: str
    provider: Provider
    endpoint: str | None
    model: str
    api_version: str | None
    weight: int
    effective_weight: int
    available: bool
    credentials: CredentialRef | None
    max_concurrency: int | None
    rpm: int | None
    tpm: int | None
    timeout_seconds: float
    input_cost_per_million_tokens: str | None
    output_cost_per_million_tokens: str | None


class TableRetries(_TableModel):
    attempts: int
    backoff_initial_seconds: float
    backoff_max_seconds: float
    backoff_multiplier: float
    budget: float


class TableRateLimit(_TableModel):
    per: RateLimitScope
    rpm: int | None
    tpm: int | None


class TableBudgets(_TableModel):
    tokens_per_day: int | None
    cost_per_day: str | None
    currency: str


class TableCooldown(_TableModel):
    failures: int
    window_seconds: float
    duration_seconds: float


class TableTimeouts(_TableModel):
    request_seconds: float
    first_token_seconds: float | None


class RouteTable(_TableModel):
    """What the gateway serves a Route by; `version` is the SHA-256 of everything else.

    `fallbacks` maps every error class to its try-order (module docstring),
    unavailable targets left out; an empty list means the error is returned.
    """

    version: str
    namespace: str
    name: str
    generation: int
    strategy: Strategy
    match: tuple[MatchRule, ...]
    targets: tuple[TableTarget, ...]
    fallbacks: dict[ErrorClass, tuple[str, ...]]
    retries: TableRetries
    rate_limits: tuple[TableRateLimit, ...]
    budgets: TableBudgets | None
    cooldown: TableCooldown
    timeouts: TableTimeouts

    def to_json(self) -> str:
        """RFC 8785 canonical JSON: sorted keys, no whitespace, byte-identical for equal tables."""
        return jsondoc.canonical(self.model_dump(mode="json")).decode()


def compile_route(
    namespace: str,
    name: str,
    spec: RouteSpec,
    *,
    generation: int,
    unavailable: Collection[str] = (),
) -> RouteTable:
    """The table of the Route `namespace/name` at `generation`.

    `unavailable` names targets that cannot be called now (missing credentials):
    they stay in the table with `available` false, weight 0 and out of every
    fallback order. Raises `errors.ValidationError` listing every error of
    `validate_route` (warnings do not block).
    """
    problems = [p for p in validate_route(spec) if p.severity == "error"]
    if problems:
        raise errors.ValidationError(
            f"route {namespace}/{name} cannot be compiled: {problems[0].message}",
            field=problems[0].field,
            errors=[errors.FieldIssue(field=p.field, message=p.message) for p in problems],
        )
    weights = effective_weights(spec, unavailable=unavailable)
    request_timeout = duration_seconds(spec.timeouts.request)
    body: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "generation": generation,
        "strategy": spec.strategy,
        "match": [rule.model_dump() for rule in spec.match],
        "targets": [
            {
                **t.model_dump(exclude={"timeout", "credentials_secret_ref"}),
                "effective_weight": weights[t.name],
                "available": t.name not in unavailable,
                "credentials": (
                    {"secret": ref.name, "key": ref.key}
                    if (ref := t.credentials_secret_ref)
                    else None
                ),
                "timeout_seconds": duration_seconds(t.timeout) if t.timeout else request_timeout,
            }
            for t in spec.targets
        ],
        "fallbacks": {
            cls: [
                target
                for fallback in spec.fallbacks
                if cls in fallback.on_errors
                for target in fallback.to
                if target not in unavailable
            ]
            for cls in _ERROR_CLASSES
        },
        "retries": {
            "attempts": spec.retries.attempts,
            "backoff_initial_seconds": duration_seconds(spec.retries.backoff.initial),
            "backoff_max_seconds": duration_seconds(spec.retries.backoff.max),
            "backoff_multiplier": spec.retries.backoff.multiplier,
            "budget": spec.retries.budget,
        },
        "rate_limits": [limit.model_dump() for limit in spec.rate_limits],
        "budgets": spec.budgets.model_dump() if spec.budgets else None,
        "cooldown": {
            "failures": spec.cooldown.failures,
            "window_seconds": duration_seconds(spec.cooldown.window),
            "duration_seconds": duration_seconds(spec.cooldown.duration),
        },
        "timeouts": {
            "request_seconds": request_timeout,
            "first_token_seconds": (
                duration_seconds(spec.timeouts.first_token) if spec.timeouts.first_token else None
            ),
        },
    }
    # Validate first, hash after: the hash covers the table's own JSON form, defaults included.
    unversioned = RouteTable.model_validate({**body, "version": ""})
    content = unversioned.model_dump(mode="json", exclude={"version"})
    return unversioned.model_copy(update={"version": jsondoc.canonical_sha256(content)})
