"""ConfigSource through the real operator, API server, NATS, OpenBao and a local HTTP server."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import nats
import pytest
import yaml

from llm_infra import config
from tests.integration.operator.support import apply, events, get, wait_condition, wait_for
from tests.servers._process import free_port
from tests.servers.documents import DocumentServer
from tests.servers.kube import KubeServer
from tests.servers.openbao import OpenBao
from tests.servers.operator import OperatorProcess, grant_namespace

PASSWORD = "Pa55-word-from-a-Secret-7f3a"
VAULT_KEY = "api-key-from-openbao-91c2"
HASH_ANNOTATION = "infra.llmdevops.io/content-hash"


@pytest.fixture(scope="module")
def operator_settings(operator_settings: dict[str, str]) -> dict[str, str]:
    # The http layers read `served`, on 127.0.0.1: local addresses are refused unless allowed.
    return operator_settings | {"LLM_INFRA_OPERATOR_HTTP_LAYER_ALLOW_LOCAL_ADDRESSES": "true"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def configsource(name: str, *layers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "infra.llmdevops.io/v1alpha1",
        "kind": "ConfigSource",
        "metadata": {"name": name},
        "spec": {"layers": list(layers), **spec},
    }


def config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def document(obj: dict[str, Any] | None, key: str = "config.json") -> Any:
    """The JSON document a ConfigMap or Secret output holds."""
    assert obj is not None
    value = obj["data"][key]
    return json.loads(base64.b64decode(value) if obj["kind"] == "Secret" else value)


def status_where(
    kube: KubeServer, namespace: str, name: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(kube, namespace, "cfgsrc", name)
        return obj if obj is not None and check(obj.get("status") or {}) else None

    found: dict[str, Any] = wait_for(f"cfgsrc/{name} status", probe, timeout=20)
    return found


def assert_never_leaked(
    kube: KubeServer, namespace: str, operator: OperatorProcess, *values: str
) -> None:
    shown = kube.kubectl("get", "configsource", "-n", namespace, "-o", "yaml").stdout
    shown += kube.kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout
    shown += operator.log()
    for value in values:
        assert value not in shown


# -- inline + ConfigMap + Secret, the watch, NATS ----------------------------------------------


async def test_layers_publish_outputs_react_to_their_configmap_and_announce_versions(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, nats_url: str
) -> None:
    name, defaults, creds = unique("app"), unique("defaults"), unique("creds")
    connection = await nats.connect(nats_url)
    subscription = await connection.subscribe(config.config_event_subject(op_namespace, name))
    await connection.flush()
    try:
        apply(
            kube,
            op_namespace,
            config_map(defaults, {"app.yaml": yaml.safe_dump({"log": "info", "db": {"pool": 4}})}),
            secret(creds, {"creds.yaml": yaml.safe_dump({"db": {"password": PASSWORD}})}),
            configsource(
                name,
                {"name": "base", "inline": {"db": {"host": "db.shop", "pool": 2}}},
                {"name": "defaults", "configMapRef": {"name": defaults, "key": "app.yaml"}},
                {"name": "creds", "secretRef": {"name": creds, "key": "creds.yaml"}},
                sensitiveKeys=["/db/password"],
            ),
        )
        obj = await asyncio.to_thread(wait_condition, kube, op_namespace, "cfgsrc", name)
        status = obj["status"]
        plain = get(kube, op_namespace, "configmap", name)
        sensitive = get(kube, op_namespace, "secret", name)
        assert document(plain) == {"db": {"host": "db.shop", "pool": 4}, "log": "info"}
        assert document(sensitive) == {"db": {"password": PASSWORD}}
        assert PASSWORD not in json.dumps(plain)
        assert status["version"] == 1
        assert status["contentHash"] == status["lastGoodHash"]
        assert plain is not None
        assert plain["metadata"]["annotations"][HASH_ANNOTATION] == status["contentHash"]
        assert (status["configMapName"], status["secretName"]) == (name, name)
        assert status["provenance"] == {
            "/db/host": "base",
            "/db/pool": "defaults",
            "/db/password": "creds",
            "/log": "defaults",
        }
        assert [(layer["name"], layer["resolved"]) for layer in status["layers"]] == [
            ("base", True),
            ("defaults", True),
            ("creds", True),
        ]
        assert status["layers"][1]["source"] == f"configmap/{defaults} key app.yaml"
        types = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
        assert types == {
            "Ready": ("True", "ConfigPublished"),
            "LayersResolved": ("True", "Resolved"),
            "Validated": ("True", "Valid"),
            "Published": ("True", "OutputsCurrent"),
            "Notified": ("True", "EventSent"),
        }
        first = config.ConfigChanged.from_json((await subscription.next_msg(timeout=10)).data)
        assert (first.version, first.content_hash, first.previous_hash) == (
            1,
            status["contentHash"],
            None,
        )

        # Only the referenced ConfigMap changes: the watch, not a spec edit, re-resolves it.
        apply(kube, op_namespace, config_map(defaults, {"app.yaml": "log: debug\n"}))
        changed = await asyncio.to_thread(
            status_where, kube, op_namespace, name, lambda s: s.get("version") == 2
        )
        assert changed["metadata"]["generation"] == obj["metadata"]["generation"]
        assert document(get(kube, op_namespace, "configmap", name)) == {
            "db": {"host": "db.shop", "pool": 2},
            "log": "debug",
        }
        second = config.ConfigChanged.from_json((await subscription.next_msg(timeout=10)).data)
        assert (second.version, second.previous_hash) == (2, status["contentHash"])
        assert second.content_hash == changed["status"]["lastGoodHash"]
        reasons = [event["reason"] for event in events(kube, op_namespace, name)]
        assert reasons.count("Published") == 2
        assert_never_leaked(kube, op_namespace, operator, PASSWORD)
    finally:
        await connection.close()


# -- validation and missing layers -------------------------------------------------------------


def test_a_schema_violation_keeps_the_last_good_output_until_fixed(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    name, values = unique("limits"), unique("limits-values")
    schema = {
        "type": "object",
        "properties": {"pool": {"type": "integer", "maximum": 10}},
        "required": ["pool"],
    }
    apply(
        kube,
        op_namespace,
        config_map(values, {"app.json": '{"pool": 5}'}),
        configsource(
            name,
            {"name": "values", "configMapRef": {"name": values, "key": "app.json"}},
            schema={"inline": schema},
        ),
    )
    good = wait_condition(kube, op_namespace, "cfgsrc", name)["status"]

    apply(kube, op_namespace, config_map(values, {"app.json": '{"pool": 99}'}))
    bad = wait_condition(
        kube, op_namespace, "cfgsrc", name, type_="Validated", status="False",
        reason="SchemaViolation",
    )["status"]  # fmt: skip
    validated = next(c for c in bad["conditions"] if c["type"] == "Validated")
    assert "/pool" in validated["message"]
    ready = next(c for c in bad["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SchemaViolation")
    assert bad["lastGoodHash"] == good["lastGoodHash"]
    assert bad["contentHash"] != good["lastGoodHash"]
    assert bad["version"] == good["version"] == 1
    assert document(get(kube, op_namespace, "configmap", name)) == {"pool": 5}

    apply(kube, op_namespace, config_map(values, {"app.json": '{"pool": 7}'}))
    fixed = status_where(kube, op_namespace, name, lambda s: s.get("version") == 2)["status"]
    assert fixed["lastGoodHash"] == fixed["contentHash"] != good["lastGoodHash"]
    assert document(get(kube, op_namespace, "configmap", name)) == {"pool": 7}
    wait_condition(kube, op_namespace, "cfgsrc", name)


def test_a_missing_required_configmap_is_named_until_it_exists(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    name, later = unique("late"), unique("late-values")
    apply(
        kube,
        op_namespace,
        configsource(
            name,
            {"name": "base", "inline": {"a": 1}},
            {"name": "overrides", "configMapRef": {"name": later}},
        ),
    )
    obj = wait_condition(kube, op_namespace, "cfgsrc", name, status="False", reason="LayerFailed")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert "layers[1] (overrides)" in ready["message"]
    assert f"ConfigMap {later} not found" in ready["message"]
    assert get(kube, op_namespace, "configmap", name) is None
    assert obj["status"].get("lastGoodHash") is None

    apply(kube, op_namespace, config_map(later, {"b": "2"}))
    wait_condition(kube, op_namespace, "cfgsrc", name)
    assert document(get(kube, op_namespace, "configmap", name)) == {"a": 1, "b": "2"}


# -- OpenBao and HTTP layers -------------------------------------------------------------------


def test_vault_and_http_layers_feed_the_outputs_without_leaking(
    kube: KubeServer,
    op_namespace: str,
    operator: OperatorProcess,
    bao: OpenBao,
    served: DocumentServer,
) -> None:
    name, token_secret = unique("remote"), unique("bao-token")
    path = f"apps/{uuid.uuid4().hex[:8]}"
    client = hvac.Client(url=bao.url, token=bao.token)
    client.secrets.kv.v2.create_or_update_secret(
        path=path, mount_point="secret", secret={"apiKey": VAULT_KEY, "region": "eu"}
    )
    client.adapter.close()
    served.documents["/model.json"] = json.dumps({"model": "small", "region": "us"}).encode()
    vault = {
        "address": bao.url,
        "path": path,
        "auth": {"tokenSecretRef": {"name": token_secret, "key": "token"}},
    }
    apply(
        kube,
        op_namespace,
        secret(token_secret, {"token": bao.token}),
        configsource(
            name,
            {"name": "remote", "http": {"url": f"{served.url}/model.json"}},
            {"name": "vault", "vault": vault},
            sensitiveKeys=["/apiKey"],
            target={"format": "yaml", "key": "app.yaml"},
        ),
    )
    status = wait_condition(kube, op_namespace, "cfgsrc", name)["status"]
    plain = get(kube, op_namespace, "configmap", name)
    assert plain is not None
    assert yaml.safe_load(plain["data"]["app.yaml"]) == {"model": "small", "region": "eu"}
    sensitive = get(kube, op_namespace, "secret", name)
    assert sensitive is not None
    assert yaml.safe_load(base64.b64decode(sensitive["data"]["app.yaml"])) == {"apiKey": VAULT_KEY}
    sources = {layer["name"]: layer["source"] for layer in status["layers"]}
    assert sources["vault"] == f"vault secret/{path}@v1"
    assert sources["remote"].startswith(f"http {served.url}/model.json (etag ")
    assert status["provenance"] == {"/apiKey": "vault", "/model": "remote", "/region": "vault"}
    assert_never_leaked(kube, op_namespace, operator, VAULT_KEY, bao.token)


# -- rollout and deletion policy ---------------------------------------------------------------


def deployment(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }


def test_http_layers_are_read_again_every_refresh_interval(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, served: DocumentServer
) -> None:
    name = unique("polled")
    served.documents["/flags.json"] = json.dumps({"newPricing": False}).encode()
    apply(
        kube,
        op_namespace,
        configsource(
            name,
            {"name": "flags", "http": {"url": f"{served.url}/flags.json"}},
            refresh={"interval": "10s"},
        ),
    )
    first = wait_condition(kube, op_namespace, "cfgsrc", name)
    assert document(get(kube, op_namespace, "configmap", name)) == {"newPricing": False}
    served.documents["/flags.json"] = json.dumps({"newPricing": True}).encode()
    # Nothing in the cluster changes: only the interval brings the new document in.
    wait_for(
        "the new document in the ConfigMap",
        lambda: document(get(kube, op_namespace, "configmap", name)) == {"newPricing": True},
        timeout=25,
    )
    later = get(kube, op_namespace, "cfgsrc", name)
    assert later is not None
    assert later["metadata"]["generation"] == first["metadata"]["generation"]
    assert later["status"]["version"] == first["status"]["version"] + 1
    # Reads in between carried the ETag and were answered 304.
    assert any("If-None-Match" in headers for headers in served.seen)


def test_rollout_annotates_the_selected_workloads_pod_templates(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    name, web, other = unique("rolled"), unique("web"), unique("other")
    selected = {"config": name}
    apply(kube, op_namespace, deployment(web, selected), deployment(other, {"config": "none"}))
    apply(
        kube,
        op_namespace,
        configsource(
            name,
            {"name": "base", "inline": {"replicas": 2}},
            onChange={
                "action": "rollout",
                "selector": {"matchLabels": selected},
                "workloadKinds": ["Deployment"],
            },
        ),
    )
    status = wait_condition(kube, op_namespace, "cfgsrc", name)["status"]
    rolled = get(kube, op_namespace, "deployment", web)
    assert rolled is not None
    annotations = rolled["spec"]["template"]["metadata"]["annotations"]
    assert annotations["infra.llmdevops.io/config-hash"] == status["lastGoodHash"]
    untouched = get(kube, op_namespace, "deployment", other)
    assert untouched is not None
    assert "annotations" not in untouched["spec"]["template"]["metadata"]
    rollouts = [e for e in events(kube, op_namespace, name) if e["reason"] == "RolledOut"]
    assert [f"Deployment/{web}" in e["message"] for e in rollouts] == [True]


@pytest.mark.parametrize(("policy", "owned"), [("Delete", True), ("Retain", False)])
def test_deletion_policy_decides_the_owner_references_of_the_outputs(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, policy: str, owned: bool
) -> None:
    name = unique(policy.lower())
    apply(
        kube,
        op_namespace,
        configsource(
            name,
            {"name": "base", "inline": {"token": "x", "level": "info"}},
            sensitiveKeys=["/token"],
            target={"deletionPolicy": policy},
        ),
    )
    obj = wait_condition(kube, op_namespace, "cfgsrc", name)
    for kind in ("configmap", "secret"):
        output = get(kube, op_namespace, kind, name)
        assert output is not None
        owners = output["metadata"].get("ownerReferences", [])
        expected = [("ConfigSource", name, obj["metadata"]["uid"], True)] if owned else []
        assert [(o["kind"], o["name"], o["uid"], o["controller"]) for o in owners] == expected


def test_a_resync_with_nothing_changed_writes_nothing(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    name = unique("steady")
    apply(kube, op_namespace, configsource(name, {"name": "base", "inline": {"a": 1}}))
    before = wait_condition(kube, op_namespace, "cfgsrc", name)["status"]
    output = get(kube, op_namespace, "configmap", name)
    assert output is not None
    kube.kubectl("label", "cfgsrc", name, "-n", op_namespace, "touched=yes")
    after = status_where(
        kube,
        op_namespace,
        name,
        lambda s: s.get("lastRefreshTime") not in (None, before["lastRefreshTime"]),
    )["status"]
    assert after["version"] == before["version"] == 1
    again = get(kube, op_namespace, "configmap", name)
    assert again is not None
    assert again["metadata"]["resourceVersion"] == output["metadata"]["resourceVersion"]
    published = [e for e in events(kube, op_namespace, name) if e["reason"] == "Published"]
    assert len(published) == 1


def test_the_secret_goes_when_no_sensitive_key_remains(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess
) -> None:
    name = unique("unsecret")
    layer = {"name": "base", "inline": {"token": "t0ken", "level": "info"}}
    apply(kube, op_namespace, configsource(name, layer, sensitiveKeys=["/token"]))
    assert wait_condition(kube, op_namespace, "cfgsrc", name)["status"]["secretName"] == name
    assert get(kube, op_namespace, "secret", name) is not None

    apply(kube, op_namespace, configsource(name, layer, sensitiveKeys=[]))
    # The merged document (and so its hash and version) is the same; only the split moved.
    status = status_where(kube, op_namespace, name, lambda s: "secretName" not in s)["status"]
    assert status["version"] == 1
    wait_for("the stale Secret to go", lambda: get(kube, op_namespace, "secret", name) is None)
    assert document(get(kube, op_namespace, "configmap", name)) == {
        "level": "info",
        "token": "t0ken",
    }


def test_nats_down_leaves_the_outputs_published_and_the_event_pending(
    kube: KubeServer,
    operator_kubeconfig: Path,
    operator_settings: dict[str, str],
    tmp_path: Path,
) -> None:
    # Its own namespace and operator: the module's operator has a working NATS.
    namespace, name = unique("op-nonats"), unique("quiet")
    kube.kubectl("create", "namespace", namespace)
    grant_namespace(kube, namespace)
    settings = operator_settings | {
        "LLM_INFRA_OPERATOR_NATS_URL": f"nats://127.0.0.1:{free_port()}"
    }
    with OperatorProcess(tmp_path, operator_kubeconfig, [namespace], settings) as lonely:
        apply(kube, namespace, configsource(name, {"name": "base", "inline": {"a": 1}}))
        obj = wait_condition(kube, namespace, "cfgsrc", name, status="False", reason="NotifyFailed")
        conditions = {c["type"]: c for c in obj["status"]["conditions"]}
        assert conditions["Published"]["status"] == "True"
        assert "NATS" in conditions["Notified"]["message"]
        assert obj["status"]["version"] == 1
        published = get(kube, namespace, "configmap", name)
        assert published is not None
        assert document(published) == {"a": 1}

        def retried() -> bool:
            return lonely.log().count(f"ConfigSource {namespace}/{name}: change event") >= 2

        wait_for("a retry of the change event", retried)
        again = get(kube, namespace, "configmap", name)
        assert again is not None
        assert again["metadata"]["resourceVersion"] == published["metadata"]["resourceVersion"]
