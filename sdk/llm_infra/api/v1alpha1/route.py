"""Route: model routing for LLM requests (short name `llmroute`).

Matches requests by model name, headers or content, and spreads them over
provider targets (OpenAI, Azure OpenAI, Anthropic, vLLM, Ollama, any
OpenAI-compatible server) with a strategy, retries, fallbacks on error
classes, cooldown of failing targets, rate limits and daily budgets: the
ground covered by Gateway API HTTPRoute, Envoy AI Gateway AIGatewayRoute and
the LiteLLM router.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from llm_infra.api._model import ApiModel, KeyedBy, Rule, UniqueItems
from llm_infra.api._resource import CrdInfo, PrinterColumn, Resource, ResourceStatus
from llm_infra.api.v1alpha1._common import (
    HTTP_URL,
    Duration,
    Name,
    SecretKeyRef,
    cel_duration_at_most,
    duration_seconds,
)

Provider = Literal["openai", "azure-openai", "anthropic", "vllm", "ollama", "openai-compatible"]
Strategy = Literal["weighted", "latency", "least-inflight", "cost"]
ErrorClass = Literal["rate_limited", "server_error", "timeout", "context_window", "content_policy"]
HeaderMatchType = Literal["Exact", "RegularExpression"]
RateLimitScope = Literal["route", "key", "tenant"]

# Providers with no well-known public endpoint: the target must say where the server is
# (an Azure OpenAI endpoint is the user's own resource, https://<resource>.openai.azure.com).
SELF_HOSTED: tuple[str, ...] = ("azure-openai", "vllm", "ollama", "openai-compatible")

ModelName = Annotated[str, Field(min_length=1, max_length=256)]
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class HeaderMatch(ApiModel):
    """A request header that must be present with a matching value."""

    name: str = Field(min_length=1, max_length=256, pattern=HEADER_NAME)
    """Header name (case-insensitive), e.g. x-tenant."""
    value: str = Field(max_length=4096)
    """Value to compare with; a RE2 regular expression when type is RegularExpression."""
    type: HeaderMatchType = "Exact"
    """How value is compared: Exact or RegularExpression."""


class ContentMatch(ApiModel):
    """A match on the text of the request's messages: exactly one of contains or regex."""

    rules: ClassVar = (
        Rule(
            cel="has(self.contains) != has(self.regex)",
            message="set exactly one of contains or regex",
            check=lambda c: (c.contains is None) != (c.regex is None),
        ),
    )

    contains: str | None = Field(None, min_length=1, max_length=1024)
    """A substring the messages must contain."""
    regex: str | None = Field(None, min_length=1, max_length=1024)
    """A RE2 regular expression the messages must match."""


class RouteMatch(ApiModel):
    """A rule selecting the requests this route serves; all its criteria must hold."""

    models: Annotated[list[ModelName], Field(max_length=16), UniqueItems()] = Field(
        default_factory=list
    )
    """Model names the client asks for (the request's `model`); any model when empty."""
    headers: Annotated[list[HeaderMatch], Field(max_length=16)] = Field(default_factory=list)
    """Headers the request must carry, all of them."""
    content: ContentMatch | None = None
    """A match on the request's message text."""
    priority: int = Field(0, ge=0, le=1000)
    """Order among matching rules of all routes: the highest priority wins."""


class Target(ApiModel):
    """A provider model that requests can be sent to."""

    rules: ClassVar = (
        Rule(
            cel=f"!(self.provider in {list(SELF_HOSTED)}) || has(self.endpoint)",
            message="providers azure-openai, vllm, ollama and openai-compatible require an"
            " endpoint (theirs has no public default): set endpoint",
            field=".endpoint",
            check=lambda t: t.provider not in SELF_HOSTED or t.endpoint is not None,
        ),
    )

    name: Name
    """Name of the target, unique in the route; fallbacks and status refer to it."""
    provider: Provider
    """API flavour of the provider."""
    endpoint: str | None = Field(None, pattern=HTTP_URL, max_length=2048)
    """Base URL of the provider's API, e.g. http://vllm.models.svc:8000/v1 or
    https://<resource>.openai.azure.com; the provider's public endpoint when unset. Required for
    azure-openai, vllm, ollama and openai-compatible."""
    model: ModelName
    """Model name sent to the provider (for azure-openai, the deployment name)."""
    api_version: str | None = Field(None, min_length=1, max_length=64)
    """API version sent to the provider, e.g. 2024-10-21 (azure-openai)."""
    weight: int = Field(1, ge=0, le=1000)
    """Share of requests with the weighted strategy; 0 keeps the target for fallbacks only."""
    credentials_secret_ref: SecretKeyRef | None = None
    """Secret key holding the provider's API key; none sent when unset."""
    max_concurrency: int | None = Field(None, ge=1)
    """Requests in flight to this target at most."""
    rpm: int | None = Field(None, ge=1)
    """Requests per minute the target accepts (its provider quota)."""
    tpm: int | None = Field(None, ge=1)
    """Tokens per minute the target accepts (its provider quota)."""
    timeout: Duration | None = None
    """Timeout of one request to this target; timeouts.request when unset."""
    input_cost_per_million_tokens: str | None = Field(
        None, pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=32
    )
    """Price of one million input tokens, for the cost strategy and budgets."""
    output_cost_per_million_tokens: str | None = Field(
        None, pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=32
    )
    """Price of one million output tokens, for the cost strategy and budgets."""


class Fallback(ApiModel):
    """Where a request goes next when a target fails with one of the given error classes."""

    # Not `on`: YAML 1.1 loaders (PyYAML, kubectl's) read an unquoted `on:` key as `true`.
    on_errors: Annotated[
        list[ErrorClass],
        Field(min_length=1, max_length=5),
        UniqueItems(),
    ]
    """Error classes that trigger this fallback."""
    to: Annotated[list[Name], Field(min_length=1, max_length=16)]
    """Targets to try, in order, by name."""


class Backoff(ApiModel):
    """Exponential backoff between retries."""

    rules: ClassVar = (
        Rule(
            cel=cel_duration_at_most("initial", "max"),
            message="initial must not be longer than max: lower initial or raise max",
            field=".initial",
            check=lambda b: duration_seconds(b.initial) <= duration_seconds(b.max),
        ),
    )

    initial: Duration = "250ms"
    """Wait before the first retry; at most max."""
    max: Duration = "10s"
    """Longest wait between retries."""
    multiplier: float = Field(2.0, ge=1.0, le=10.0)
    """Factor applied to the wait after each retry."""


class Retries(ApiModel):
    """Retries of a failed request on the same target choice."""

    attempts: int = Field(2, ge=0, le=10)
    """Retries after the first attempt; 0 disables retries."""
    backoff: Backoff = Field(default_factory=Backoff)
    """Wait between retries."""
    budget: float = Field(0.2, ge=0.0, le=1.0)
    """Fraction of requests that may be retries, so retries cannot multiply an outage."""


class RateLimit(ApiModel):
    """A limit on requests or tokens per minute: at least one of rpm or tpm."""

    rules: ClassVar = (
        Rule(
            cel="has(self.rpm) || has(self.tpm)",
            message="set at least one of rpm or tpm",
            check=lambda r: r.rpm is not None or r.tpm is not None,
        ),
    )

    rpm: int | None = Field(None, ge=1)
    """Requests per minute."""
    tpm: int | None = Field(None, ge=1)
    """Tokens (input and output) per minute."""
    per: RateLimitScope = "route"
    """What the limit counts: the whole route, each API key, or each tenant."""


class Budgets(ApiModel):
    """Daily spending limits of the route; requests are refused once one is spent."""

    tokens_per_day: int | None = Field(None, ge=1)
    """Tokens (input and output) per day."""
    cost_per_day: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=32)
    """Cost per day, a decimal in currency, e.g. "250.00"."""
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", max_length=3)
    """ISO 4217 currency of costPerDay."""


class Cooldown(ApiModel):
    """Taking a failing target out of rotation for a while."""

    failures: int = Field(3, ge=1, le=100)
    """Failures within window that put the target in cooldown."""
    window: Duration = "60s"
    """Period over which failures are counted."""
    duration: Duration = "30s"
    """How long the target stays out of rotation."""


class Timeouts(ApiModel):
    """Timeouts of a request through the route."""

    rules: ClassVar = (
        Rule(
            cel=cel_duration_at_most("firstToken", "request"),
            message="firstToken must not be longer than request (the whole request's timeout):"
            " lower firstToken or raise request",
            field=".firstToken",
            check=lambda t: (
                t.first_token is None
                or duration_seconds(t.first_token) <= duration_seconds(t.request)
            ),
        ),
    )

    request: Duration = "60s"
    """Whole request, retries and fallbacks included."""
    first_token: Duration | None = None
    """Time to the first streamed token; a slower target counts as a timeout. At most request."""


class RouteSpec(ApiModel):
    """Desired state of a route."""

    rules: ClassVar = (
        Rule(
            cel="!has(self.fallbacks)"
            " || self.fallbacks.all(f, f.to.all(n, self.targets.exists(t, t.name == n)))",
            message="every name in fallbacks[].to must be the name of a target",
            field=".fallbacks",
            check=lambda s: all(
                n in {t.name for t in s.targets} for f in s.fallbacks for n in f.to
            ),
        ),
        Rule(
            cel="self.strategy != 'weighted' || self.targets.exists(t, t.weight > 0)",
            message="with strategy weighted, at least one target needs a weight above 0",
            field=".targets",
            check=lambda s: s.strategy != "weighted" or any(t.weight > 0 for t in s.targets),
        ),
    )

    match: Annotated[list[RouteMatch], Field(max_length=16)] = Field(default_factory=list)
    """Requests this route serves, any rule matching; all requests when empty."""
    targets: Annotated[list[Target], KeyedBy("name"), Field(min_length=1, max_length=16)]
    """Provider models that serve the requests."""
    strategy: Strategy = "weighted"
    """How a target is chosen: by weight, lowest latency, fewest requests in flight, or lowest
    cost."""
    fallbacks: Annotated[list[Fallback], Field(max_length=16)] = Field(default_factory=list)
    """Where failed requests go next, first matching entry first."""
    retries: Retries = Field(default_factory=Retries)
    """Retries of failed requests."""
    rate_limits: Annotated[list[RateLimit], Field(max_length=8)] = Field(default_factory=list)
    """Limits on the route's traffic, all enforced."""
    budgets: Budgets | None = None
    """Daily spending limits; none when unset."""
    cooldown: Cooldown = Field(default_factory=Cooldown)
    """Cooldown of failing targets."""
    timeouts: Timeouts = Field(default_factory=Timeouts)
    """Timeouts of requests."""


class TargetStatus(ApiModel):
    """Observed state of one target."""

    name: Name
    """Name of the target."""
    effective_weight: int = Field(0, ge=0)
    """Weight in use now (0 while in cooldown or unhealthy)."""
    healthy: bool = False
    """Whether the target answers."""
    cooldown_until: str | None = Field(None, json_schema_extra={"format": "date-time"})
    """End of the target's cooldown (RFC 3339), while in cooldown."""
    latency_ms_p50: float | None = Field(None, ge=0)
    """Median latency of recent requests, in milliseconds."""


class RouteStatus(ResourceStatus):
    """Observed state of a route."""

    targets: Annotated[list[TargetStatus], KeyedBy("name"), Field(max_length=16)] = Field(
        default_factory=list
    )
    """State of each target."""
    table_version: int = Field(0, ge=0)
    """Version of the routing table the gateways were last given (bumped on each change)."""
    table_hash: str | None = Field(None, pattern=r"^[a-f0-9]{64}$")
    """SHA-256 (hex) of that routing table."""
    table_config_map: str | None = Field(None, max_length=253)
    """ConfigMap (same namespace) holding the compiled table the control plane serves."""
    weights: str | None = Field(None, max_length=1024)
    """Effective weights as name=weight pairs (openai=70,llama=30), for kubectl get."""


class Route(Resource):
    """A route for LLM requests over provider targets, reconciled by the llm-infra operator."""

    crd: ClassVar = CrdInfo(
        kind="Route",
        plural="routes",
        short_names=("llmroute",),
        version="v1alpha1",
        description="Routing of LLM requests to provider models, with fallbacks, retries, "
        "rate limits and budgets, managed by llm-infra.",
        columns=(
            PrinterColumn("Strategy", ".spec.strategy", description="How targets are chosen"),
            # A JSONPath column prints only the first match of [*], so the operator
            # writes all targets with their effective weights into one status field.
            PrinterColumn("Targets", ".status.weights", description="Targets and their weights"),
        ),
    )

    spec: RouteSpec
    """Desired state."""
    status: RouteStatus | None = None
    """Observed state, written by the operator."""


__all__ = ["Route", "RouteSpec", "RouteStatus"]
