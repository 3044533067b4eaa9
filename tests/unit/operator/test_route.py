"""The Route reconciler's decide step: credentials, target status, table versions, the ConfigMap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_infra import router
from llm_infra.api.v1alpha1.route import Route, RouteSpec, RouteStatus, TargetStatus
from llm_infra_operator.reconcilers import route as reconciler

EXAMPLE = Path(__file__).parents[3] / "examples" / "route-chat.yaml"
HASH_A, HASH_B = "a" * 64, "b" * 64


@pytest.fixture
def body() -> dict[str, Any]:
    """The example as the API server hands it over: namespace, uid and generation set."""
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"] |= {"namespace": "team-a", "uid": "uid-1", "generation": 4}
    return manifest


@pytest.fixture
def spec(body: dict[str, Any]) -> RouteSpec:
    return Route.model_validate(body).spec


@pytest.fixture
def table(spec: RouteSpec) -> router.RouteTable:
    return router.compile_route("team-a", "chat", spec, generation=4)


# -- credentials ------------------------------------------------------------------------------


def test_present_secret_and_key_resolve(spec: RouteSpec) -> None:
    assert reconciler.decide_missing_credentials(spec, {"openai-api-key": {"api-key"}}) == []


def test_absent_secret_is_missing_with_its_field(spec: RouteSpec) -> None:
    [missing] = reconciler.decide_missing_credentials(spec, {"openai-api-key": None})
    assert missing == reconciler.MissingCredential(
        "spec.targets[0].credentialsSecretRef", "openai", "openai-api-key", "api-key", False
    )
    assert missing.describe() == (
        "spec.targets[0].credentialsSecretRef: Secret openai-api-key not found (target openai)"
    )


def test_secret_without_the_key_is_missing(spec: RouteSpec) -> None:
    [missing] = reconciler.decide_missing_credentials(spec, {"openai-api-key": {"token"}})
    assert missing.secret_exists
    assert "Secret openai-api-key has no key api-key" in missing.describe()


def test_unlisted_secret_counts_as_absent(spec: RouteSpec) -> None:
    [missing] = reconciler.decide_missing_credentials(spec, {})
    assert not missing.secret_exists


def test_the_field_path_indexes_the_target_in_the_spec() -> None:
    spec = RouteSpec.model_validate(
        {
            "targets": [
                {"name": "a", "provider": "openai", "model": "m"},
                {
                    "name": "b",
                    "provider": "openai",
                    "model": "m",
                    "credentialsSecretRef": {"name": "s", "key": "k"},
                },
            ]
        }
    )
    [missing] = reconciler.decide_missing_credentials(spec, {"s": None})
    assert missing.field == "spec.targets[1].credentialsSecretRef"


def test_resolved_refs_message_says_traffic_keeps_flowing(spec: RouteSpec) -> None:
    missing = reconciler.decide_missing_credentials(spec, {})
    message = reconciler.resolved_refs_message(missing, available=1)
    assert message.startswith("spec.targets[0].credentialsSecretRef: Secret openai-api-key")
    assert "openai are marked unavailable (weight 0)" in message
    assert "traffic keeps flowing" in message
    assert message.endswith("create the Secret with that key, or fix the reference")
    assert "no target is left" in reconciler.resolved_refs_message(missing, available=0)


# -- target status ----------------------------------------------------------------------------


def test_target_status_carries_effective_weights_and_health(spec: RouteSpec) -> None:
    weights = router.effective_weights(spec, unavailable={"openai"})
    assert reconciler.decide_target_status(spec, weights, {"openai"}) == [
        TargetStatus(name="openai", effective_weight=0, healthy=False),
        TargetStatus(name="llama", effective_weight=100, healthy=True),
    ]


def test_a_weight_zero_fallback_target_with_credentials_is_healthy() -> None:
    spec = RouteSpec.model_validate(
        {
            "targets": [
                {"name": "main", "provider": "openai", "model": "m", "weight": 1},
                {"name": "spare", "provider": "openai", "model": "m", "weight": 0},
            ],
            "fallbacks": [{"onErrors": ["timeout"], "to": ["spare"]}],
        }
    )
    weights = router.effective_weights(spec)
    [_, spare] = reconciler.decide_target_status(spec, weights, ())
    assert spare == TargetStatus(name="spare", effective_weight=0, healthy=True)


# -- table version ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "expected"),
    [
        (RouteStatus(), 1),  # first table
        (RouteStatus(table_version=3, table_hash=HASH_A), 3),  # same table: a resync
        (RouteStatus(table_version=3, table_hash=HASH_B), 4),  # changed table
    ],
)
def test_table_version_moves_only_with_the_hash(previous: RouteStatus, expected: int) -> None:
    assert reconciler.decide_table_version(previous, HASH_A) == expected


# -- the ConfigMap ----------------------------------------------------------------------------


def test_table_configmap_is_labelled_owned_and_holds_the_table(
    body: dict[str, Any], table: router.RouteTable
) -> None:
    manifest = reconciler.decide_table_configmap(body, table)
    meta = manifest["metadata"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("v1", "ConfigMap")
    assert (meta["name"], meta["namespace"]) == ("llmroute-chat", "team-a")
    assert meta["labels"] == {router.ROUTE_TABLE_LABEL: "true"}
    assert meta["annotations"] == {reconciler.TABLE_HASH_ANNOTATION: table.version}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "infra.llmdevops.io/v1alpha1",
            "kind": "Route",
            "name": "chat",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    loaded = json.loads(manifest["data"][router.ROUTE_TABLE_KEY])
    assert loaded["version"] == table.version
    assert [t["effective_weight"] for t in loaded["targets"]] == [70, 30]
    # A reference to the credentials, never their value.
    assert loaded["targets"][0]["credentials"] == {"secret": "openai-api-key", "key": "api-key"}


def stored(manifest: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`manifest` as `_configmap` reads it back from the API server, with `changes` applied."""
    meta = manifest["metadata"]
    current = {
        "metadata": {
            "labels": {**meta["labels"], "team": "a"},  # extra labels of users are fine
            "annotations": dict(meta["annotations"]),
            "ownerReferences": [
                {"uid": o["uid"], "controller": o["controller"]} for o in meta["ownerReferences"]
            ],
        },
        "data": dict(manifest["data"]),
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        current[section][field] = value
    return current


def test_an_up_to_date_configmap_is_not_rewritten(
    body: dict[str, Any], table: router.RouteTable
) -> None:
    desired = reconciler.decide_table_configmap(body, table)
    assert not reconciler.decide_table_stale(stored(desired), desired)


@pytest.mark.parametrize(
    "changes",
    [
        {"metadata__annotations": {reconciler.TABLE_HASH_ANNOTATION: HASH_B}},
        {"metadata__annotations": {}},
        {"metadata__labels": {}},
        {"metadata__labels": {router.ROUTE_TABLE_LABEL: "chat"}},
        {"metadata__ownerReferences": []},
        {"metadata__ownerReferences": [{"uid": "uid-1", "controller": False}]},
        {"data__" + router.ROUTE_TABLE_KEY: "{}"},
    ],
)
def test_a_drifted_configmap_is_rewritten(
    body: dict[str, Any], table: router.RouteTable, changes: dict[str, Any]
) -> None:
    desired = reconciler.decide_table_configmap(body, table)
    assert reconciler.decide_table_stale(stored(desired, **changes), desired)


def test_a_missing_configmap_is_written(body: dict[str, Any], table: router.RouteTable) -> None:
    assert reconciler.decide_table_stale(None, reconciler.decide_table_configmap(body, table))


# -- Accepted and warnings --------------------------------------------------------------------

LOOP = router.RouteProblem("spec.fallbacks[1].to[0]", "target 'llama' is already there")
UNREACHED = router.RouteProblem("spec.targets[1].weight", "no request reaches it", "warning")


def test_accepted_message_lists_errors_with_fields_and_what_stays_served() -> None:
    served = RouteStatus(table_version=2, table_hash=HASH_A)
    message = reconciler.accepted_message([LOOP, UNREACHED], served)
    assert message == (
        "the route is invalid: spec.fallbacks[1].to[0]: target 'llama' is already there."
        " Fix the spec; until then table version 2 stays in service"
    )
    assert "no table is published" in reconciler.accepted_message([LOOP], RouteStatus())


def test_accepted_message_lists_warnings() -> None:
    message = reconciler.accepted_message([UNREACHED], RouteStatus())
    assert message == (
        "route accepted with 1 warning(s): spec.targets[1].weight: no request reaches it"
    )
    assert reconciler.accepted_message([], RouteStatus()) == "route accepted"


def test_a_warning_event_is_posted_once_per_new_set_of_warnings() -> None:
    message = reconciler.accepted_message([UNREACHED], RouteStatus())
    event = reconciler.decide_warning_event([UNREACHED], None, message)
    assert event is not None
    assert (event.type, event.reason, event.message) == ("Warning", "RouteWarning", message)
    assert reconciler.decide_warning_event([UNREACHED], message, message) is None
    assert reconciler.decide_warning_event([], None, "route accepted") is None
