"""Smoke tests: each server in tests/servers is the real thing and answers as its clients expect."""

from __future__ import annotations

import asyncio
import math
import random
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import hvac
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from qdrant_client import models as qm
from qdrant_edge import (
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeVectorParams,
    HnswIndexConfig,
    Point,
    Query,
    QueryRequest,
    SearchParams,
    UpdateOperation,
)

from llm_infra import kube as k8s
from tests.servers import binaries
from tests.servers.helm import Helm
from tests.servers.kube import KubeServer
from tests.servers.nats import NatsServer
from tests.servers.openbao import OpenBao
from tests.servers.qdrant import QdrantBackend


async def test_apiserver_stores_and_watches_namespace_and_configmap(kubeconfig: Path) -> None:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    async with await k8s.Kube.connect(kubeconfig, component="smoke") as client:
        namespaces = await client.list(k8s.NAMESPACES)
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        configmaps = await client.list(k8s.CONFIGMAPS, namespace=name)
        await client.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "greeting", "namespace": name},
                "data": {"hello": "world"},
            }
        )

        async def first_added(
            kind: k8s.Kind, version: str, wanted: str, namespace: str | None = None
        ) -> Any:
            # Watch from the list's resourceVersion: the ADDED event arrives even
            # though the object was created before the watch opened.
            async with asyncio.timeout(20):
                watch = client.watch(kind, namespace=namespace, resource_version=version)
                async for event in watch:
                    if event.type == "ADDED" and event.object["metadata"]["name"] == wanted:
                        return event.object
            raise AssertionError(f"no ADDED event for {wanted}")

        added = await first_added(k8s.NAMESPACES, namespaces.resource_version, name)
        assert added["status"]["phase"] == "Active"
        seen = await first_added(
            k8s.CONFIGMAPS, configmaps.resource_version, "greeting", namespace=name
        )
        assert seen["data"] == {"hello": "world"}


def test_kubectl_get_ns_through_generated_kubeconfig(kube: KubeServer, namespace: str) -> None:
    out = kube.kubectl("get", "ns", "-o", "name").stdout.split()
    assert {f"namespace/{namespace}", "namespace/default", "namespace/kube-system"} <= set(out)
    version = kube.kubectl("version", "-o", "yaml").stdout
    assert "gitVersion: v1.37." in version  # built with version ldflags, not v0.0.0-master


def test_rbac_authorization_is_enforced(kube: KubeServer, namespace: str) -> None:
    stranger = kube.kubeconfig_for("someone-without-roles")
    with pytest.raises(subprocess.CalledProcessError) as denied:
        kube.kubectl("get", "configmaps", "-n", namespace, kubeconfig=stranger)
    assert "Forbidden" in denied.value.stderr
    # A Role of our own: the aggregated ClusterRoles (view, edit) stay empty
    # without the controller-manager that fills them.
    kube.kubectl(
        "create", "role", "cm-reader", "--verb=list", "--resource=configmaps", "-n", namespace
    )
    kube.kubectl("create", "rolebinding", "cm-reader", "--role=cm-reader",
                 "--user=someone-without-roles", "-n", namespace)  # fmt: skip
    # The authorizer reads RBAC objects through an informer: allow it to catch up.
    deadline = time.monotonic() + 10
    while True:
        result = subprocess.run(
            [str(binaries.kube_tool("kubectl")), f"--kubeconfig={stranger}", "get", "configmaps",
             "-n", namespace, "-o", "name"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode == 0 or time.monotonic() > deadline:
            break
    assert result.returncode == 0, result.stderr
    with pytest.raises(subprocess.CalledProcessError) as still_denied:
        kube.kubectl("get", "secrets", "-n", namespace, kubeconfig=stranger)
    assert "Forbidden" in still_denied.value.stderr


def test_helm_version_and_cluster_access(helm: Helm) -> None:
    assert helm.run("version", "--short").stdout.startswith("v3.22.")
    # `helm list` reads release Secrets through the API server with the test kubeconfig.
    assert helm.run("list", "--all-namespaces", "--output", "json").stdout.strip() == "[]"


async def test_jetstream_publish_and_durable_consume(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        stream = f"SMOKE_{uuid.uuid4().hex[:8]}"
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"]))
        acks = [await js.publish(f"{stream}.events", f"event-{i}".encode()) for i in range(10)]
        assert [ack.seq for ack in acks] == list(range(1, 11))

        config = ConsumerConfig(durable_name="reader", ack_policy=AckPolicy.EXPLICIT)
        sub = await js.pull_subscribe(f"{stream}.>", durable="reader", stream=stream, config=config)
        first = await sub.fetch(4, timeout=5)
        for msg in first:
            await msg.ack_sync()
        # A second subscription on the same durable resumes after the acked messages.
        await sub.unsubscribe()
        again = await js.pull_subscribe(f"{stream}.>", durable="reader", stream=stream)
        rest = await again.fetch(6, timeout=5)
        for msg in rest:
            await msg.ack_sync()
        assert [m.data.decode() for m in [*first, *rest]] == [f"event-{i}" for i in range(10)]
        info = await js.consumer_info(stream, "reader")
        assert info.num_pending == 0
        assert info.delivered.stream_seq == 10
    finally:
        await nc.close()


async def test_jetstream_state_survives_restart(nats_server: NatsServer) -> None:
    stream = f"DURABLE_{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[stream]))
    await js.publish(stream, b"kept")
    await nc.close()

    await asyncio.to_thread(nats_server.restart)

    nc = await nats.connect(nats_server.url)
    try:
        msg = await nc.jetstream().get_msg(stream, 1)
        assert msg.data == b"kept"
    finally:
        await nc.close()


def test_openbao_kv_v2_write_and_read(bao: OpenBao) -> None:
    vault = hvac.Client(url=bao.url, token=bao.token)
    assert vault.is_authenticated()
    path = f"smoke/{uuid.uuid4().hex[:8]}"
    vault.secrets.kv.v2.create_or_update_secret(path, secret={"api_key": "v1"})
    vault.secrets.kv.v2.create_or_update_secret(path, secret={"api_key": "v2"})
    read = vault.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"api_key": "v2"}
    assert read["data"]["metadata"]["version"] == 2
    first = vault.secrets.kv.v2.read_secret_version(path, version=1, raise_on_deleted_version=True)
    assert first["data"]["data"] == {"api_key": "v1"}


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def test_qdrant_edge_upsert_optimize_search(edge_shard_dir: Path) -> None:
    rng = random.Random(7)
    dim = 32
    vectors = [_unit([rng.gauss(0, 1) for _ in range(dim)]) for _ in range(100)]
    config = EdgeConfig(
        vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
        # Small thresholds so 100 points (12.8 KB) get an HNSW graph and the
        # search goes through it rather than a plain scan.
        hnsw_config=HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=1),
        optimizers=EdgeOptimizersConfig(indexing_threshold=1),
    )
    edge_shard_dir.mkdir()
    shard = EdgeShard.create(str(edge_shard_dir), config)
    try:
        points = [Point(i, v, {"parity": i % 2}) for i, v in enumerate(vectors)]
        shard.update(UpdateOperation.upsert_points(points))
        assert shard.optimize() is True
        info = shard.info()
        assert info.points_count == 100
        assert info.indexed_vectors_count == 100

        query = vectors[42]
        hits = shard.query(
            QueryRequest(
                query=Query.Nearest(query), limit=5, params=SearchParams(hnsw_ef=64),
                with_payload=True, with_vector=False,
            )
        )  # fmt: skip
        exact = sorted(
            range(100), key=lambda i: -sum(a * b for a, b in zip(vectors[i], query, strict=True))
        )
        assert [hit.id for hit in hits] == exact[:5]
        assert hits[0].payload == {"parity": 0}
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        shard.close()

    # Reopening the directory yields the persisted points and config.
    reopened = EdgeShard.load(str(edge_shard_dir))
    try:
        assert reopened.info().points_count == 100
    finally:
        reopened.close()


def test_qdrant_api_backend_roundtrip(qdrant_backend: QdrantBackend) -> None:
    client = qdrant_backend.client
    name = f"smoke_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT))
    try:
        client.upsert(name, [qm.PointStruct(id=i, vector=[float(i), 1, 0, 0]) for i in range(10)])
        hits = client.query_points(name, query=[1.0, 0, 0, 0], limit=3).points
        assert [hit.id for hit in hits] == [9, 8, 7]
    finally:
        client.delete_collection(name)


def test_servers_bind_loopback_only(
    nats_server: NatsServer, bao: OpenBao, kube: KubeServer
) -> None:
    for url in (nats_server.url, nats_server.monitor_url, bao.url, kube.url):
        assert "//127.0.0.1:" in url


def test_failed_test_report_carries_server_log(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(binaries.REPO))
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(
        """
        def test_fails(nats_server):
            assert nats_server.url == "not this"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*server log: nats-server*", "*Server is ready*"])


def test_stop_ends_the_server(tmp_path: Path) -> None:
    server = NatsServer(tmp_path).start()
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.monitor_url}/healthz", timeout=1.0)


async def test_redis_streams_add_and_group_read(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        stream = f"smoke-{uuid.uuid4().hex[:8]}"
        ids = [await client.xadd(stream, {"n": str(i)}) for i in range(5)]
        await client.xgroup_create(stream, "readers", id="0")
        read: Any = await client.xreadgroup("readers", "c1", {stream: ">"}, count=10)
        assert [entry_id for entry_id, _ in read[0][1]] == ids
        assert await client.xack(stream, "readers", *ids) == 5
    finally:
        await client.aclose()
