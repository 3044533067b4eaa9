"""llm_infra.router: Route validation rules, weight rounding, and the compiled table's JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_infra import errors, jsondoc, router
from llm_infra.api.v1alpha1._common import SecretKeyRef
from llm_infra.api.v1alpha1.route import Route, RouteSpec

EXAMPLE = Path(__file__).parents[3] / "examples" / "route-chat.yaml"


@pytest.fixture
def chat() -> RouteSpec:
    return Route.model_validate(yaml.safe_load(EXAMPLE.read_text())).spec


def spec(**fields: Any) -> RouteSpec:
    body: dict[str, Any] = {
        "targets": [
            {"name": "a", "provider": "openai", "model": "m", "weight": 1},
            {"name": "b", "provider": "openai", "model": "m", "weight": 1},
            {"name": "c", "provider": "openai", "model": "m", "weight": 1},
        ]
    }
    return RouteSpec.model_validate(body | fields)


def target(name: str, weight: int, **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": "openai", "model": "m", "weight": weight, **fields}


def problems(s: RouteSpec) -> list[tuple[str, str]]:
    return [(p.field, p.severity) for p in router.validate_route(s)]


# -- validation ------------------------------------------------------------------------------


def test_example_is_clean(chat: RouteSpec) -> None:
    assert router.validate_route(chat) == []


def test_dangling_fallback_names_the_field_and_the_targets() -> None:
    # The schema refuses this too; a spec built in code (model_copy) can still carry it.
    base = spec(fallbacks=[{"onErrors": ["timeout"], "to": ["a"]}])
    dangling = base.fallbacks[0].model_copy(update={"to": ["a", "nope"]})
    [problem] = router.validate_route(base.model_copy(update={"fallbacks": [dangling]}))
    assert problem.field == "spec.fallbacks[0].to[1]"
    assert problem.severity == "error"
    assert "'nope'" in problem.message
    assert "a, b, c" in problem.message


def test_target_twice_in_one_entry_is_a_loop() -> None:
    s = spec(fallbacks=[{"onErrors": ["timeout"], "to": ["a", "b", "a"]}])
    [problem] = router.validate_route(s)
    assert (problem.field, problem.severity) == ("spec.fallbacks[0].to[2]", "error")
    assert "timeout" in problem.message
    assert "spec.fallbacks[0].to[0]" in problem.message


def test_same_class_in_two_entries_merges_into_one_try_order() -> None:
    s = spec(
        fallbacks=[
            {"onErrors": ["timeout", "server_error"], "to": ["a", "b"]},
            {"onErrors": ["timeout"], "to": ["c"]},
        ]
    )
    assert router.validate_route(s) == []
    table = router.compile_route("ns", "r", s, generation=1)
    assert table.fallbacks["timeout"] == ("a", "b", "c")
    assert table.fallbacks["server_error"] == ("a", "b")
    assert table.fallbacks["content_policy"] == ()


def test_same_target_in_two_entries_for_one_class_is_a_loop() -> None:
    s = spec(
        fallbacks=[
            {"onErrors": ["timeout"], "to": ["a"]},
            {"onErrors": ["rate_limited"], "to": ["a"]},  # other class: fine
            {"onErrors": ["rate_limited", "timeout"], "to": ["b", "a"]},
        ]
    )
    assert problems(s) == [("spec.fallbacks[2].to[1]", "error")] * 2


def test_invalid_regexes_are_errors_valid_ones_are_not() -> None:
    s = spec(
        match=[
            {"headers": [{"name": "x-a", "value": "(", "type": "RegularExpression"}]},
            {"headers": [{"name": "x-b", "value": "(", "type": "Exact"}]},
            {"content": {"regex": "[a-"}},
            {"content": {"regex": "^hello.*$"}},
        ]
    )
    found = router.validate_route(s)
    assert [(p.field, p.severity) for p in found] == [
        ("spec.match[0].headers[0].value", "error"),
        ("spec.match[2].content.regex", "error"),
    ]
    assert all("fix the pattern" in p.message for p in found)


def test_weight_zero_target_no_fallback_reaches_is_a_warning() -> None:
    s = spec(targets=[target("a", 1), target("spare", 0), target("backup", 0)])
    assert problems(s) == [
        ("spec.targets[1].weight", "warning"),
        ("spec.targets[2].weight", "warning"),
    ]
    reached = RouteSpec.model_validate(
        {
            "targets": [target("a", 1), target("spare", 0)],
            "fallbacks": [{"onErrors": ["timeout"], "to": ["spare"]}],
        }
    )
    assert router.validate_route(reached) == []


def test_cost_strategy_warns_about_targets_without_prices() -> None:
    priced = {"inputCostPerMillionTokens": "0.15", "outputCostPerMillionTokens": "0.60"}
    s = RouteSpec.model_validate(
        {
            "strategy": "cost",
            "targets": [
                target("a", 1, **priced),
                target("b", 1, inputCostPerMillionTokens="1"),
                target("c", 1),
            ],
        }
    )
    assert problems(s) == [("spec.targets[1]", "warning"), ("spec.targets[2]", "warning")]
    weighted = s.model_copy(update={"strategy": "weighted"})
    assert router.validate_route(weighted) == []


def test_compile_refuses_errors_listing_each_and_accepts_warnings() -> None:
    s = spec(
        fallbacks=[{"onErrors": ["timeout"], "to": ["a", "a"]}],
        match=[{"content": {"regex": "("}}],
    )
    with pytest.raises(errors.ValidationError) as caught:
        router.compile_route("ns", "r", s, generation=1)
    assert {issue.field for issue in caught.value.errors} == {
        "spec.match[0].content.regex",
        "spec.fallbacks[0].to[1]",
    }
    warned = spec(targets=[target("a", 1), target("z", 0)])
    assert router.compile_route("ns", "r", warned, generation=1).targets[1].effective_weight == 0


# -- credentials and weights -----------------------------------------------------------------


def test_credential_refs_are_references_only(chat: RouteSpec) -> None:
    assert router.credential_refs(chat) == [
        ("openai", SecretKeyRef(name="openai-api-key", key="api-key"))
    ]


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([70, 30], [70, 30]),
        ([1, 1, 1], [34, 33, 33]),  # equal remainders: the earlier target wins
        ([1, 2], [33, 67]),
        ([1, 1, 1, 1, 1, 1, 1], [15, 15, 14, 14, 14, 14, 14]),
        ([1000, 1, 1], [100, 0, 0]),
        ([5, 0, 5], [50, 0, 50]),
        ([2, 1, 1, 1, 1, 1], [29, 15, 14, 14, 14, 14]),
    ],
)
def test_largest_remainder_sums_to_100(weights: list[int], expected: list[int]) -> None:
    s = RouteSpec.model_validate({"targets": [target(f"t{i}", w) for i, w in enumerate(weights)]})
    result = router.effective_weights(s)
    assert list(result.values()) == expected
    assert sum(result.values()) == 100


def test_unavailable_targets_get_zero_and_the_rest_share_100() -> None:
    s = RouteSpec.model_validate({"targets": [target("a", 70), target("b", 20), target("c", 10)]})
    assert router.effective_weights(s, unavailable={"a"}) == {"a": 0, "b": 67, "c": 33}
    assert router.effective_weights(s, unavailable=["a", "b", "c"]) == {"a": 0, "b": 0, "c": 0}


def test_weights_column() -> None:
    assert router.weights_column({"openai": 70, "llama": 30}) == "openai=70,llama=30"
    assert router.weights_column({}) == ""
    many = {f"{i:02d}-{'x' * 60}": 6 for i in range(16)}
    column = router.weights_column(many)
    assert len(column) <= router.WEIGHTS_COLUMN_MAX
    assert column.endswith(",...")
    assert all(pair.endswith("=6") for pair in column.split(",")[:-1])  # whole pairs only


def test_configmap_name() -> None:
    assert router.route_table_configmap_name("chat") == "llmroute-chat"
    long_a, long_b = "a" * 250 + "x", "a" * 250 + "y"
    name_a = router.route_table_configmap_name(long_a)
    assert len(name_a) <= 253
    assert name_a != router.route_table_configmap_name(long_b)
    assert name_a.startswith("llmroute-aaa")


# -- the table -------------------------------------------------------------------------------


def test_example_table_in_plain_numbers(chat: RouteSpec) -> None:
    table = router.compile_route("team-a", "chat", chat, generation=4)
    assert (table.namespace, table.name, table.generation) == ("team-a", "chat", 4)
    openai, llama = table.targets
    assert (openai.effective_weight, llama.effective_weight) == (70, 30)
    assert (openai.timeout_seconds, llama.timeout_seconds) == (30.0, 45.0)
    assert openai.credentials == router.CredentialRef(secret="openai-api-key", key="api-key")
    assert llama.credentials is None
    assert table.fallbacks["timeout"] == ("llama", "openai")
    assert table.retries == router.TableRetries(
        attempts=2,
        backoff_initial_seconds=0.25,
        backoff_max_seconds=5.0,
        backoff_multiplier=2.0,
        budget=0.2,
    )
    assert table.cooldown == router.TableCooldown(
        failures=5, window_seconds=60.0, duration_seconds=30.0
    )
    assert table.timeouts == router.TableTimeouts(request_seconds=60.0, first_token_seconds=10.0)
    assert [(r.per, r.rpm, r.tpm) for r in table.rate_limits] == [
        ("key", 60, 100000),
        ("route", None, 1500000),
    ]
    assert table.budgets is not None
    assert table.budgets.tokens_per_day == 50_000_000
    assert table.match[0].models == ("chat", "gpt-4o-mini")
    assert table.match[0].headers[0].name == "x-team"


def test_target_timeout_defaults_to_the_request_timeout() -> None:
    s = spec(timeouts={"request": "1m30s"})
    assert {t.timeout_seconds for t in router.compile_route("n", "r", s, generation=1).targets} == {
        90.0
    }


def test_unavailable_target_leaves_weights_and_fallbacks(chat: RouteSpec) -> None:
    table = router.compile_route("ns", "chat", chat, generation=1, unavailable={"openai"})
    openai, llama = table.targets
    assert (openai.available, openai.effective_weight) == (False, 0)
    assert (llama.available, llama.effective_weight) == (True, 100)
    assert table.fallbacks["rate_limited"] == ("llama",)


def test_json_is_canonical_deterministic_and_round_trips(chat: RouteSpec) -> None:
    first = router.compile_route("ns", "chat", chat, generation=1)
    again = router.compile_route("ns", "chat", chat.model_copy(deep=True), generation=1)
    assert first.to_json() == again.to_json()
    assert first.version == again.version
    doc = json.loads(first.to_json())
    assert first.to_json() == jsondoc.canonical(doc).decode()  # sorted keys, no whitespace
    assert router.RouteTable.model_validate_json(first.to_json()) == first
    assert doc["targets"][0]["credentials"] == {"secret": "openai-api-key", "key": "api-key"}


def test_version_is_the_hash_of_the_content(chat: RouteSpec) -> None:
    table = router.compile_route("ns", "chat", chat, generation=1)
    doc = json.loads(table.to_json())
    del doc["version"]
    assert table.version == jsondoc.canonical_sha256(doc)
    for changed in (
        router.compile_route("ns", "chat", chat, generation=2),
        router.compile_route("other", "chat", chat, generation=1),
        router.compile_route("ns", "chat", chat, generation=1, unavailable={"llama"}),
        router.compile_route(
            "ns", "chat", chat.model_copy(update={"strategy": "latency"}), generation=1
        ),
    ):
        assert changed.version != table.version


def test_table_is_frozen(chat: RouteSpec) -> None:
    table = router.compile_route("ns", "chat", chat, generation=1)
    with pytest.raises(ValueError, match="frozen"):
        table.generation = 2  # type: ignore[misc]


def test_all_is_complete() -> None:
    from llm_infra.router import _table

    public = {
        name
        for name, value in vars(_table).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == _table.__name__
    }
    assert public <= set(router.__all__)
    assert all(hasattr(router, name) for name in router.__all__)
