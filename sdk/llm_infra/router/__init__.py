"""llm_infra.router: routing of LLM requests over a Route's provider targets.

Today it holds the compiled route table, the pure "decide" half that the
operator and the standalone control plane share; the runtime router (target
picking, retries, fallbacks, cooldown) will live here too, beside it::

    from llm_infra import router

    problems = router.validate_route(route.spec)          # for the Route's conditions
    table = router.compile_route("team-a", "chat", route.spec, generation=3)
    configmap_data = {router.ROUTE_TABLE_KEY: table.to_json()}

Modules: `_table` (validation, effective weights, the `RouteTable` model and
where it is stored).
"""

from llm_infra.router._table import (
    ROUTE_TABLE_HASH_ANNOTATION,
    ROUTE_TABLE_KEY,
    ROUTE_TABLE_LABEL,
    WEIGHTS_COLUMN_MAX,
    ContentRule,
    CredentialRef,
    HeaderRule,
    MatchRule,
    RouteProblem,
    RouteTable,
    Severity,
    TableBudgets,
    TableCooldown,
    TableRateLimit,
    TableRetries,
    TableTarget,
    TableTimeouts,
    compile_route,
    credential_refs,
    effective_weights,
    route_table_configmap_name,
    validate_route,
    weights_column,
)

__all__ = [
    "ROUTE_TABLE_HASH_ANNOTATION",
    "ROUTE_TABLE_KEY",
    "ROUTE_TABLE_LABEL",
    "WEIGHTS_COLUMN_MAX",
    "ContentRule",
    "CredentialRef",
    "HeaderRule",
    "MatchRule",
    "RouteProblem",
    "RouteTable",
    "Severity",
    "TableBudgets",
    "TableCooldown",
    "TableRateLimit",
    "TableRetries",
    "TableTarget",
    "TableTimeouts",
    "compile_route",
    "credential_refs",
    "effective_weights",
    "route_table_configmap_name",
    "validate_route",
    "weights_column",
]
