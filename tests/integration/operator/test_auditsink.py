"""AuditSink through the real operator, API server and NATS JetStream, checked as a user would.

The example manifest is adapted to the one test NATS server (one replica, a
small maxBytes); the stream and consumers are read back with nats-py. Each
test uses its own AuditSink, so its own stream (AUDIT_<namespace>_<name>).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.js.errors
import yaml
from nats.aio.client import Client as NatsClient
from nats.js import api

from llm_infra import audit, mq
from tests.integration.operator.support import apply, events, get, wait_condition, wait_for
from tests.servers.kube import KubeServer
from tests.servers.operator import OperatorProcess

T = TypeVar("T")
EXAMPLE = Path(__file__).parents[3] / "examples" / "auditsink-platform.yaml"
SMALL = 64 * 1024 * 1024  # the example's 50 GiB may be more than the test server can reserve
RECORDS = 5
FINALIZER = "infra.llmdevops.io/finalizer"


def sink_manifest(name: str, **stream: Any) -> dict[str, Any]:
    """The example, on one server: replicas 1, small maxBytes, the per-object stream name."""
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"] = {"name": name}
    fixed = {k: v for k, v in manifest["spec"]["stream"].items() if k != "name"}
    manifest["spec"]["stream"] = fixed | {"replicas": 1, "maxBytes": SMALL} | stream
    return manifest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def on_nats(nats_url: str, call: Callable[[NatsClient], Awaitable[T]]) -> T:
    """Run `call` with a fresh connection (the tests are synchronous, like kubectl)."""

    async def run() -> T:
        nc = await nats.connect(nats_url)
        try:
            return await call(nc)
        finally:
            await nc.close()

    return asyncio.run(run())


def stream_info(nats_url: str, stream: str) -> api.StreamInfo | None:
    async def info(nc: NatsClient) -> api.StreamInfo | None:
        try:
            return await nc.jetstream().stream_info(stream)
        except nats.js.errors.NotFoundError:
            return None

    return on_nats(nats_url, info)


def consumers(nats_url: str, stream: str) -> dict[str, api.ConsumerConfig]:
    async def listed(nc: NatsClient) -> dict[str, api.ConsumerConfig]:
        return {info.name: info.config for info in await nc.jetstream().consumers_info(stream)}

    return on_nats(nats_url, listed)


def publish_records(nats_url: str, namespace: str, name: str, count: int = RECORDS) -> None:
    """Chained audit records, as the control plane's ingest API appends them."""

    async def publish(nc: NatsClient) -> None:
        queue = mq.JetStreamQueue(nc)  # the connection stays ours: the queue does not own it
        log = audit.AuditLog(queue, audit.audit_subject(namespace, name), None)
        for i in range(count):
            await log.append(
                {
                    "actor": {"id": "user-1", "kind": "user"},
                    "action": "chat.completions",
                    "resource": {"kind": "Route", "namespace": namespace, "name": f"r{i}"},
                    "outcome": "success",
                }
            )

    on_nats(nats_url, publish)


def delete_stream(nats_url: str, stream: str) -> None:
    """Clean up a stream the test leaves behind on the session's shared server."""
    on_nats(nats_url, lambda nc: audit.delete_stream(nc.jetstream(), stream, force=True))


def conditions_of(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj["status"]["conditions"]}


def test_example_stream_consumers_status_and_spec_update(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, nats_url: str
) -> None:
    name = unique("platform")
    stream = audit.default_stream_name(op_namespace, name)
    apply(kube, op_namespace, sink_manifest(name))
    obj = wait_condition(kube, op_namespace, "asink", name)
    found_conditions = conditions_of(obj)
    # Created on the first reconcile, UpToDate from the first resync on.
    assert found_conditions.pop("StreamReady") in {("True", "Created"), ("True", "UpToDate")}
    assert found_conditions == {
        "Ready": ("True", "StreamReady"),
        "ConsumersReady": ("True", "Ensured"),
    }
    status = obj["status"]
    assert status["streamName"] == stream
    assert (status["messages"], status["lastSequence"]) == (0, 0)
    assert [(s["name"], s["consumer"], s["lag"]) for s in status["sinks"]] == [
        ("local-file", "sink-local-file", 0),
        ("siem", "sink-siem", 0),
    ]

    info = stream_info(nats_url, stream)
    assert info is not None
    config = info.config
    subject = f"llm-infra.audit.{op_namespace}.{name}.>"
    assert config.subjects == [subject]
    assert (config.storage, config.num_replicas) == (api.StorageType.FILE, 1)
    assert (config.max_age, config.max_bytes, config.max_msgs) == (2160 * 3600.0, SMALL, -1)
    assert config.duplicate_window == 120.0
    assert (config.deny_delete, config.deny_purge) == (True, True)
    assert (config.discard, config.compression) == ("old", "s2")
    found = consumers(nats_url, stream)
    assert set(found) == {"sink-local-file", "sink-siem"}
    assert {c.filter_subject for c in found.values()} == {subject}
    assert (found["sink-siem"].max_deliver, found["sink-siem"].max_ack_pending) == (11, 500)

    # Records appended: the next resync (3 s) reports them, and each sink's lag.
    publish_records(nats_url, op_namespace, name)

    def counted() -> dict[str, Any] | None:
        current = get(kube, op_namespace, "asink", name)
        s = current["status"] if current else {}
        lags = [sink["lag"] for sink in s.get("sinks", [])]
        return s if (s.get("messages"), s.get("lastSequence"), lags) == (5, 5, [5, 5]) else None

    status = wait_for("status to count the records", counted)
    assert status["firstSequence"] == 1
    assert status["bytes"] > 0
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"  # lag is reported, never a failure
    assert ready["message"] == f"stream {stream}: 5 events; not yet delivered: local-file 5, siem 5"

    # A sink replaced by another, limits changed: reconciled for the new generation.
    updated = sink_manifest(name, maxAge="24h", discard="new")
    updated["spec"]["sinks"] = [
        updated["spec"]["sinks"][1],
        {"name": "archive", "objectStore": {"url": "s3://audit-archive"}},
    ]
    apply(kube, op_namespace, updated)
    obj = wait_condition(kube, op_namespace, "asink", name)
    assert obj["metadata"]["generation"] == 2
    assert obj["status"]["observedGeneration"] == 2
    stream_ready = next(c for c in obj["status"]["conditions"] if c["type"] == "StreamReady")
    assert "maxAge" in stream_ready["message"]
    consumers_ready = next(c for c in obj["status"]["conditions"] if c["type"] == "ConsumersReady")
    assert "removed sink-local-file" in consumers_ready["message"]
    assert [(s["name"], s["lag"]) for s in obj["status"]["sinks"]] == [("siem", 5), ("archive", 5)]
    assert set(consumers(nats_url, stream)) == {"sink-siem", "sink-archive"}
    info = stream_info(nats_url, stream)
    assert info is not None
    assert (info.config.max_age, info.config.discard) == (24 * 3600.0, "new")
    assert info.state.messages == RECORDS  # an update keeps the records
    reasons = {e["reason"] for e in events(kube, op_namespace, name)}
    assert "ConsumersRemoved" in reasons
    kube.kubectl("delete", "asink", name, "-n", op_namespace)
    delete_stream(nats_url, stream)


def test_replicas_the_server_cannot_hold_then_fixed(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, nats_url: str
) -> None:
    name = unique("replicated")
    apply(kube, op_namespace, sink_manifest(name, replicas=3))
    obj = wait_condition(kube, op_namespace, "asink", name, status="False", reason="StreamRejected")
    stream_ready = next(c for c in obj["status"]["conditions"] if c["type"] == "StreamReady")
    assert (stream_ready["status"], stream_ready["reason"]) == ("False", "StreamRejected")
    assert "spec.stream.replicas" in stream_ready["message"]
    assert "set spec.stream.replicas to 1" in stream_ready["message"]
    stream = audit.default_stream_name(op_namespace, name)
    assert stream_info(nats_url, stream) is None
    warnings = [e for e in events(kube, op_namespace, name) if e["type"] == "Warning"]
    assert any(e["reason"] == "StreamRejected" for e in warnings)

    apply(kube, op_namespace, sink_manifest(name, replicas=1))
    wait_condition(kube, op_namespace, "asink", name)
    assert stream_info(nats_url, stream) is not None
    kube.kubectl("delete", "asink", name, "-n", op_namespace)
    delete_stream(nats_url, stream)


def test_storage_of_an_existing_stream_is_left_alone(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, nats_url: str
) -> None:
    name = unique("premade")
    stream = audit.default_stream_name(op_namespace, name)
    subject = f"{audit.audit_subject(op_namespace, name)}.>"
    # Someone made the stream in memory before the AuditSink (which asks for file) existed.
    premade = mq.StreamSpec(stream, (subject,), mq.Storage.MEMORY)
    on_nats(nats_url, lambda nc: mq.ensure_stream(nc.jetstream(), premade))
    publish_records(nats_url, op_namespace, name, count=2)
    apply(kube, op_namespace, sink_manifest(name))
    obj = wait_condition(kube, op_namespace, "asink", name, status="False", reason="StreamMismatch")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert "spec.stream.storage" in ready["message"]
    assert "the stream has memory, the spec asks for file" in ready["message"]
    info = stream_info(nats_url, stream)
    assert info is not None
    assert (info.config.storage, info.state.messages) == (api.StorageType.MEMORY, 2)
    assert consumers(nats_url, stream) == {}  # nothing was applied
    kube.kubectl("delete", "asink", name, "-n", op_namespace)
    delete_stream(nats_url, stream)


def test_retain_keeps_the_stream(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, nats_url: str
) -> None:
    name = unique("retained")
    stream = audit.default_stream_name(op_namespace, name)
    apply(kube, op_namespace, sink_manifest(name))
    obj = wait_condition(kube, op_namespace, "asink", name)
    assert FINALIZER not in obj["metadata"].get("finalizers", [])
    kube.kubectl("delete", "asink", name, "-n", op_namespace, "--timeout=30s")
    assert get(kube, op_namespace, "asink", name) is None
    assert stream_info(nats_url, stream) is not None
    delete_stream(nats_url, stream)


def test_delete_blocked_by_undelivered_records_until_forced(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, nats_url: str
) -> None:
    name = unique("guarded")
    stream = audit.default_stream_name(op_namespace, name)
    manifest = sink_manifest(name)
    manifest["spec"]["deletionPolicy"] = "Delete"
    apply(kube, op_namespace, manifest)
    wait_condition(kube, op_namespace, "asink", name)
    wait_for(
        "the finalizer",
        lambda: (
            FINALIZER
            in (get(kube, op_namespace, "asink", name) or {})
            .get("metadata", {})
            .get("finalizers", [])
        ),
    )
    publish_records(nats_url, op_namespace, name)

    kube.kubectl("delete", "asink", name, "-n", op_namespace, "--wait=false")
    obj = wait_condition(
        kube, op_namespace, "asink", name, status="False", reason="DeletionBlocked"
    )
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert f"{RECORDS} audit records" in ready["message"]
    assert "spec.deleteUndelivered" in ready["message"]
    info = stream_info(nats_url, stream)
    assert info is not None
    assert info.state.messages == RECORDS

    kube.kubectl(
        "patch", "asink", name, "-n", op_namespace, "--type=merge",
        "-p", '{"spec": {"deleteUndelivered": true}}',
    )  # fmt: skip
    wait_for("the AuditSink to go", lambda: get(kube, op_namespace, "asink", name) is None)
    assert stream_info(nats_url, stream) is None


def test_delete_with_everything_delivered(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, nats_url: str
) -> None:
    name = unique("drained")
    stream = audit.default_stream_name(op_namespace, name)
    manifest = sink_manifest(name)
    manifest["spec"]["deletionPolicy"] = "Delete"
    apply(kube, op_namespace, manifest)
    wait_condition(kube, op_namespace, "asink", name)
    assert stream_info(nats_url, stream) is not None
    kube.kubectl("delete", "asink", name, "-n", op_namespace, "--wait=false")
    wait_for("the AuditSink to go", lambda: get(kube, op_namespace, "asink", name) is None)
    assert stream_info(nats_url, stream) is None
    deleted = [e for e in events(kube, op_namespace, name) if e["reason"] == "Deleted"]
    assert deleted
    assert f"stream {stream} deleted" in deleted[-1]["message"]


def test_a_sink_naming_another_sinks_stream_is_refused_and_its_deletion_keeps_it(
    kube: KubeServer, op_namespace: str, operator: OperatorProcess, nats_url: str
) -> None:
    victim, evil = unique("victim"), unique("evil")
    stream = f"trail-{uuid.uuid4().hex[:6]}"
    owned = sink_manifest(victim)
    owned["spec"]["stream"]["name"] = stream
    apply(kube, op_namespace, owned)
    wait_condition(kube, op_namespace, "asink", victim)
    publish_records(nats_url, op_namespace, victim, count=2)
    taker = sink_manifest(evil)
    taker["spec"]["stream"]["name"] = stream
    taker["spec"] |= {"deletionPolicy": "Delete", "deleteUndelivered": True}
    apply(kube, op_namespace, taker)
    obj = wait_condition(kube, op_namespace, "asink", evil, status="False", reason="StreamConflict")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "StreamReady")
    assert f"belongs to AuditSink {op_namespace}/{victim}" in ready["message"]
    warnings = [e for e in events(kube, op_namespace, evil) if e["type"] == "Warning"]
    assert any(e["reason"] == "StreamConflict" for e in warnings)
    info = stream_info(nats_url, stream)
    assert info is not None
    assert info.config.subjects == [f"{audit.audit_subject(op_namespace, victim)}.>"]

    kube.kubectl("delete", "asink", evil, "-n", op_namespace, "--timeout=30s")
    assert get(kube, op_namespace, "asink", evil) is None
    info = stream_info(nats_url, stream)
    assert info is not None  # the finalizer let the object go and left the stream alone
    assert info.state.messages == 2
    kube.kubectl("delete", "asink", victim, "-n", op_namespace)
    delete_stream(nats_url, stream)
