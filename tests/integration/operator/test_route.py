"""Route through the real operator and API server: the table ConfigMap, credentials, conditions."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_infra import router
from tests.integration.operator.support import (
    apply,
    condition,
    events,
    get,
    wait_condition,
    wait_for,
)
from tests.servers.kube import KubeServer
from tests.servers.operator import OperatorProcess

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "route-chat.yaml"
TABLE_HASH = "infra.llmdevops.io/table-hash"


@pytest.fixture(scope="module")
def operator_settings(operator_settings: dict[str, str]) -> dict[str, str]:
    # No periodic resync within a test: whatever happens, a watch event made it happen
    # (a Secret appearing, a table ConfigMap deleted), not a timer.
    return operator_settings | {"LLM_INFRA_OPERATOR_RESYNC_INTERVAL": "600"}


def chat_route(name: str, secret: str) -> dict[str, Any]:
    """examples/route-chat.yaml, renamed, its openai target reading `secret`."""
    route: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    route["metadata"]["name"] = name
    route["spec"]["targets"][0]["credentialsSecretRef"]["name"] = secret
    return route


def create_secret(kube: KubeServer, namespace: str, name: str) -> str:
    """A Secret with the key the example reads; returns its (random) value."""
    value = f"sk-test-{uuid.uuid4().hex}"
    kube.kubectl(
        "create", "secret", "generic", name, "-n", namespace, f"--from-literal=api-key={value}"
    )
    return value


def condition_of(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = condition(obj, type_)
    assert found is not None, f"no {type_} condition in {obj.get('status')}"
    return found


def table_configmap(kube: KubeServer, namespace: str, route: str) -> dict[str, Any]:
    found = get(kube, namespace, "configmap", router.route_table_configmap_name(route))
    assert found is not None, f"no table ConfigMap for route {route}"
    return found


def table_of(configmap: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = json.loads(configmap["data"][router.ROUTE_TABLE_KEY])
    return table


def weights_in(table: dict[str, Any]) -> dict[str, int]:
    return {t["name"]: t["effective_weight"] for t in table["targets"]}


def test_example_route_publishes_its_table(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    value = create_secret(kube, op_namespace, "openai-ready")
    apply(kube, op_namespace, chat_route("chat-ready", "openai-ready"))
    route = wait_condition(kube, op_namespace, "llmroute", "chat-ready")

    status = route["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "Accepted": "True",
        "ResolvedRefs": "True",
        "Published": "True",
    }
    assert status["weights"] == "openai=70,llama=30"
    assert status["targets"] == [
        {"name": "openai", "effectiveWeight": 70, "healthy": True},
        {"name": "llama", "effectiveWeight": 30, "healthy": True},
    ]
    assert status["tableVersion"] == 1
    assert status["tableConfigMap"] == "llmroute-chat-ready"

    configmap = table_configmap(kube, op_namespace, "chat-ready")
    meta = configmap["metadata"]
    assert meta["labels"][router.ROUTE_TABLE_LABEL] == "true"
    assert meta["annotations"][TABLE_HASH] == status["tableHash"]
    [owner] = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Route",
        "chat-ready",
        route["metadata"]["uid"],
    )
    assert owner["controller"] is True
    table = table_of(configmap)
    assert table["version"] == status["tableHash"]
    assert table["generation"] == route["metadata"]["generation"]
    assert weights_in(table) == {"openai": 70, "llama": 30}
    assert [t["weight"] for t in table["targets"]] == [70, 30]
    assert table["targets"][0]["credentials"] == {"secret": "openai-ready", "key": "api-key"}
    for error_class in ("rate_limited", "server_error", "timeout"):
        assert table["fallbacks"][error_class] == ["llama", "openai"]
    assert table["fallbacks"]["content_policy"] == []

    reasons = [e["reason"] for e in events(kube, op_namespace, "chat-ready")]
    assert "TablePublished" in reasons

    # The credential's value is nowhere the operator writes or logs.
    route_yaml = kube.kubectl("get", "llmroute", "chat-ready", "-n", op_namespace, "-o", "yaml")
    assert value not in route_yaml.stdout
    assert value not in json.dumps(configmap)
    assert value not in json.dumps(events(kube, op_namespace, "chat-ready"))
    assert value not in operator.log()


def test_missing_secret_marks_the_target_unavailable_until_it_appears(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    apply(kube, op_namespace, chat_route("chat-late", "openai-late"))
    route = wait_condition(
        kube, op_namespace, "llmroute", "chat-late",
        type_="ResolvedRefs", status="False", reason="SecretNotFound",
    )  # fmt: skip
    refs = condition_of(route, "ResolvedRefs")
    assert "spec.targets[0].credentialsSecretRef: Secret openai-late not found" in refs["message"]
    ready = condition_of(route, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotFound")
    status = route["status"]
    assert status["weights"] == "openai=0,llama=100"
    assert status["targets"] == [
        {"name": "openai", "effectiveWeight": 0, "healthy": False},
        {"name": "llama", "effectiveWeight": 100, "healthy": True},
    ]
    # Partly resolved is still served: the table goes out without the openai target.
    assert condition_of(route, "Published")["status"] == "True"
    table = table_of(table_configmap(kube, op_namespace, "chat-late"))
    assert weights_in(table) == {"openai": 0, "llama": 100}
    assert [t["available"] for t in table["targets"]] == [False, True]
    assert table["fallbacks"]["timeout"] == ["llama"]

    # Creating the Secret alone (resync is 600 s here) brings the target back.
    value = create_secret(kube, op_namespace, "openai-late")
    route = wait_condition(kube, op_namespace, "llmroute", "chat-late", timeout=15)
    assert route["status"]["weights"] == "openai=70,llama=30"
    assert route["status"]["tableVersion"] == status["tableVersion"] + 1
    table = table_of(table_configmap(kube, op_namespace, "chat-late"))
    assert weights_in(table) == {"openai": 70, "llama": 30}
    assert value not in operator.log()


def test_weight_change_publishes_a_new_table_version(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    create_secret(kube, op_namespace, "openai-weights")
    apply(kube, op_namespace, chat_route("chat-weights", "openai-weights"))
    before = wait_condition(kube, op_namespace, "llmroute", "chat-weights")

    patch = [
        {"op": "replace", "path": "/spec/targets/0/weight", "value": 1},
        {"op": "replace", "path": "/spec/targets/1/weight", "value": 3},
    ]
    kube.kubectl(
        "patch", "llmroute", "chat-weights", "-n", op_namespace,
        "--type=json", f"-p={json.dumps(patch)}",
    )  # fmt: skip
    after = wait_condition(kube, op_namespace, "llmroute", "chat-weights")  # new generation

    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["status"]["observedGeneration"] == after["metadata"]["generation"]
    assert after["status"]["tableVersion"] == before["status"]["tableVersion"] + 1
    assert after["status"]["tableHash"] != before["status"]["tableHash"]
    assert after["status"]["weights"] == "openai=25,llama=75"
    table = table_of(table_configmap(kube, op_namespace, "chat-weights"))
    assert table["generation"] == after["metadata"]["generation"]
    assert weights_in(table) == {"openai": 25, "llama": 75}


def test_deleted_table_configmap_is_restored(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    create_secret(kube, op_namespace, "openai-restore")
    apply(kube, op_namespace, chat_route("chat-restore", "openai-restore"))
    route = wait_condition(kube, op_namespace, "llmroute", "chat-restore")
    name = route["status"]["tableConfigMap"]

    kube.kubectl("delete", "configmap", name, "-n", op_namespace)
    # Repaired on the next reconcile: the resync (600 s here) or, as now, a metadata change.
    kube.kubectl(
        "label", "llmroute", "chat-restore", "-n", op_namespace, f"touched={uuid.uuid4().hex}"
    )
    restored = wait_for(
        f"configmap {name} restored", lambda: get(kube, op_namespace, "configmap", name)
    )
    assert restored["metadata"]["annotations"][TABLE_HASH] == route["status"]["tableHash"]
    again = get(kube, op_namespace, "llmroute", "chat-restore")
    assert again is not None
    assert again["status"]["tableVersion"] == route["status"]["tableVersion"]  # same table


def test_fallback_to_an_unknown_target_is_refused_by_the_api_server(
    kube: KubeServer, op_namespace: str
) -> None:
    route = chat_route("chat-dangling", "openai-dangling")
    route["spec"]["fallbacks"] = [{"onErrors": ["timeout"], "to": ["nope"]}]
    with pytest.raises(subprocess.CalledProcessError) as refused:
        apply(kube, op_namespace, route)
    assert "every name in fallbacks[].to must be the name of a target" in refused.value.stderr
    assert get(kube, op_namespace, "llmroute", "chat-dangling") is None


def test_invalid_fallbacks_keep_the_previous_table(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    create_secret(kube, op_namespace, "openai-loop")
    route = chat_route("chat-loop", "openai-loop")
    apply(kube, op_namespace, route)
    good = wait_condition(kube, op_namespace, "llmroute", "chat-loop")
    published = table_configmap(kube, op_namespace, "chat-loop")

    # The same target twice in the try-order of `timeout`: CEL cannot see it, the operator does.
    route["spec"]["fallbacks"].append({"onErrors": ["timeout"], "to": ["llama"]})
    apply(kube, op_namespace, route)
    bad = wait_condition(
        kube, op_namespace, "llmroute", "chat-loop",
        type_="Accepted", status="False", reason="InvalidRoute",
    )  # fmt: skip
    accepted = condition_of(bad, "Accepted")
    assert "spec.fallbacks[1].to[0]" in accepted["message"]
    assert "table version 1 stays in service" in accepted["message"]
    ready = condition_of(bad, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidRoute")
    assert bad["status"]["tableVersion"] == good["status"]["tableVersion"]
    assert bad["status"]["tableHash"] == good["status"]["tableHash"]
    still = table_configmap(kube, op_namespace, "chat-loop")
    assert still["data"] == published["data"]
    assert still["metadata"]["resourceVersion"] == published["metadata"]["resourceVersion"]


def test_warnings_are_accepted_and_reported(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    route = chat_route("chat-warn", "unused")
    route["spec"]["targets"][0].pop("credentialsSecretRef")
    route["spec"]["targets"][1]["weight"] = 0  # weight 0 and no fallback reaches it
    route["spec"]["fallbacks"] = []
    apply(kube, op_namespace, route)
    obj = wait_condition(kube, op_namespace, "llmroute", "chat-warn")
    accepted = condition_of(obj, "Accepted")
    assert accepted["status"] == "True"
    assert "spec.targets[1].weight" in accepted["message"]
    assert obj["status"]["weights"] == "openai=100,llama=0"
    warnings = [e for e in events(kube, op_namespace, "chat-warn") if e["reason"] == "RouteWarning"]
    assert [e["type"] for e in warnings] == ["Warning"]
    assert "spec.targets[1].weight" in warnings[0]["message"]
