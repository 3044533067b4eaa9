"""The audit API and writer on a real NATS: ingest, chain, query, verify, sinks, restarts, outages.

The app runs with its lifespan (`create_app`), driven over ASGI by the SDK's
`ControlPlaneClient`; sinks deliver to real files, a real local HTTP server and
a `file://` object store. Outages use a NATS server of the test's own, never the
shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http.server
import itertools
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_infra import audit, crypto, errors
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec
from llm_infra.client import AuditStatus, ControlPlaneClient
from llm_infra_controlplane.audit.service import AuditService
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from tests.servers.nats import NatsServer
from tests.support import eventually

DEADLINE = 30.0


def _event(i: int, *, actor: str = "alice", action: str = "chat.completions") -> audit.AuditEvent:
    return audit.AuditEvent(
        actor=audit.Actor(id=actor, kind="user"),
        action=action,
        resource=audit.Resource(kind="Route", namespace="team-a", name=f"r{i % 3}"),
        outcome="success",
        metadata={"i": i, "request": {"messages": ["hi"]}, "response": {"choices": [i]}},
    )


def _spec(**fields: Any) -> AuditSinkSpec:
    return AuditSinkSpec.model_validate(
        {"stream": {"storage": "memory"}, "sinks": [{"name": "file", "file": {"path": "/a.jsonl"}}]}
        | fields
    )


@contextlib.asynccontextmanager
async def _served(
    tmp_path: Path, nats_url: str, name: str, spec: AuditSinkSpec, **ensure: Any
) -> AsyncIterator[tuple[ControlPlaneClient, AuditService]]:
    app = create_app(Settings(data_dir=tmp_path / "data", nats_url=nats_url, auth_mode="none"))
    async with app.router.lifespan_context(app):
        service: AuditService = app.state.audit
        await service.ensure_sink("team-a", name, spec, file_root=tmp_path / "root", **ensure)
        transport = httpx.ASGITransport(app=app)
        async with ControlPlaneClient("http://cp", transport=transport) as cp:
            yield cp, service


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    await eventually(what, check, timeout=DEADLINE)


async def _caught_up(cp: ControlPlaneClient, name: str) -> AuditStatus:
    status: AuditStatus | None = None

    async def done() -> bool:
        nonlocal status
        status = await cp.audit_status("team-a", name)
        return all(s.lag == 0 for s in status.sinks)

    await _until(done, "every sink caught up")
    assert status is not None
    return status


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_ingest_chains_applies_policy_queries_in_pages_and_rotates_the_file(
    tmp_path: Path, nats_url: str
) -> None:
    spec = _spec(
        policy={
            "level": "Metadata",
            "rules": [
                {"level": "None", "actions": ["health.*"]},
                # Users would match the authenticated caller (here everyone is anonymous).
                {"level": "RequestResponse", "actions": ["chat.review"]},
            ],
            "redact": ["/messages"],
        },
        sinks=[
            {
                "name": "file",
                "batchSize": 4,
                "file": {"path": "/var/log/a.jsonl", "rotateBytes": 2000, "maxFiles": 2},
            }
        ],
    )
    async with _served(tmp_path, nats_url, "ingest", spec) as (cp, _):
        events = [
            _event(i, action="chat.review" if i % 4 == 0 else "chat.completions") for i in range(24)
        ]
        events.append(_event(99, action="health.probe"))
        answer = await cp.append_audit_events("team-a", "ingest", events)
        assert [r.seq for r in answer.records] == list(range(1, 25))
        assert answer.dropped == [events[-1].id]

        verification = await cp.verify_audit("team-a", "ingest")
        assert (verification.ok, verification.records, verification.first_seq) == (True, 24, 1)

        pages = [p async for p in cp.query_audit_events("team-a", "ingest", limit=5)]
        assert [len(p.records) for p in pages] == [5, 5, 5, 5, 4]
        records = [r for p in pages for r in p.records]
        assert [r.id for r in records] == [e.id for e in events[:24]]
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))

        bob = records[0]  # RequestResponse, the request's messages hashed
        digest = hashlib.sha256(b'["hi"]').hexdigest()
        assert bob.metadata["request"] == {"messages": f"sha256:{digest}"}
        assert bob.metadata["response"] == {"choices": [0]}
        assert bob.redacted == ["/metadata/request/messages"]
        assert records[1].metadata == {"i": 1}  # Metadata: no bodies

        bobs = [
            r
            async for p in cp.query_audit_events("team-a", "ingest", action="chat.review")
            for r in p.records
        ]
        assert [r.seq for r in bobs] == [1, 5, 9, 13, 17, 21]
        cut = records[10].time
        later = [
            r
            async for p in cp.query_audit_events(
                "team-a", "ingest", since=cut, resource="Route/*/r1"
            )
            for r in p.records
        ]
        assert later
        assert all(r.time >= cut and r.resource.name == "r1" for r in later)

        status = await _caught_up(cp, "ingest")
        assert status.sinks[0].delivered == 24
        assert status.chain_seq == 24

    log = tmp_path / "root" / "var" / "log" / "a.jsonl"
    rotated = sorted(log.parent.iterdir())
    assert [p.name for p in rotated] == ["a.jsonl", "a.jsonl.1", "a.jsonl.2"]
    assert all(p.stat().st_size <= 2000 for p in rotated)
    kept = _lines(log.parent / "a.jsonl.2") + _lines(log.parent / "a.jsonl.1") + _lines(log)
    seqs = [line["seq"] for line in kept]
    assert seqs == list(range(seqs[0], 25))  # the oldest file fell off; the rest in order
    assert seqs[0] > 1
    assert kept[-1]["hash"] == records[-1].hash


class _Webhook(http.server.ThreadingHTTPServer):
    """A local endpoint that fails its first `failures` requests with 500, then takes them."""

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures
        self.attempts: list[tuple[bytes, str]] = []
        self.accepted: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/audit"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.attempts.append((body, self.headers.get("X-Signature", "")))
        ok = len(self.server.attempts) > self.server.failures
        if ok:
            self.server.accepted.extend(json.loads(body))
        self.send_response(200 if ok else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextlib.contextmanager
def _webhook(failures: int) -> Iterator[_Webhook]:
    server = _Webhook(failures)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_webhook_signs_each_batch_and_redelivers_until_the_endpoint_recovers(
    tmp_path: Path, nats_url: str
) -> None:
    # 4 failures: more than the HTTP client's own 3 attempts, so JetStream redelivers.
    with _webhook(failures=4) as hook:
        spec = _spec(
            sinks=[
                {
                    "name": "hook",
                    "batchSize": 10,
                    "maxRetries": 5,
                    "webhook": {"url": hook.url, "secretRef": {"name": "hook", "key": "hmac"}},
                }
            ]
        )
        secrets = {"hook": {"hmac": "s3cret"}}
        async with _served(tmp_path, nats_url, "hook", spec, secrets=secrets) as (cp, _):
            events = [_event(i) for i in range(25)]
            await cp.append_audit_events("team-a", "hook", events)
            status = await _caught_up(cp, "hook")

        assert status.sinks[0].delivered == 25
        assert status.sinks[0].last_error is not None  # the failed attempts were reported
        assert "500" in status.sinks[0].last_error
        assert {r["id"] for r in hook.accepted} == {e.id for e in events}
        assert len(hook.attempts) > 4
        for body, signature in hook.attempts:
            expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            assert signature == f"sha256={expected}"


async def test_object_store_sink_writes_one_object_per_batch(tmp_path: Path, nats_url: str) -> None:
    bucket = tmp_path / "root" / "bucket"  # file:// stores are re-rooted like file sinks
    spec = _spec(
        sinks=[
            {
                "name": "archive",
                "batchSize": 4,
                "objectStore": {"url": "file:///bucket", "prefix": "team-a/archive"},
            }
        ]
    )
    async with _served(tmp_path, nats_url, "archive", spec) as (cp, _):
        events = [_event(i) for i in range(10)]
        await cp.append_audit_events("team-a", "archive", events)
        await _caught_up(cp, "archive")

    objects = sorted((bucket / "team-a" / "archive").iterdir())
    assert len(objects) >= 3  # batches of at most 4
    lines = [line for path in objects for line in _lines(path)]
    assert [line["id"] for line in lines] == [e.id for e in events]


async def test_a_restarted_service_continues_the_chain(tmp_path: Path, nats_url: str) -> None:
    spec = _spec(stream={"storage": "file"})
    async with _served(tmp_path, nats_url, "restart", spec) as (cp, _):
        first = await cp.append_audit_events("team-a", "restart", [_event(i) for i in range(5)])
    async with _served(tmp_path, nats_url, "restart", spec) as (cp, _):
        second = await cp.append_audit_events("team-a", "restart", [_event(i) for i in range(5)])
        assert [r.seq for r in second.records] == [6, 7, 8, 9, 10]
        verification = await cp.verify_audit("team-a", "restart")
        assert (verification.ok, verification.records) == (True, 10)
        pages = [p async for p in cp.query_audit_events("team-a", "restart", limit=100)]
        assert pages[0].records[5].prev_hash == first.records[-1].hash


async def test_signed_checkpoints_are_published_verified_and_delivered(
    tmp_path: Path, nats_url: str
) -> None:
    key = crypto.SigningKey.generate()
    spec = _spec(
        tamperEvidence={
            "signingKeySecretRef": {"name": "audit-key", "key": "pem"},
            "checkpointEvery": 4,
        }
    )
    secrets = {"audit-key": {"pem": key.to_pem().decode()}}
    async with _served(tmp_path, nats_url, "signed", spec, secrets=secrets) as (cp, _):
        await cp.append_audit_events("team-a", "signed", [_event(i) for i in range(10)])
        verification = await cp.verify_audit("team-a", "signed")
        assert (verification.ok, verification.records, verification.checkpoints) == (True, 10, 2)
        await _caught_up(cp, "signed")

    lines = _lines(tmp_path / "root" / "a.jsonl")
    checkpoints = [audit.Checkpoint.model_validate(line) for line in lines if "signature" in line]
    assert [c.seq for c in checkpoints] == [4, 8]
    for checkpoint in checkpoints:
        audit.verify_checkpoint(checkpoint, key.verify_key)
    records = [line for line in lines if "signature" not in line]
    assert audit.verify_chain(records, checkpoints, key.verify_key).ok


async def test_a_retried_event_is_stored_once(tmp_path: Path, nats_url: str) -> None:
    async with _served(tmp_path, nats_url, "dedupe", _spec()) as (cp, _):
        events = [_event(i) for i in range(3)]
        once = await cp.append_audit_events("team-a", "dedupe", events)
        again = await cp.append_audit_events("team-a", "dedupe", events)
        assert again.records == once.records
        more = await cp.append_audit_events("team-a", "dedupe", [_event(3)])
        assert [r.seq for r in more.records] == [4]
        assert (await cp.verify_audit("team-a", "dedupe")).ok


async def test_unknown_sink_is_404_and_bad_queries_name_the_field(
    tmp_path: Path, nats_url: str
) -> None:
    async with _served(tmp_path, nats_url, "known", _spec()) as (cp, _):
        with pytest.raises(errors.NotFound, match="no AuditSink team-a/unknown"):
            await cp.verify_audit("team-a", "unknown")
        with pytest.raises(errors.ValidationError) as bad:
            async for _ in cp.query_audit_events("team-a", "known", limit=0):
                pass
        assert bad.value.field == "limit"
        raw = await cp._http.get(
            "/v1/namespaces/team-a/auditsinks/known/events", params={"cursor": "nope"}
        )
        assert raw.status_code == 422
        assert raw.json()["field"] == "cursor"


async def test_nats_down_answers_503_and_the_client_retries_through_a_restart(
    tmp_path: Path,
) -> None:
    with NatsServer(tmp_path / "nats") as nats_server:
        spec = _spec(stream={"storage": "file"})
        async with _served(tmp_path, nats_server.url, "outage", spec) as (cp, _):
            acked = (await cp.append_audit_events("team-a", "outage", [_event(0)])).records

            await asyncio.to_thread(nats_server.stop)
            body = {"events": [_event(1).model_dump(mode="json")]}
            down = await cp._http.post("/v1/namespaces/team-a/auditsinks/outage/events", json=body)
            assert down.status_code == 503
            assert down.headers["Retry-After"] == "1"
            assert down.json()["code"] == "message_queue.error"

            async def burst(start: int) -> None:
                for i in range(start, start + 20):
                    answer = await cp.append_audit_events("team-a", "outage", [_event(i)])
                    acked.extend(answer.records)

            refused = 0

            async def count_503(response: httpx.Response) -> None:
                nonlocal refused
                refused += response.status_code == 503

            async def met_the_outage() -> bool:
                return refused > 1

            cp._http.event_hooks["response"].append(count_503)
            sending = asyncio.create_task(burst(1))
            await _until(met_the_outage, "the burst met the outage")
            await asyncio.to_thread(nats_server.start)
            await asyncio.wait_for(sending, DEADLINE)
            await burst(100)
            sending = asyncio.create_task(burst(200))
            await asyncio.to_thread(nats_server.restart)  # once more, mid-burst
            await asyncio.wait_for(sending, DEADLINE)

            verification = await cp.verify_audit("team-a", "outage")
            assert verification.ok, verification.reason
            pages = [p async for p in cp.query_audit_events("team-a", "outage", limit=1000)]
            stored = {r.id: (r.seq, r.hash) for p in pages for r in p.records}
            assert {r.id: (r.seq, r.hash) for r in acked}.items() <= stored.items()
            assert len(acked) == 61
