"""The control plane in a cluster: its feeds against the real API server, NATS and the app's API.

What the operator writes is created the way the operator writes it (its own
`decide_*` functions: tests may import the operator, the control plane may
not), with kubectl, as the operator's user would; the app runs with
`kube_feeds` on and is read through its HTTP API, the config watch over a real
socket (httpx's ASGI transport buffers whole responses). The feeds authenticate
as users bound only to the generated RBAC (feeds/rbac.py), so a missing rule fails here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import nats.js.errors
import pytest
import uvicorn
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI

from llm_infra import audit, config, errors, router
from llm_infra import kube as k8s
from llm_infra.api.v1alpha1 import AuditSink, Route
from llm_infra.api.v1alpha1.configsource import ConfigSourceSpec
from llm_infra.client import ConfigVersion, ControlPlaneClient
from llm_infra_controlplane.feeds.feeds import SECRET_ANNOTATION, SOURCE_LABEL, Feeds
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from llm_infra_controlplane.vectors.registry import CollectionRegistry
from llm_infra_operator.reconcilers.configsource import decide_outputs
from llm_infra_operator.reconcilers.route import decide_table_configmap
from tests.integration.operator.conftest import operator_kubeconfig  # noqa: F401  installs CRDs
from tests.servers._process import free_port
from tests.servers.controlplane import controlplane_user, grant_controlplane_namespace
from tests.servers.kube import KubeServer
from tests.support import eventually

pytestmark = pytest.mark.usefixtures("operator_kubeconfig")

REPO = Path(__file__).resolve().parents[3]
DEADLINE = 15.0
"""Bound of every wait on the feeds (a watch event normally arrives within milliseconds)."""
T = TypeVar("T")


async def _until_async(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    found: T = await eventually(what, probe, timeout=DEADLINE)
    return found


async def _until(probe: Callable[[], T | None], what: str) -> T:
    found: T = await eventually(what, probe, timeout=DEADLINE)
    return found


def _apply(kube_: KubeServer, namespace: str, *manifests: Mapping[str, Any]) -> None:
    path = kube_.workdir / f"apply-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)}))
    kube_.kubectl("apply", "--server-side", "--force-conflicts", "-n", namespace, "-f", str(path))


def _delete(kube_: KubeServer, namespace: str, *objects: str) -> None:
    kube_.kubectl("delete", "-n", namespace, "--wait=false", *objects)


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield  # the test runner keeps its signals


@contextlib.asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[tuple[FastAPI, str]]:
    """The app with its lifespan, served on a free port (lifespan run here, not by uvicorn)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        port = free_port()
        server = _Uvicorn(
            uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        await _until(lambda: server.started or task.done(), "uvicorn started")
        try:
            yield app, f"http://127.0.0.1:{port}"
        finally:
            app.state.configs.close()  # open watch streams end, so uvicorn can stop
            server.should_exit = True
            await task


def _settings(tmp_path: Path, nats_url: str, kubeconfig: Path, **fields: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        nats_url=nats_url,
        auth_mode="none",  # authentication is tested on its own (controlplane/test_access.py)
        standalone_admin_key=False,
        kube_feeds=True,
        kubeconfig=kubeconfig,
        **fields,
    )


@pytest.fixture
async def served(
    tmp_path: Path, nats_url: str, kube: KubeServer, namespace: str
) -> AsyncIterator[tuple[FastAPI, ControlPlaneClient]]:
    """The app feeding from `namespace` with the namespaced role only, synced once; its client."""
    kubeconfig = grant_controlplane_namespace(kube, namespace)
    settings = _settings(tmp_path, nats_url, kubeconfig, watch_namespace=namespace)
    async with _running(settings) as (app, url):
        feeds: Feeds = app.state.feeds
        async with asyncio.timeout(DEADLINE):
            await feeds.synced()
        assert feeds.ready() is None
        async with ControlPlaneClient(url) as client:
            yield app, client


async def test_the_feeds_log_in_with_an_exec_plugin(
    tmp_path: Path, nats_url: str, kube: KubeServer, namespace: str
) -> None:
    grant_controlplane_namespace(kube, namespace)
    plugin = kube.exec_kubeconfig_for(controlplane_user(namespace))
    settings = _settings(tmp_path, nats_url, plugin.kubeconfig, watch_namespace=namespace)
    _apply(kube, namespace, *await _outputs(namespace, {"model": "small"}, "json"))
    async with _running(settings) as (app, url):
        feeds: Feeds = app.state.feeds
        async with asyncio.timeout(DEADLINE):
            await feeds.synced()
        async with ControlPlaneClient(url) as client:
            version = await _until_async(lambda: _get(client, namespace), "config app served")
    assert version.document == {"model": "small"}
    assert len(plugin.calls) == 1


# -- ConfigSource outputs ----------------------------------------------------------------------


async def _outputs(namespace: str, values: Mapping[str, Any], fmt: str) -> list[dict[str, Any]]:
    """The ConfigMap and Secret the operator writes for ConfigSource `app` with `values`."""
    spec = ConfigSourceSpec.model_validate(
        {
            "layers": [{"name": "base", "inline": dict(values)}],
            "sensitiveKeys": ["/db/password"],
            "target": {"format": fmt, "deletionPolicy": "Retain"},
        }
    )
    resolution = await config.resolve_config_source(spec, config.DictObjectReader())
    assert resolution.valid, resolution.problems
    outputs = decide_outputs(namespace, "app", spec, resolution, {})
    if len(outputs) == 2:  # the ConfigMap names its Secret: the feed waits for it
        assert outputs[0]["metadata"]["annotations"][SECRET_ANNOTATION] == "app"
    return outputs


async def _get(client: ControlPlaneClient, namespace: str) -> ConfigVersion | None:
    with contextlib.suppress(errors.NotFound):
        return await client.get_config(namespace, "app")
    return None


async def test_config_outputs_are_served_watched_and_removed(
    served: tuple[FastAPI, ControlPlaneClient], kube: KubeServer, namespace: str
) -> None:
    _, client = served
    first = {"db": {"host": "db", "password": "s3cret"}, "model": "small"}
    _apply(kube, namespace, *await _outputs(namespace, first, "json"))

    version = await _until_async(lambda: _get(client, namespace), "config app served")
    assert version.document == first  # the Secret's part merged back
    assert version.content_hash == config.content_hash(first)
    assert version.etag == f'"{config.content_hash(first)}"'

    watch = client.watch_config(namespace, "app")
    seen = await anext(watch)
    assert seen.content_hash == version.content_hash
    second = {**first, "model": "large"}
    _apply(kube, namespace, *await _outputs(namespace, second, "json"))
    async with asyncio.timeout(DEADLINE):
        pushed = await anext(watch)
    assert (pushed.version, pushed.document) == (version.version + 1, second)

    _delete(kube, namespace, "configmap/app", "secret/app")
    async with asyncio.timeout(DEADLINE):
        assert [v async for v in watch] == []  # the stream ends with the config
    with pytest.raises(errors.NotFound):
        await client.get_config(namespace, "app")


async def test_env_outputs_serve_the_flat_mapping(
    served: tuple[FastAPI, ControlPlaneClient], kube: KubeServer, namespace: str
) -> None:
    _, client = served
    values = {"db": {"host": "db", "password": "s3cret"}, "replicas": 3}
    _apply(kube, namespace, *await _outputs(namespace, values, "env"))
    version = await _until_async(lambda: _get(client, namespace), "config app served")
    assert version.document == {"DB_HOST": "db", "DB_PASSWORD": "s3cret", "REPLICAS": "3"}
    assert version.content_hash == config.content_hash(values)


@pytest.mark.parametrize("fmt", ["yaml", "env"])
async def test_a_configmap_is_not_served_without_its_secret(
    served: tuple[FastAPI, ControlPlaneClient], kube: KubeServer, namespace: str, fmt: str
) -> None:
    _, client = served
    values = {"db": {"password": "s3cret"}, "a": 1}
    # yaml: the content hash proves the part missing; env: the ConfigMap names its Secret.
    config_map, secret = await _outputs(namespace, values, fmt)
    _apply(kube, namespace, config_map)
    # The watch delivers in order: once a later ConfigSource is served, `app` was seen.
    later = (await _outputs(namespace, {"b": 2}, "yaml"))[0]
    later["metadata"] |= {"name": "later", "labels": {SOURCE_LABEL: "later"}}
    _apply(kube, namespace, later)
    await _until_async(lambda: _get_named(client, namespace, "later"), "later served")
    assert await _get(client, namespace) is None
    _apply(kube, namespace, secret)
    version = await _until_async(lambda: _get(client, namespace), "config app served")
    # env: one key per leaf; the emptied object `db` is a leaf of the ConfigMap's part.
    expected = values if fmt == "yaml" else {"A": "1", "DB": "{}", "DB_PASSWORD": "s3cret"}
    assert version.document == expected


async def _get_named(client: ControlPlaneClient, namespace: str, name: str) -> bool:
    with contextlib.suppress(errors.NotFound):
        return bool(await client.get_config(namespace, name))
    return False


# -- route tables ------------------------------------------------------------------------------


async def test_route_tables_follow_their_configmaps(
    served: tuple[FastAPI, ControlPlaneClient], kube: KubeServer, namespace: str
) -> None:
    app, _ = served
    manifest = yaml.safe_load((REPO / "examples" / "route-chat.yaml").read_text())
    route = Route.model_validate(manifest)
    table = router.compile_route(namespace, "chat", route.spec, generation=1)
    body = {
        "apiVersion": "infra.llmdevops.io/v1alpha1",
        "kind": "Route",
        "metadata": {"name": "chat", "namespace": namespace, "uid": str(uuid.uuid4())},
    }
    _apply(kube, namespace, decide_table_configmap(body, table))
    served_table = await _until(lambda: app.state.routes.get((namespace, "chat")), "table")
    assert served_table == table
    _delete(kube, namespace, f"configmap/{router.route_table_configmap_name('chat')}")
    await _until(lambda: (namespace, "chat") not in app.state.routes, "table removed")


# -- AuditSinks --------------------------------------------------------------------------------


async def test_an_auditsink_is_served_on_the_operators_stream_until_it_is_deleted(
    served: tuple[FastAPI, ControlPlaneClient],
    kube: KubeServer,
    namespace: str,
    tmp_path: Path,
    nats_url: str,
) -> None:
    app, client = served
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signing = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "audit-signing"},
        "stringData": {"key.pem": key.decode()},
    }
    # A tenant's file sink writes below the data folder, in its namespace's own folder.
    trail = tmp_path / "data" / "audit-sinks" / namespace / "trail" / "audit.jsonl"
    sink = {
        "apiVersion": "infra.llmdevops.io/v1alpha1",
        "kind": "AuditSink",
        "metadata": {"name": "trail"},
        "spec": {
            "stream": {"storage": "memory", "replicas": 1},
            "deletionPolicy": "Delete",
            "sinks": [{"name": "file", "file": {"path": "/trail/audit.jsonl"}}],
            "tamperEvidence": {
                "checkpointEvery": 2,
                "signingKeySecretRef": {"name": "audit-signing", "key": "key.pem"},
            },
        },
    }
    _apply(kube, namespace, signing, sink)
    spec = AuditSink.model_validate({**sink, "metadata": {"name": "trail"}}).spec
    stream = audit.stream_name(namespace, "trail", spec)
    # In a cluster the operator writes the stream: until it has, the control plane waits.
    feeds: Feeds = app.state.feeds
    await _until(lambda: feeds.reconciler.failures.get(("AuditSink", namespace, "trail")), "wait")
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info(stream)  # the control plane created nothing
        await audit.ensure_audit_stream(js, namespace, "trail", spec)  # what the operator does
    finally:
        await nc.close()

    async def appended() -> bool:
        with contextlib.suppress(errors.NotFound):
            await client.append_audit_events(namespace, "trail", [_event(namespace)])
            return True
        return False

    await _until_async(appended, "AuditSink trail served")
    await client.append_audit_events(namespace, "trail", [_event(namespace)])

    def delivered() -> list[dict[str, Any]] | None:
        lines = trail.read_text().splitlines() if trail.is_file() else []
        records = [json.loads(line) for line in lines if '"action"' in line]
        return records if len(records) >= 2 else None

    records = await _until(delivered, "delivery to the file sink")
    assert [(r["seq"], r["action"]) for r in records] == [(1, "config.read"), (2, "config.read")]
    # The signing key came from the Secret: the checkpoint after two events verifies.
    verification = await client.verify_audit(namespace, "trail")
    assert verification.ok, verification.reason
    assert verification.checkpoints >= 1

    _delete(kube, namespace, "auditsink/trail")
    await _until_async(lambda: _gone(client, namespace), "AuditSink trail removed")
    # deletionPolicy Delete is the operator's to carry out: the control plane deleted nothing.
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream)
        assert info.state.messages >= 2
    finally:
        await nc.close()


def _event(namespace: str) -> audit.AuditEvent:
    return audit.AuditEvent(
        actor=audit.Actor(id="alice", kind="user"),
        action="config.read",
        resource=audit.Resource(kind="ConfigSource", namespace=namespace, name="app"),
        outcome="success",
    )


async def _gone(client: ControlPlaneClient, namespace: str) -> bool:
    try:
        await client.append_audit_events(namespace, "trail", [_event(namespace)])
    except errors.NotFound:
        return True
    return False


# -- VectorCollections on a Qdrant server ------------------------------------------------------


async def test_a_qdrant_collection_is_served_with_its_api_key(
    served: tuple[FastAPI, ControlPlaneClient], kube: KubeServer, namespace: str
) -> None:
    app, _ = served
    registry: CollectionRegistry = app.state.collections
    manifest = yaml.safe_load((REPO / "examples" / "vectorcollection-rag.yaml").read_text())
    # https: qdrant-client warns about an API key sent in clear (an error under -W error).
    manifest["spec"]["backend"]["qdrant"]["url"] = "https://qdrant.example:6333"
    api_key = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "qdrant-api-key"},
        "stringData": {"api-key": "k-123"},
    }
    _apply(kube, namespace, api_key, manifest)

    async def store_name() -> str | None:
        with contextlib.suppress(errors.CollectionNotFound):
            return (await registry.store_of(namespace, "support-docs")).name
        return None

    assert await _until_async(store_name, "served from Qdrant") == f"{namespace}.support-docs"
    _delete(kube, namespace, "vectorcollection/support-docs")
    await _until_async(lambda: _not(store_name), "forgotten")


async def _not(probe: Callable[[], Awaitable[object]]) -> bool:
    return not await probe()


# -- the informer: relist after 410, RBAC refusals ---------------------------------------------


async def test_a_watch_broken_by_a_restart_lists_again(kube: KubeServer, namespace: str) -> None:
    """The API server restarts while the feed is away: its resourceVersion is gone (410)."""
    applied: dict[str, str] = {}
    deleted: list[str] = []

    async def on_apply(obj: dict[str, Any]) -> None:
        applied[obj["metadata"]["name"]] = obj["metadata"]["resourceVersion"]

    async def on_delete(obj: dict[str, Any]) -> None:
        deleted.append(obj["metadata"]["name"])

    def config_map(name: str) -> dict[str, Any]:
        metadata = {"name": name, "labels": {"feed": "test"}}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": name}}

    client = await k8s.Kube.connect(kube.kubeconfig, component="informer-test")
    informer = k8s.Informer(
        client, k8s.CONFIGMAPS, namespace=namespace, labels={"feed": "test"},
        on_apply=on_apply, on_delete=on_delete,
    )  # fmt: skip
    _apply(kube, namespace, config_map("old"))
    task = asyncio.create_task(informer.run())
    try:
        await _until(lambda: "old" in applied, "first list")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # While the feed is away: one object goes, another comes, the API server restarts
        # (its watch cache starts after the feed's resourceVersion).
        _delete(kube, namespace, "configmap/old")
        _apply(kube, namespace, config_map("new"))
        kube.stop()
        kube.start()
        task = asyncio.create_task(informer.run())
        await _until(lambda: "new" in applied and deleted == ["old"], "relist after 410")
        assert informer.relists == 2
        assert set(informer.known) == {(namespace, "new")}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


async def test_missing_rbac_is_reported_with_the_rule_to_add(
    tmp_path: Path, nats_url: str, kube: KubeServer
) -> None:
    nobody = kube.kubeconfig_for("nobody-" + uuid.uuid4().hex[:6])
    async with _running(_settings(tmp_path, nats_url, nobody)) as (app, url):
        feeds: Feeds = app.state.feeds
        why = await _until(
            lambda: (feeds.ready() or "") if "forbids" in (feeds.ready() or "") else None,
            "the refusal reported",
        )
        async with httpx.AsyncClient(base_url=url) as http:
            readiness = await http.get("/readyz")
    assert readiness.status_code == 503
    assert "RBAC forbids" in readiness.json()["checks"]["kubernetes"]
    assert "RBAC forbids list configmaps in all namespaces" in why
    rule = '{apiGroups: [""], resources: [configmaps], verbs: [list]}'
    assert f"ClusterRole with the rule {rule}" in why
    assert "auditsinks" in why
