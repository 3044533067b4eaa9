"""The error mappings against what the real servers answer, not against hand-built bodies."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import hvac
import nats
import pytest
from qdrant_client import models as qm

from llm_infra import errors
from llm_infra import kube as k8s
from tests.servers._process import free_port
from tests.servers.kube import KubeServer
from tests.servers.openbao import OpenBao
from tests.servers.qdrant import QdrantBackend

VAULT_TOKEN = "hvs.CAESIJ3xY9sEcReTtOkEnThAtMuStNeVeRlEaK"


def _leaks(error: errors.InfraError, secret: str) -> bool:
    shown = [str(error), repr(error), json.dumps(error.to_problem().model_dump(mode="json"))]
    return any(secret in text for text in shown)


def test_openbao_missing_secret_is_not_found(bao: OpenBao) -> None:
    vault = hvac.Client(url=bao.url, token=bao.token)
    with pytest.raises(errors.NotFound) as caught, errors.translate():
        vault.secrets.kv.v2.read_secret_version("does/not/exist", raise_on_deleted_version=True)
    error = caught.value
    assert (error.service, error.status_code, error.is_retryable()) == ("openbao", 404, False)
    assert error.operation == "GET /v1/secret/data/does/not/exist"


def test_openbao_rejects_unknown_token_without_echoing_it(bao: OpenBao) -> None:
    vault = hvac.Client(url=bao.url, token=VAULT_TOKEN)
    with pytest.raises(errors.AuthError) as caught, errors.translate():
        vault.secrets.kv.v2.read_secret_version("anything", raise_on_deleted_version=True)
    assert caught.value.status in (401, 403)
    assert not _leaks(caught.value, VAULT_TOKEN)


def test_openbao_unreachable_is_a_retryable_connect_error() -> None:
    vault = hvac.Client(url=f"http://127.0.0.1:{free_port()}", token=VAULT_TOKEN, timeout=2)
    with pytest.raises(errors.HttpConnectError) as caught, errors.translate():
        vault.secrets.kv.v2.read_secret_version("anything", raise_on_deleted_version=True)
    assert caught.value.is_retryable()
    assert not _leaks(caught.value, VAULT_TOKEN)


def _configmap(namespace: str, name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"a": "b"},
    }


async def test_kubernetes_conflict_not_found_and_invalid(kubeconfig: Path, namespace: str) -> None:
    async with await k8s.Kube.connect(kubeconfig, component="errors-test") as client:
        await client.create(_configmap(namespace, "twice"))
        with pytest.raises(errors.Conflict) as conflict:
            await client.create(_configmap(namespace, "twice"))
        assert (conflict.value.service, conflict.value.status_code) == ("kubernetes", 409)
        assert await client.get(k8s.CONFIGMAPS, namespace, "absent") is None
        with pytest.raises(errors.ValidationError) as invalid:
            await client.create(_configmap(namespace, "Not_A_DNS_Name"))
    assert invalid.value.field == "metadata.name"
    problem = invalid.value.to_problem().model_dump(mode="json", by_alias=True, exclude_none=True)
    assert problem["status"] == 422
    assert problem["errors"][0]["field"] == "metadata.name"


async def test_kubernetes_rbac_denial_is_insufficient_permissions(
    kube: KubeServer, namespace: str
) -> None:
    stranger = kube.kubeconfig_for("error-mapping-stranger")
    async with await k8s.Kube.connect(stranger, component="errors-test") as client:
        with pytest.raises(errors.InsufficientPermissions) as caught:
            await client.list(k8s.SECRETS, namespace=namespace)
    assert caught.value.status == 403
    assert "resources: [secrets], verbs: [list]" in str(caught.value)


async def test_kubernetes_unreachable_is_a_retryable_connect_error() -> None:
    nobody = k8s.Credentials(server=f"https://127.0.0.1:{free_port()}", insecure=True)
    async with k8s.Kube(nobody, component="errors-test", timeout=2) as client:
        with pytest.raises(errors.HttpConnectError) as caught:
            await client.list(k8s.NAMESPACES)
    assert caught.value.is_retryable()


async def test_jetstream_missing_stream_and_closed_connection(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        with pytest.raises(errors.MessageQueueNotFound) as caught, errors.translate():
            await nc.jetstream().stream_info(f"MISSING_{uuid.uuid4().hex[:6]}")
        assert caught.value.status_code == 404
        assert not caught.value.is_retryable()
    finally:
        await nc.close()

    # A closed connection: what a publisher sees while NATS restarts.
    with pytest.raises(errors.MessageQueueError) as closed, errors.translate():
        await nc.publish("anything", b"lost")
    assert closed.value.operation == errors.MqOperation.CONNECT
    assert closed.value.is_retryable()


def test_qdrant_missing_collection_and_wrong_dimension(qdrant_backend: QdrantBackend) -> None:
    client = qdrant_backend.client
    with pytest.raises(errors.CollectionNotFound), errors.translate(errors.from_qdrant):
        client.query_points(f"absent_{uuid.uuid4().hex[:6]}", query=[1.0, 0.0], limit=1)

    name = f"dims_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT))
    try:
        with (
            pytest.raises(errors.DimensionMismatch) as caught,
            errors.translate(errors.from_qdrant),
        ):
            client.upsert(name, [qm.PointStruct(id=1, vector=[1.0, 2.0, 3.0])])
        assert (caught.value.expected, caught.value.actual) == (4, 3)
        assert caught.value.status == 422
    finally:
        client.delete_collection(name)
