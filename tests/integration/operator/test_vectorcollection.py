"""VectorCollection through the real operator and API server, on Qdrant and the embedded core.

`backend.qdrant` collections run on qdrant-client's local mode in the
operator (the CI stand-in for a Qdrant server); `backend.embedded` ones on the
control plane's qdrant-edge shards, through its admin API, as in a cluster.
"""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any

import pytest

from llm_infra.client import ControlPlaneClient
from llm_infra.vector import CollectionConfig, EdgeStore, Point
from tests.corpus import EXAMPLES
from tests.integration.operator.support import (
    apply,
    condition,
    events,
    get,
    wait_condition,
    wait_for,
)
from tests.servers.controlplane import ControlPlaneProcess
from tests.servers.kube import KubectlError, KubeServer
from tests.servers.operator import OperatorProcess

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture(scope="module")
def operator_settings(operator_settings: dict[str, str]) -> dict[str, str]:
    # No periodic resync: what happens in a test was caused by a watch event or a retry.
    return operator_settings | {"LLM_INFRA_OPERATOR_RESYNC_INTERVAL": "600"}


def collection(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "backend": {"embedded": {}},
        "vectors": {"size": 8, "distance": "Cosine"},
        "search": {"hnswEf": 32},
    }
    return {
        "apiVersion": "infra.llmdevops.io/v1alpha1",
        "kind": "VectorCollection",
        "metadata": {"name": name},
        "spec": base | spec,
    }


def info(control_plane: ControlPlaneProcess, namespace: str, name: str) -> Any:
    async def read() -> Any:
        async with ControlPlaneClient(control_plane.url, token=control_plane.token) as cp:
            return await cp.collection_info(namespace, name, f"{namespace}.{name}")

    return asyncio.run(read())


def test_example_is_ready_for_kubectl_wait(
    kube: KubeServer, op_namespace: str, control_plane: ControlPlaneProcess
) -> None:
    kube.kubectl(
        "apply", "-n", op_namespace, "-f", str(EXAMPLES / "vectorcollection-quickstart.yaml")
    )
    kube.kubectl(
        "wait", "-n", op_namespace, "--for=condition=Ready", "--timeout=30s", "vc/quickstart"
    )
    status = get(kube, op_namespace, "vc", "quickstart")["status"]  # type: ignore[index]
    assert status["backend"] == "embedded"
    assert status["collectionName"] == f"{op_namespace}.quickstart"
    assert status["search"] == {"hnswEf": 64, "exact": False}
    assert status["embeddingModel"]["dimensions"] == 384
    types = [(c["type"], c["status"], c["reason"]) for c in status["conditions"]]
    assert types == [
        ("Ready", "True", "CollectionReady"),
        ("BackendReachable", "True", "Connected"),
        ("SpecApplied", "True", "Created"),
    ]
    stored = info(control_plane, op_namespace, "quickstart")
    assert stored.config.dimensions == 384
    assert stored.config.payload_indexes == {"source": "keyword"}
    reasons = {e["reason"] for e in events(kube, op_namespace, "quickstart")}
    assert {"CollectionReady", "Connected", "Created"} <= reasons


def test_qdrant_backend_update_follows_generation(kube: KubeServer, op_namespace: str) -> None:
    vc = collection("docs", backend={"qdrant": {"url": "http://qdrant.example:6333"}})
    apply(kube, op_namespace, vc)
    first = wait_condition(kube, op_namespace, "vc", "docs")
    assert first["status"]["backend"] == "qdrant"
    assert first["status"]["pointsCount"] == 0

    vc["spec"]["payloadIndexes"] = [{"field": "lang", "type": "keyword"}]
    vc["spec"]["search"] = {"hnswEf": 128}
    apply(kube, op_namespace, vc)
    second = wait_condition(kube, op_namespace, "vc", "docs")
    assert second["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert second["status"]["observedGeneration"] == second["metadata"]["generation"]
    assert second["status"]["search"]["hnswEf"] == 128
    applied = condition(second, "SpecApplied")
    assert applied is not None
    assert applied["observedGeneration"] == second["metadata"]["generation"]


def test_immutable_change_is_refused_and_data_left_alone(
    kube: KubeServer, op_namespace: str, control_plane: ControlPlaneProcess
) -> None:
    vc = collection("fixed")
    apply(kube, op_namespace, vc)
    wait_condition(kube, op_namespace, "vc", "fixed")

    # The CRD's transition rule refuses it before the operator sees it (the operator's own
    # ImmutableFieldChanged check stays, for a collection that differs from a new spec: the
    # unit tests of the reconciler cover it).
    vc["spec"]["vectors"] = {"size": 16, "distance": "Cosine"}
    with pytest.raises(KubectlError) as refused:
        apply(kube, op_namespace, vc)
    assert "spec.vectors.size" in refused.value.stderr
    assert "create a new VectorCollection" in refused.value.stderr
    assert info(control_plane, op_namespace, "fixed").config.dimensions == 8
    wait_condition(kube, op_namespace, "vc", "fixed")


def test_missing_api_key_secret_then_created(kube: KubeServer, op_namespace: str) -> None:
    backend = {"qdrant": {"url": "http://qdrant.example:6333",
                          "apiKeySecretRef": {"name": "qdrant-key", "key": "api-key"}}}  # fmt: skip
    apply(kube, op_namespace, collection("keyed", backend=backend))
    waiting = wait_condition(
        kube, op_namespace, "vc", "keyed", status="False", reason="SecretNotFound"
    )
    assert "qdrant-key" in condition(waiting)["message"]  # type: ignore[index]
    # Creating the Secret is enough: the operator watches the Secrets its resources name.
    kube.kubectl(
        "create", "secret", "generic", "qdrant-key", "-n", op_namespace,
        "--from-literal=api-key=s3cr3t-qdrant-key-value",
    )  # fmt: skip
    wait_condition(kube, op_namespace, "vc", "keyed", timeout=10)


def test_unreachable_backend_retries_then_recovers(
    kube: KubeServer, op_namespace: str, control_plane: ControlPlaneProcess
) -> None:
    control_plane.stop()
    try:
        # Seeded while the control plane is down: the collection already holds 5 points.
        seeded = EdgeStore.open(
            control_plane.data / "collections" / op_namespace / "seeded",
            CollectionConfig(dimensions=8),
        )
        asyncio.run(seeded.insert_batch([Point(i, [1.0] * 7 + [float(i)]) for i in range(5)]))
        asyncio.run(seeded.close())
        apply(kube, op_namespace, collection("seeded"))
        down = wait_condition(
            kube, op_namespace, "vc", "seeded", status="False", reason="BackendUnreachable"
        )
        reachable = condition(down, "BackendReachable")
        assert reachable is not None
        assert reachable["status"] == "False"
    finally:
        control_plane.start()
    up = wait_condition(kube, op_namespace, "vc", "seeded", timeout=20)
    assert up["status"]["pointsCount"] == 5


def test_deletion_policies(
    kube: KubeServer, op_namespace: str, control_plane: ControlPlaneProcess
) -> None:
    apply(kube, op_namespace, collection("kept"), collection("dropped", deletionPolicy="Delete"))
    kept = wait_condition(kube, op_namespace, "vc", "kept")
    dropped = wait_condition(kube, op_namespace, "vc", "dropped")
    # A finalizer only where deletion reaches outside Kubernetes.
    assert not kept["metadata"].get("finalizers")
    assert dropped["metadata"]["finalizers"] == ["infra.llmdevops.io/finalizer"]

    kube.kubectl("delete", "-n", op_namespace, "vc", "kept", "dropped", "--timeout=30s")
    assert info(control_plane, op_namespace, "kept") is not None
    assert info(control_plane, op_namespace, "dropped") is None


def test_deletion_waits_for_an_unreachable_backend(
    kube: KubeServer, op_namespace: str, control_plane: ControlPlaneProcess
) -> None:
    apply(kube, op_namespace, collection("guarded", deletionPolicy="Delete"))
    wait_condition(kube, op_namespace, "vc", "guarded")
    control_plane.stop()
    try:
        kube.kubectl("delete", "-n", op_namespace, "vc", "guarded", "--wait=false")
        blocked = wait_condition(
            kube, op_namespace, "vc", "guarded", status="False", reason="DeletionBlocked"
        )
        assert blocked["metadata"]["deletionTimestamp"]
    finally:
        control_plane.start()
    wait_for("vc/guarded gone", lambda: get(kube, op_namespace, "vc", "guarded") is None)
    assert info(control_plane, op_namespace, "guarded") is None


def test_force_reconcile_annotation(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    apply(kube, op_namespace, collection("poked"))
    before = wait_condition(kube, op_namespace, "vc", "poked")
    reconciles = operator.metric('llm_infra_operator_reconciles_total{kind="VectorCollection"')
    stamp = datetime.datetime.now(datetime.UTC).isoformat()
    kube.kubectl(
        "annotate", "-n", op_namespace, "vc", "poked",
        f"infra.llmdevops.io/reconcile-requested-at={stamp}",
    )  # fmt: skip
    wait_for(
        "a reconcile after the annotation",
        lambda: (
            operator.metric('llm_infra_operator_reconciles_total{kind="VectorCollection"')
            > reconciles
        ),
    )
    after = get(kube, op_namespace, "vc", "poked")
    assert after is not None
    assert after["status"]["observedGeneration"] == before["metadata"]["generation"]


def test_qdrant_example_is_ready_for_kubectl_wait(kube: KubeServer, op_namespace: str) -> None:
    # The example names a Qdrant server and its API key Secret; the operator of these
    # tests stands qdrant-client's local mode in for every Qdrant server.
    kube.kubectl(
        "create", "secret", "generic", "qdrant-api-key", "-n", op_namespace,
        "--from-literal=api-key=example-key-0000",
    )  # fmt: skip
    kube.kubectl("apply", "-n", op_namespace, "-f", str(EXAMPLES / "vectorcollection-rag.yaml"))
    kube.kubectl(
        "wait", "-n", op_namespace, "--for=condition=Ready", "--timeout=30s", "vc/support-docs"
    )
    status = get(kube, op_namespace, "vc", "support-docs")["status"]  # type: ignore[index]
    assert (status["backend"], status["search"]["hnswEf"]) == ("qdrant", 128)
