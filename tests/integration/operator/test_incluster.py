"""The in-cluster path end to end: the operator writes, the control plane serves what it wrote.

The control plane runs as in a cluster (`--no-resources`, fed from the API
server: LLM_INFRA_KUBE_FEEDS, as a user bound only to the generated namespaced
role), sharing NATS with the module's operator. A user applies CRs with kubectl
and reads the results through the SDK client only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_infra import audit, errors
from llm_infra.client import AppendAuditEventsResponse, ConfigVersion, ControlPlaneClient
from tests.integration.operator.support import apply, eventually, wait_condition
from tests.servers.controlplane import ControlPlaneProcess, grant_controlplane_namespace
from tests.servers.kube import KubeServer
from tests.servers.operator import OperatorProcess

REPO = Path(__file__).resolve().parents[3]
DEADLINE = 30.0


@pytest.fixture(scope="module")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory, kube: KubeServer, op_namespace: str, nats_url: str
) -> Iterator[ControlPlaneProcess]:
    """The control plane in its in-cluster role, watching the module's namespace.

    As the chart deploys it with `watch_namespace`: bound to the namespaced role there, only.
    """
    kubeconfig = grant_controlplane_namespace(kube, op_namespace)
    env = {
        "LLM_INFRA_KUBE_FEEDS": "true",
        "LLM_INFRA_KUBECONFIG": str(kubeconfig),
        "LLM_INFRA_WATCH_NAMESPACE": op_namespace,
    }
    workdir = tmp_path_factory.mktemp("controlplane")
    with ControlPlaneProcess(workdir, nats_url=nats_url, env=env) as process:
        yield process


@pytest.fixture
async def client(control_plane: ControlPlaneProcess) -> AsyncIterator[ControlPlaneClient]:
    async with ControlPlaneClient(control_plane.url, token=control_plane.token) as cp:
        yield cp


def _example(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((REPO / "examples" / name).read_text()) if doc]


async def _served(cp: ControlPlaneClient, namespace: str, name: str, content_hash: str) -> Any:
    """The document once the control plane serves the version with `content_hash`."""

    async def probe() -> Any:
        with contextlib.suppress(errors.NotFound):
            version = await cp.get_config(namespace, name)
            if version is not None and version.content_hash == content_hash:
                return version.document
        return None

    return await eventually(f"config {namespace}/{name} at {content_hash[:12]}", probe)


async def test_a_configsource_the_operator_publishes_is_served_and_pushed_to_watchers(
    kube: KubeServer,
    op_namespace: str,
    operator: OperatorProcess,
    client: ControlPlaneClient,
) -> None:
    source, overrides = _example("configsource-quickstart.yaml")
    await asyncio.to_thread(apply, kube, op_namespace, source, overrides)
    ready = await asyncio.to_thread(wait_condition, kube, op_namespace, "cfgsrc", "rag-app")

    document = await _served(client, op_namespace, "rag-app", ready["status"]["contentHash"])
    assert document["retrieval"] == {"collection": "quickstart", "k": 8}  # the override won

    versions: asyncio.Queue[ConfigVersion] = asyncio.Queue()

    async def follow() -> None:
        async for version in client.watch_config(op_namespace, "rag-app"):
            await versions.put(version)

    watching = asyncio.create_task(follow())
    try:
        first = await asyncio.wait_for(versions.get(), DEADLINE)
        assert first.content_hash == ready["status"]["contentHash"]
        overrides["data"]["overrides.yaml"] = "retrieval:\n  k: 12\n"
        await asyncio.to_thread(apply, kube, op_namespace, overrides)
        pushed = await asyncio.wait_for(versions.get(), DEADLINE)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    assert pushed.document["retrieval"]["k"] == 12
    assert pushed.version == first.version + 1
    status = await asyncio.to_thread(wait_condition, kube, op_namespace, "cfgsrc", "rag-app")
    assert pushed.content_hash == status["status"]["contentHash"]


async def test_an_auditsink_the_operator_ensures_takes_events_and_delivers_them(
    kube: KubeServer,
    op_namespace: str,
    operator: OperatorProcess,
    control_plane: ControlPlaneProcess,
    client: ControlPlaneClient,
) -> None:
    (sink,) = _example("auditsink-quickstart.yaml")
    # As written: in a cluster the file lands below the data folder, in the namespace's folder.
    path = sink["spec"]["sinks"][0]["file"]["path"]
    trail = control_plane.data / "audit-sinks" / op_namespace / path.removeprefix("/")
    await asyncio.to_thread(apply, kube, op_namespace, sink)
    await asyncio.to_thread(wait_condition, kube, op_namespace, "asink", "quickstart")

    event = audit.AuditEvent(
        actor=audit.Actor(id="alice", kind="user"),
        action="chat.completions",
        resource=audit.Resource(kind="Route", namespace=op_namespace, name="chat"),
        outcome="success",
    )

    async def append() -> AppendAuditEventsResponse | None:
        # The feed serves the sink once it has seen the AuditSink: until then, 404.
        with contextlib.suppress(errors.NotFound):
            return await client.append_audit_events(op_namespace, "quickstart", [event])
        return None

    appended = await eventually("the sink served", append)
    assert [record.id for record in appended.records] == [event.id]

    async def written() -> bool:
        return trail.exists() and bool(trail.read_text().strip())

    await eventually(f"a record in {trail.name}", written)
    delivered = [json.loads(line) for line in trail.read_text().splitlines()]
    assert [record["id"] for record in delivered] == [event.id]
    assert (await client.verify_audit(op_namespace, "quickstart")).ok
