"""The operator as a whole: killed mid-reconcile it converges without duplicates; no secret
value reaches status, events or logs; its metrics and health endpoints answer.

This module starts its own operator processes (it kills them), in its own namespace.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from llm_infra_operator.chart import peering
from tests.integration.operator.support import apply, get, wait_condition, wait_for
from tests.servers.controlplane import ControlPlaneProcess
from tests.servers.kube import KubeServer
from tests.servers.operator import OperatorProcess

API = "infra.llmdevops.io/v1alpha1"
KINDS = ("vc", "cfgsrc", "asink", "llmroute")


@pytest.fixture
def start_operator(
    tmp_path: Path,
    operator_kubeconfig: Path,
    op_namespace: str,
    operator_settings: dict[str, str],
) -> Iterator[Any]:
    """Start operators for `op_namespace` (one at a time); all are stopped at the end."""
    started: list[OperatorProcess] = []

    def start(**extra: str) -> OperatorProcess:
        process = OperatorProcess(
            tmp_path / f"operator-{len(started)}",
            operator_kubeconfig,
            [op_namespace],
            operator_settings | {f"LLM_INFRA_OPERATOR_{k.upper()}": v for k, v in extra.items()},
        )
        (tmp_path / f"operator-{len(started)}").mkdir()
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def resources(prefix: str) -> list[dict[str, Any]]:
    """Six collections, three each of the other kinds: small, and ready without outside help."""
    vc = {"backend": {"embedded": {}}, "vectors": {"size": 4}}
    audit = {"sinks": [{"name": "f", "file": {"path": "/var/log/a.jsonl"}}]}
    target = {"name": "t", "provider": "vllm", "endpoint": "http://v:8000/v1", "model": "m"}
    return [
        *(_obj("VectorCollection", f"{prefix}-vc{i}", vc) for i in range(6)),
        *(_obj("ConfigSource", f"{prefix}-cfg{i}", _inline(i)) for i in range(3)),
        *(_obj("AuditSink", f"{prefix}-audit{i}", audit) for i in range(3)),
        *(_obj("Route", f"{prefix}-route{i}", {"targets": [target]}) for i in range(3)),
    ]  # fmt: skip


def _inline(i: int) -> dict[str, Any]:
    return {"layers": [{"name": "base", "inline": {"n": i}}]}


def _obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def _ready_names(kube: KubeServer, namespace: str) -> set[str]:
    listed = json.loads(kube.kubectl("get", ",".join(KINDS), "-n", namespace, "-o", "json").stdout)
    return {
        item["metadata"]["name"]
        for item in listed["items"]
        for c in item.get("status", {}).get("conditions", [])
        if c["type"] == "Ready" and c["status"] == "True"
    }


async def _streams(url: str, namespace: str) -> list[tuple[str, list[str]]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        found = []
        for info in await js.streams_info():
            name = info.config.name or ""
            if f"AUDIT_{namespace}_" in name:  # the default names (audit.default_stream_name)
                consumers = await js.consumers_info(name)
                found.append((name, sorted(c.name or "" for c in consumers)))
        return sorted(found)
    finally:
        await nc.close()


def test_killed_mid_reconcile_it_converges_without_duplicates(
    kube: KubeServer,
    op_namespace: str,
    start_operator: Any,
    control_plane: ControlPlaneProcess,
    nats_url: str,
) -> None:
    first = start_operator()
    objs = resources("k")
    apply(kube, op_namespace, *objs)
    # Kill it once it is busy: some resources reconciled, most not yet.
    wait_for("a first reconcile", lambda: len(_ready_names(kube, op_namespace)) >= 1, timeout=30)
    first.kill()
    ready_at_kill = len(_ready_names(kube, op_namespace))

    start_operator()
    names = {o["metadata"]["name"] for o in objs}
    wait_for("all Ready", lambda: _ready_names(kube, op_namespace) >= names, timeout=60)
    assert ready_at_kill < len(objs), "the kill came after everything was done"

    collections = sorted(
        p.name for p in (control_plane.data / "collections" / op_namespace).iterdir()
    )
    assert collections == sorted(f"k-vc{i}" for i in range(6))
    streams = asyncio.run(_streams(nats_url, op_namespace))
    assert len(streams) == 3
    assert all(consumers == ["sink-f"] for _, consumers in streams)
    listed = json.loads(kube.kubectl("get", "configmaps", "-n", op_namespace, "-o", "json").stdout)
    managed = sorted(
        cm["metadata"]["name"]
        for cm in listed["items"]
        if cm["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "llm-infra"
        or "infra.llmdevops.io/route-table" in cm["metadata"].get("labels", {})
    )
    expected = [f"k-cfg{i}" for i in range(3)] + [f"llmroute-k-route{i}" for i in range(3)]
    assert managed == sorted(expected)


SECRET_VALUES = {
    "qdrant": "qdrant-key-9f8e7d6c5b4a",
    "password": "db-password-1a2b3c4d5e6f",
    "openai": "sk-openai-0123456789abcdef",
}


def test_no_secret_value_reaches_status_events_or_logs(
    kube: KubeServer, op_namespace: str, start_operator: Any
) -> None:
    operator = start_operator()
    for name, value in SECRET_VALUES.items():
        kube.kubectl(
            "create", "secret", "generic", f"s-{name}", "-n", op_namespace,
            f"--from-literal=value={value}",
        )  # fmt: skip
    qdrant = {"url": "http://qdrant.example:6333",
              "apiKeySecretRef": {"name": "s-qdrant", "key": "value"}}  # fmt: skip
    config = {
        "layers": [
            {"name": "base", "inline": {"db": {"host": "pg", "user": "app"}}},
            {"name": "creds", "secretRef": {"name": "s-password"}},
        ],
        "sensitiveKeys": ["/value"],
    }
    # The schema refuses the password (too short for it): the error must not quote it.
    strict = config | {"schema": {"inline": {"type": "object", "properties": {
        "value": {"type": "string", "maxLength": 5}}}}}  # fmt: skip
    route_target = {"name": "openai", "provider": "openai", "model": "gpt-4o-mini",
                    "credentialsSecretRef": {"name": "s-openai", "key": "value"}}  # fmt: skip
    missing_key = route_target | {"name": "other", "credentialsSecretRef":
                                  {"name": "s-openai", "key": "absent"}}  # fmt: skip
    apply(
        kube,
        op_namespace,
        _obj("VectorCollection", "sv", {"backend": {"qdrant": qdrant}, "vectors": {"size": 4}}),
        _obj("ConfigSource", "sc", config),
        _obj("ConfigSource", "sc-bad", strict),
        _obj("Route", "sr", {"targets": [route_target, missing_key]}),
    )
    for resource, name in (("vc", "sv"), ("cfgsrc", "sc"), ("llmroute", "sr")):
        wait_condition(
            kube, op_namespace, resource, name, status="True" if name != "sr" else "False"
        )
    wait_condition(kube, op_namespace, "cfgsrc", "sc-bad", status="False")
    # The password does reach the output Secret, its only place.
    out = get(kube, op_namespace, "secret", "sc")
    assert out is not None
    stored = [base64.b64decode(v).decode() for v in out["data"].values()]
    assert any(SECRET_VALUES["password"] in document for document in stored)

    seen = {
        "status": kube.kubectl("get", ",".join(KINDS), "-n", op_namespace, "-o", "yaml").stdout,
        "events": kube.kubectl("get", "events", "-n", op_namespace, "-o", "yaml").stdout,
        "configmaps": kube.kubectl("get", "configmaps", "-n", op_namespace, "-o", "yaml").stdout,
        "log": operator.log(),
    }
    for value in SECRET_VALUES.values():
        encoded = base64.b64encode(value.encode()).decode()
        for where, text in seen.items():
            assert value not in text, f"a secret value is in the {where}"
            assert encoded not in text, f"a base64 secret value is in the {where}"


def test_health_and_metrics_answer(
    kube: KubeServer, op_namespace: str, start_operator: Any
) -> None:
    operator = start_operator()
    target = {"name": "t", "provider": "vllm", "endpoint": "http://v:8000/v1", "model": "m"}
    apply(kube, op_namespace, _obj("Route", "m-route", {"targets": [target]}))
    wait_condition(kube, op_namespace, "llmroute", "m-route")
    health = httpx.get(operator.health_url, timeout=5.0)
    assert health.status_code == 200
    assert health.json()["reconcilers"] == 4
    metrics = httpx.get(operator.metrics_url, timeout=5.0).text
    assert 'llm_infra_operator_reconciles_total{kind="Route",result="ok"}' in metrics
    assert 'llm_infra_operator_reconcile_duration_seconds_count{kind="Route"}' in metrics
    assert 'llm_infra_operator_resources{kind="Route"}' in metrics


def _route(name: str) -> dict[str, Any]:
    target = {"name": "t", "provider": "vllm", "endpoint": "http://v:8000/v1", "model": "m"}
    return _obj("Route", name, {"targets": [target]})


def _peers(kube: KubeServer, namespace: str) -> dict[str, Any]:
    found = get(kube, namespace, "kopfpeerings.kopf.dev", "llm-infra")
    peers: dict[str, Any] = (found or {}).get("status") or {}
    return peers


def _reconciles(operator: OperatorProcess, kind: str) -> float:
    return operator.metric(f'llm_infra_operator_reconciles_total{{kind="{kind}"')


def test_drift_is_repaired_by_the_resync_loop(
    kube: KubeServer, op_namespace: str, start_operator: Any
) -> None:
    start_operator()  # resync every 3 s (the module's settings)
    apply(kube, op_namespace, _route("drift"))
    wait_condition(kube, op_namespace, "llmroute", "drift")
    table = "llmroute-drift"
    assert get(kube, op_namespace, "configmap", table) is not None
    # Deleted by hand: no watch brings it back (the operator does not watch its outputs),
    # the periodic drift check does.
    kube.kubectl("delete", "configmap", table, "-n", op_namespace)
    wait_for(
        "the table ConfigMap back",
        lambda: get(kube, op_namespace, "configmap", table) is not None,
        timeout=15,
    )


def test_replicas_with_peering_run_one_at_a_time(
    kube: KubeServer, op_namespace: str, start_operator: Any, tmp_path: Path
) -> None:
    crds = tmp_path / "peering-crds.yaml"
    crds.write_text(peering.render())
    kube.kubectl("apply", "-f", str(crds))
    kube.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev")
    apply(kube, op_namespace, peering.peering("llm-infra", op_namespace))

    leader = start_operator(peering="llm-infra", priority="20")
    follower = start_operator(peering="llm-infra", priority="10")
    # Both replicas record themselves in the peering object; the follower starts paused and
    # stays so while a live peer has a higher priority.
    wait_for("both replicas in the peering object", lambda: len(_peers(kube, op_namespace)) == 2)
    apply(kube, op_namespace, _route("led"))
    wait_condition(kube, op_namespace, "llmroute", "led")
    assert _reconciles(leader, "Route") >= 1
    assert _reconciles(follower, "Route") == 0

    leader.stop()  # a clean stop removes it from the peering object: the follower resumes
    wait_for("the follower to resume", lambda: "Resuming operations" in follower.log())
    apply(kube, op_namespace, _route("followed"))
    wait_condition(kube, op_namespace, "llmroute", "followed")
    assert _reconciles(follower, "Route") >= 1
