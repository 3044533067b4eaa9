"""The audit pieces that need no NATS: policy, cursors, deliveries, writer maths, the client."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_infra import audit, errors, fs, http
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec, FileSink, Policy, Sink, Throttle
from llm_infra.client import ControlPlaneClient
from llm_infra.mq.memory import ManualClock
from llm_infra_controlplane.audit import writer as audit_writer
from llm_infra_controlplane.audit.service import (
    AuditService,
    apply_policy,
    attest,
    decode_cursor,
    encode_cursor,
    event_level,
    seen_key,
    submitted_digest,
)


def _event(
    actor: str = "alice", action: str = "chat.completions", **metadata: Any
) -> audit.AuditEvent:
    return audit.AuditEvent(
        actor=audit.Actor(id=actor, kind="user"),
        action=action,
        resource=audit.Resource(kind="VectorCollection", namespace="team-a", name="docs"),
        outcome="success",
        metadata=metadata,
    )


def _policy(**fields: Any) -> Policy:
    return Policy.model_validate(fields)


# -- policy ---------------------------------------------------------------------------------------


def test_the_first_matching_rule_sets_the_level_else_the_default() -> None:
    policy = _policy(
        level="Request",
        rules=[
            {"level": "None", "actions": ["health.*"]},
            {
                "level": "RequestResponse",
                "resources": ["vectorcollections/docs"],
                "users": ["ops-*"],
            },
            {"level": "Metadata", "resources": ["vectorcollections"]},
        ],
    )
    assert event_level(policy, _event(action="health.probe")) == "None"
    assert event_level(policy, _event(actor="ops-1")) == "RequestResponse"
    assert event_level(policy, _event(actor="alice")) == "Metadata"
    other = _event().model_copy(
        update={"resource": audit.Resource(kind="Route", namespace="a", name="b")}
    )
    assert event_level(policy, other) == "Request"


def test_levels_keep_bodies_and_redact_hashes_the_pointers_in_them() -> None:
    event = _event(i=1, request={"messages": ["secret"], "model": "m"}, response={"messages": 2})
    redact = ["/messages", "/absent"]
    metadata = apply_policy(_policy(level="Metadata", redact=redact), event)
    assert metadata is not None
    assert metadata.metadata == {"i": 1}
    assert metadata.redacted == []

    request = apply_policy(_policy(level="Request", redact=redact), event)
    assert request is not None
    digest = hashlib.sha256(b'["secret"]').hexdigest()
    assert request.metadata == {"i": 1, "request": {"messages": f"sha256:{digest}", "model": "m"}}
    assert request.redacted == ["/metadata/request/messages"]
    assert request.id == event.id

    both = apply_policy(_policy(level="RequestResponse", redact=redact), event)
    assert both is not None
    assert both.metadata["response"] == {"messages": f"sha256:{hashlib.sha256(b'2').hexdigest()}"}
    assert both.redacted == ["/metadata/request/messages", "/metadata/response/messages"]

    assert apply_policy(_policy(rules=[{"level": "None"}]), event) is None


# -- cursors --------------------------------------------------------------------------------------


def test_a_cursor_round_trips_and_a_forged_one_names_the_field() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    for bad in ("", "nope", encode_cursor(1).upper(), "djE6MA"):  # "v1:0"
        with pytest.raises(errors.ValidationError) as caught:
            decode_cursor(bad)
        assert caught.value.field == "cursor"


# -- deliveries -----------------------------------------------------------------------------------


def test_file_paths_are_rerooted_in_standalone_mode(tmp_path: Path) -> None:
    assert audit_writer.rerooted("/var/log/a.jsonl", None) == Path("/var/log/a.jsonl")
    assert audit_writer.rerooted("/var/log/a.jsonl", tmp_path) == tmp_path / "var/log/a.jsonl"


@pytest.mark.parametrize("path", ["/../../etc/x", "/a/../../b", "/"])
def test_file_paths_that_leave_the_root_are_refused_naming_the_field(
    tmp_path: Path, path: str
) -> None:
    with pytest.raises(errors.ValidationError) as refused:
        audit_writer.rerooted(path, tmp_path / "root", field="spec.sinks[1].file.path")
    assert refused.value.field == "spec.sinks[1].file.path"
    assert refused.value.message.startswith("spec.sinks[1].file.path: ")


def test_a_link_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(errors.ValidationError):
        audit_writer.rerooted("/out/x.jsonl", root)
    assert audit_writer.rerooted("/in/../x.jsonl", root) == root.resolve() / "x.jsonl"


def test_file_object_store_urls_are_rerooted_and_confined(tmp_path: Path) -> None:
    root = tmp_path / "root"
    field = "spec.sinks[0].objectStore.url"
    inside = audit_writer.rerooted_url("file:///bucket", root, field=field)
    assert inside == (root.resolve() / "bucket").as_uri()
    assert audit_writer.rerooted_url("s3://b/p", root, field=field) == "s3://b/p"
    assert audit_writer.rerooted_url("file:///b", None, field=field) == "file:///b"
    with pytest.raises(errors.ValidationError) as refused:
        audit_writer.rerooted_url("file:///../../x", root, field=field)
    assert refused.value.field == field


# -- who, when, and replays -------------------------------------------------------------------


def test_attest_records_the_caller_and_keeps_the_claims_apart() -> None:
    claimed = _event(actor="exempt", action="secrets.delete")
    caller = audit.Actor(id="mallory", kind="apikey", ip="203.0.113.7")
    now = claimed.time.replace(year=2031)
    recorded = attest(claimed, caller, now)
    assert (recorded.actor, recorded.time) == (caller, now)
    assert recorded.asserted == audit.Asserted(actor=claimed.actor, time=claimed.time)
    # Policy sees the caller: the exemption written for "exempt" does not apply to mallory.
    policy = _policy(level="Metadata", rules=[{"level": "None", "users": ["exempt"]}])
    assert apply_policy(policy, claimed) is None
    assert apply_policy(policy, recorded) is not None


def test_the_submitted_digest_covers_the_body_and_the_caller() -> None:
    event = _event()
    alice, bob = audit.Actor(id="alice", kind="apikey"), audit.Actor(id="bob", kind="apikey")
    assert submitted_digest(event, alice) == submitted_digest(event, alice)
    assert submitted_digest(event, alice) != submitted_digest(event, bob)
    changed = event.model_copy(update={"action": "secrets.delete"})
    assert submitted_digest(event, alice) != submitted_digest(changed, alice)


def test_seen_keys_are_valid_kv_keys_whatever_the_id() -> None:
    key = seen_key("AUDIT_team-a_x", "urn:a/b+c=d@e")
    assert re.fullmatch(r"[-/_=.a-zA-Z0-9]+", key)
    assert key.startswith("AUDIT_team-a_x.")
    assert seen_key("S", "a") != seen_key("T", "a")


async def test_the_file_sink_appends_lines_and_rotates_keeping_max_files(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "a.jsonl"
    delivery = audit_writer.FileDelivery(FileSink(path="/a", rotate_bytes=25, max_files=2), path)
    for first in range(0, 12, 3):
        lines = [json.dumps({"n": n}).encode() for n in range(first, first + 3)]
        await delivery.deliver(lines, first + 1, first + 3)

    def numbers(p: Path) -> list[int]:
        return [json.loads(line)["n"] for line in p.read_text().splitlines()]

    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["a.jsonl", "a.jsonl.1", "a.jsonl.2"]
    assert all(p.stat().st_size <= 25 for p in path.parent.iterdir())
    kept = numbers(path.with_name("a.jsonl.2")) + numbers(path.with_name("a.jsonl.1"))
    kept += numbers(path)
    assert kept == list(range(12 - len(kept), 12))


async def test_the_object_store_sink_names_objects_by_stream_sequence() -> None:
    store = fs.open_fs("memory://")
    delivery = audit_writer.ObjectStoreDelivery(store, "/archive/")
    await delivery.deliver([b'{"a":1}', b'{"a":2}'], 7, 8)
    await delivery.deliver([b'{"a":1}', b'{"a":2}'], 7, 8)  # a redelivery overwrites its object
    entries = await store.list("archive")
    assert [e.path for e in entries] == [f"archive/{7:020d}-{8:020d}.jsonl"]
    assert await store.read(entries[0].path) == b'{"a":1}\n{"a":2}\n'


def test_a_missing_secret_names_the_manifest_field() -> None:
    sink = Sink.model_validate(
        {"name": "hook", "webhook": {"url": "http://h/x", "secretRef": {"name": "s", "key": "k"}}}
    )
    with pytest.raises(errors.ConfigMissing) as caught:
        audit_writer.build_delivery(sink, index=2, secrets={"s": {}}, file_root=None)
    assert caught.value.key == "spec.sinks[2].webhook.secretRef"
    assert "s/k" in caught.value.message


def test_backoff_doubles_up_to_its_cap_and_the_throttle_spends_tokens() -> None:
    assert [audit_writer.backoff(n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]
    assert audit_writer.backoff(100) == audit_writer.RETRY_MAX
    clock = ManualClock()
    bucket = audit_writer.TokenBucket(Throttle(qps=10.0, burst=20), clock=clock)
    assert bucket.delay(20) == 0.0
    assert bucket.delay(5) == pytest.approx(0.5)  # 5 tokens short at 10 per second
    clock.advance(1.5)  # 15 tokens come back, 5 of them owed
    assert bucket.delay(10) == 0.0


# -- the service without NATS ---------------------------------------------------------------------


async def test_without_nats_the_service_answers_retryable_503s(tmp_path: Path) -> None:
    service = AuditService(None, owns_streams=True)
    await service.start()
    spec = AuditSinkSpec.model_validate({"sinks": [{"name": "f", "file": {"path": "/a"}}]})
    with pytest.raises(errors.MessageQueueError) as caught:
        await service.ensure_sink("team-a", "a", spec, file_root=tmp_path)
    assert (caught.value.status, caught.value.is_retryable()) == (503, True)
    assert "nats_url" in caught.value.message
    with pytest.raises(errors.NotFound):
        await service.verify("team-a", "a")
    await service.close()


# -- the client -----------------------------------------------------------------------------------


def _problem(status: int, code: str, retry_after: float | None = None) -> httpx.Response:
    document = {"type": "about:blank", "title": "x", "status": status, "code": code}
    if retry_after is not None:
        document["retry_after"] = retry_after
    return httpx.Response(
        status, json=document, headers={"content-type": "application/problem+json"}
    )


async def test_append_retries_503s_with_the_same_ids_then_returns() -> None:
    bodies: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if len(bodies) < 3:
            return _problem(503, "message_queue.error", retry_after=0.01)
        ids = [e["id"] for e in bodies[-1]["events"]]
        return httpx.Response(
            200, json={"records": [{"id": i, "seq": 1, "hash": "0" * 64} for i in ids]}
        )

    async with ControlPlaneClient("http://cp", transport=httpx.MockTransport(answer)) as cp:
        answer_ = await cp.append_audit_events("team-a", "a", [_event().model_dump()])
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]
    assert [r.id for r in answer_.records] == [bodies[0]["events"][0]["id"]]


async def test_append_gives_up_on_what_a_retry_cannot_fix_and_past_its_budget() -> None:
    calls = 0

    def not_found(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _problem(404, "external.not_found")

    async with ControlPlaneClient("http://cp", transport=httpx.MockTransport(not_found)) as cp:
        with pytest.raises(errors.NotFound):
            await cp.append_audit_events("team-a", "a", [_event()])
    assert calls == 1

    def down(request: httpx.Request) -> httpx.Response:
        return _problem(503, "message_queue.error", retry_after=0.01)

    budget = http.RetryPolicy(attempts=3, wait_initial=0.01, total_timeout=5.0)
    async with ControlPlaneClient("http://cp", transport=httpx.MockTransport(down)) as cp:
        with pytest.raises(errors.MessageQueueError):
            await cp.append_audit_events("team-a", "a", [_event()], retry=budget)


async def test_query_follows_the_cursor_until_there_is_none() -> None:
    seen: list[dict[str, str]] = []

    def pages(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        cursor = "c2" if "cursor" not in request.url.params else None
        return httpx.Response(200, json={"records": [], "nextCursor": cursor})

    async with ControlPlaneClient("http://cp", transport=httpx.MockTransport(pages)) as cp:
        got = [p async for p in cp.query_audit_events("team-a", "a", actor="bob", limit=5)]
    assert [p.next_cursor for p in got] == ["c2", None]
    assert seen == [{"actor": "bob", "limit": "5"}, {"actor": "bob", "limit": "5", "cursor": "c2"}]
