"""Regression tests of the audit security findings, on the real app and a real NATS JetStream.

Each test names its finding (3 stream takeover, 7 forged actor/time/source, 8 an event id
suppressing a checkpoint, 9 sink paths escaping the data folder, 18 replays, 19 client input
answered 5xx, 22b the applier's removal message). The app runs with its lifespan and API-key
authentication; AuditSinks are served through the app's own `AuditService` (what the
standalone applier and the feeds call), requests go over ASGI with a fixed client address.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import yaml

from llm_infra import audit, crypto, errors
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec
from llm_infra_controlplane.access import admin_key, policy
from llm_infra_controlplane.audit.service import AuditService
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from llm_infra_controlplane.standalone.applier import Applier, read_folder

CLIENT = ("203.0.113.7", 4711)
"""The address the ASGI transport gives every request: the record's source."""


@dataclass
class Served:
    service: AuditService
    http: httpx.AsyncClient
    keys: dict[str, str]
    app: Any
    root: Path

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def post(
        self, ns: str, name: str, events: list[dict[str, Any]], who: str = "alice"
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/namespaces/{ns}/auditsinks/{name}/events",
            json={"events": events},
            headers=self.auth(who),
        )

    async def get(self, ns: str, name: str, what: str, who: str = "alice") -> httpx.Response:
        return await self.http.get(
            f"/v1/namespaces/{ns}/auditsinks/{name}/{what}", headers=self.auth(who)
        )


@contextlib.asynccontextmanager
async def _served(tmp_path: Path, nats_url: str) -> AsyncIterator[Served]:
    keys: dict[str, str] = {}
    records = []
    for who in ("alice", "mallory"):
        key, record = await admin_key.issue_api_key(who)
        keys[who] = key.get_secret_value()
        records.append(record)
    settings = Settings(
        data_dir=tmp_path / "data",
        nats_url=nats_url,
        auth_mode="api-key",
        api_keys=tuple(records),
        access_rules=(
            policy.AccessRule(
                subjects=("apikey:alice", "apikey:mallory"),
                kinds=("auditsinks",),
                actions=("write",),
            ),
        ),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
            yield Served(app.state.audit, http, keys, app, tmp_path / "data" / "audit-sinks")


def _spec(**fields: Any) -> AuditSinkSpec:
    return AuditSinkSpec.model_validate(
        {"stream": {"storage": "memory"}, "sinks": [{"name": "file", "file": {"path": "/a.jsonl"}}]}
        | fields
    )


def _event(i: int = 0, **fields: Any) -> dict[str, Any]:
    event = audit.AuditEvent(
        actor=audit.Actor(id="alice", kind="user"),
        action="chat.completions",
        resource=audit.Resource(kind="Route", namespace="team-a", name="r"),
        outcome="success",
        metadata={"i": i},
    ).model_dump(mode="json")
    return event | fields


async def _stream_exists(nats_url: str, stream: str) -> bool:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().stream_info(stream)
    except nats.js.errors.NotFoundError:
        return False
    finally:
        await nc.close()
    return True


# -- 3: stream takeover -----------------------------------------------------------------------


async def test_3_a_sink_naming_another_namespaces_stream_is_refused_and_never_deletes_it(
    tmp_path: Path, nats_url: str
) -> None:
    async with _served(tmp_path, nats_url) as cp:
        victim = _spec(stream={"storage": "memory", "name": "victim3-trail"})
        await cp.service.ensure_sink("team-a", "victim3", victim, file_root=cp.root)
        stream = audit.stream_name("team-a", "victim3", victim)
        evil = _spec(
            stream={"storage": "memory", "name": stream},
            deletionPolicy="Delete",
            deleteUndelivered=True,
        )
        with pytest.raises(errors.Conflict) as refused:
            await cp.service.ensure_sink("evil", "x", evil, file_root=cp.root)
        assert "team-a/victim3" in refused.value.message
        # A default-shaped name is reserved for the AuditSink it names (no squatting ahead).
        squat = _spec(stream={"storage": "memory", "name": "AUDIT_team-a_later"})
        with pytest.raises(errors.Conflict, match="reserved"):
            await cp.service.ensure_sink("evil", "y", squat, file_root=cp.root)

        answer = await cp.post("team-a", "victim3", [_event(1)])
        assert answer.status_code == 200, answer.text
        # The evil sink's API names the conflict instead of serving someone else's stream.
        assert (await cp.post("evil", "x", [_event(2)])).status_code == 409
        assert (await cp.get("evil", "x", "verify")).status_code == 409

        await cp.service.remove_sink("evil", "x")
        assert await _stream_exists(nats_url, stream)
        verification = (await cp.get("team-a", "victim3", "verify")).json()
        assert (verification["ok"], verification["records"]) == (True, 1)


async def test_3_default_stream_names_of_two_sinks_never_collide(
    tmp_path: Path, nats_url: str
) -> None:
    assert audit.default_stream_name("team", "a-x") != audit.default_stream_name("team-a", "x")
    async with _served(tmp_path, nats_url) as cp:
        for ns, name in (("team", "a-x3"), ("team-a", "x3")):
            await cp.service.ensure_sink(ns, name, _spec(), file_root=cp.root)
        for ns, name in (("team", "a-x3"), ("team-a", "x3")):
            answer = await cp.post(ns, name, [_event(1)])
            assert answer.status_code == 200, answer.text
        for ns, name in (("team", "a-x3"), ("team-a", "x3")):
            verification = (await cp.get(ns, name, "verify")).json()
            assert (verification["ok"], verification["records"]) == (True, 1)


async def test_3_verify_of_a_deleted_or_replaced_stream_does_not_answer_ok(
    tmp_path: Path, nats_url: str
) -> None:
    async with _served(tmp_path, nats_url) as cp:
        spec = _spec()
        await cp.service.ensure_sink("team-a", "gone3", spec, file_root=cp.root)
        assert (await cp.post("team-a", "gone3", [_event(1), _event(2)])).status_code == 200
        stream = audit.stream_name("team-a", "gone3", spec)
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            await js.delete_stream(stream)
            deleted = await cp.get("team-a", "gone3", "verify")
            assert deleted.status_code != 200 or deleted.json()["ok"] is False, deleted.text
            await audit.ensure_audit_stream(js, "team-a", "gone3", spec)  # a new, empty one
            replaced = await cp.get("team-a", "gone3", "verify")
            assert replaced.status_code != 200 or replaced.json()["ok"] is False, replaced.text
        finally:
            await nc.close()


# -- 7: actor, time and source come from the authenticated caller ------------------------------


async def test_7_the_record_names_the_caller_not_the_actor_it_claims(
    tmp_path: Path, nats_url: str
) -> None:
    spec = _spec(policy={"level": "Metadata", "rules": [{"level": "None", "users": ["exempt"]}]})
    async with _served(tmp_path, nats_url) as cp:
        await cp.service.ensure_sink("team-a", "forged7", spec, file_root=cp.root)
        claimed = _event(
            1,
            actor={"id": "exempt", "kind": "service", "ip": "10.0.0.1"},
            action="secrets.delete",
            time="2000-01-01T00:00:00Z",
        )
        before = dt.datetime.now(dt.UTC)
        answer = await cp.post("team-a", "forged7", [claimed], who="mallory")
        assert answer.status_code == 200, answer.text
        assert answer.json()["dropped"] == []  # the exemption is the claimed actor's, not mallory's
        (record,) = (await cp.get("team-a", "forged7", "events")).json()["records"]
        assert record["actor"]["id"] == "apikey:mallory"
        assert record["actor"]["ip"] == CLIENT[0]
        assert dt.datetime.fromisoformat(record["time"]) >= before - dt.timedelta(seconds=1)
        assert record["asserted"]["actor"]["id"] == "exempt"
        assert record["asserted"]["actor"]["ip"] == "10.0.0.1"
        assert record["asserted"]["time"].startswith("2000-01-01")


# -- 8: event ids and checkpoint ids never share one dedupe space -------------------------------


async def test_8_an_event_id_shaped_like_a_checkpoint_id_does_not_suppress_it(
    tmp_path: Path, nats_url: str
) -> None:
    key = crypto.SigningKey.generate()
    spec = _spec(
        tamperEvidence={
            "signingKeySecretRef": {"name": "audit-key", "key": "pem"},
            "checkpointEvery": 2,
        }
    )
    secrets = {"audit-key": {"pem": key.to_pem().decode()}}
    async with _served(tmp_path, nats_url) as cp:
        await cp.service.ensure_sink("team-a", "cp8", spec, secrets=secrets, file_root=cp.root)
        events = [_event(0, id="checkpoint-2"), _event(1), _event(2), _event(3)]
        assert (await cp.post("team-a", "cp8", events)).status_code == 200
        verification = (await cp.get("team-a", "cp8", "verify")).json()
        assert (verification["ok"], verification["records"]) == (True, 4)
        assert verification["checkpoints"] == 2


# -- 9: sink paths stay inside the data folder ----------------------------------------------


async def test_9_a_file_sink_path_cannot_climb_out_of_the_data_folder(
    tmp_path: Path, nats_url: str
) -> None:
    async with _served(tmp_path, nats_url) as cp:
        escaping = _spec(sinks=[{"name": "file", "file": {"path": "/../../../escaped.jsonl"}}])
        with pytest.raises(errors.ValidationError) as refused:
            await cp.service.ensure_sink("team-a", "path9", escaping, file_root=cp.root)
        assert "spec.sinks[0].file.path" in refused.value.message
        url = f"file:///../../../../{tmp_path.name}/escaped-bucket"
        store = _spec(sinks=[{"name": "obj", "objectStore": {"url": url}}])
        with pytest.raises(errors.ValidationError) as refused:
            await cp.service.ensure_sink("team-a", "url9", store, file_root=cp.root)
        assert "spec.sinks[0].objectStore.url" in refused.value.message
    assert not (tmp_path / "escaped-bucket").exists()
    assert not any(tmp_path.parent.glob("escaped*"))


async def test_9_a_file_object_store_url_is_rerooted_into_the_data_folder(
    tmp_path: Path, nats_url: str
) -> None:
    outside = tmp_path / "outside-bucket"
    spec = _spec(sinks=[{"name": "obj", "batchSize": 1, "objectStore": {"url": outside.as_uri()}}])
    async with _served(tmp_path, nats_url) as cp:
        await cp.service.ensure_sink("team-a", "url9b", spec, file_root=cp.root)
        assert (await cp.post("team-a", "url9b", [_event(1)])).status_code == 200
        inside = cp.root.joinpath(*outside.parts[1:])
        for _ in range(300):  # the writer delivers in the background
            if inside.exists() and any(inside.iterdir()):
                break
            await asyncio.sleep(0.05)
        assert any(inside.iterdir())
    assert not outside.exists()


# -- 18: replays -----------------------------------------------------------------------------


async def test_18_a_different_body_under_a_stored_id_is_a_conflict(
    tmp_path: Path, nats_url: str
) -> None:
    async with _served(tmp_path, nats_url) as cp:
        await cp.service.ensure_sink("team-a", "dup18", _spec(), file_root=cp.root)
        first = _event(1)
        assert (await cp.post("team-a", "dup18", [first])).status_code == 200
        retried = await cp.post("team-a", "dup18", [first])  # a retry: the stored record
        assert retried.status_code == 200, retried.text
        assert retried.json()["records"][0]["seq"] == 1
        changed = await cp.post("team-a", "dup18", [first | {"action": "secrets.delete"}])
        assert changed.status_code == 409, changed.text
        assert first["id"] in changed.json()["detail"]
        records = (await cp.get("team-a", "dup18", "events")).json()["records"]
        assert [r["action"] for r in records] == ["chat.completions"]


async def test_18_a_replay_after_the_dedupe_window_makes_no_second_record(
    tmp_path: Path, nats_url: str
) -> None:
    spec = _spec(stream={"storage": "memory", "duplicateWindow": "200ms"})
    async with _served(tmp_path, nats_url) as cp:
        await cp.service.ensure_sink("team-a", "replay18", spec, file_root=cp.root)
        event = _event(1)
        assert (await cp.post("team-a", "replay18", [event])).status_code == 200
        await asyncio.sleep(0.5)  # JetStream's duplicate window (200ms) has passed
        replayed = await cp.post("team-a", "replay18", [event])
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["records"][0]["seq"] == 1
        changed = await cp.post("team-a", "replay18", [event | {"outcome": "failure"}])
        assert changed.status_code == 409, changed.text
        records = (await cp.get("team-a", "replay18", "events")).json()["records"]
        assert len(records) == 1


async def test_18_a_batch_with_a_conflicting_id_stores_none_of_it(
    tmp_path: Path, nats_url: str
) -> None:
    async with _served(tmp_path, nats_url) as cp:
        await cp.service.ensure_sink("team-a", "batch18", _spec(), file_root=cp.root)
        first = _event(1)
        assert (await cp.post("team-a", "batch18", [first])).status_code == 200
        batch = [_event(2), first | {"action": "secrets.delete"}, _event(3)]
        refused = await cp.post("team-a", "batch18", batch)
        assert refused.status_code == 409, refused.text
        records = (await cp.get("team-a", "batch18", "events")).json()["records"]
        assert [r["id"] for r in records] == [first["id"]]  # nothing of the refused batch
        # The batch without the conflict goes through, once, in order.
        kept = [batch[0], batch[2]]
        assert (await cp.post("team-a", "batch18", kept)).status_code == 200
        assert (await cp.post("team-a", "batch18", kept)).status_code == 200  # a retry
        records = (await cp.get("team-a", "batch18", "events")).json()["records"]
        assert [r["id"] for r in records] == [first["id"], batch[0]["id"], batch[2]["id"]]
        verification = (await cp.get("team-a", "batch18", "verify")).json()
        assert (verification["ok"], verification["records"]) == (True, 3)


# -- 19: client input is validated at the edge ------------------------------------------------


async def test_19_deep_metadata_and_huge_ids_answer_422_naming_the_field(
    tmp_path: Path, nats_url: str
) -> None:
    async with _served(tmp_path, nats_url) as cp:
        await cp.service.ensure_sink("team-a", "edge19", _spec(), file_root=cp.root)
        deep: Any = "leaf"
        for _ in range(500):
            deep = {"x": deep}
        nested = await cp.post("team-a", "edge19", [_event(1, metadata=deep)])
        assert nested.status_code == 422, nested.text
        assert "metadata" in nested.text
        huge = await cp.post("team-a", "edge19", [_event(1, id="e" * 100_000)])
        assert huge.status_code == 422, huge.text[:500]
        assert "id" in huge.text[:2000]
        odd = await cp.post("team-a", "edge19", [_event(1, id="a b\nc")])
        assert odd.status_code == 422, odd.text


# -- 22b: the applier says what happened to the stream ----------------------------------------


async def test_22b_removing_a_conflicting_sink_keeps_the_victims_stream_and_says_so(
    tmp_path: Path, nats_url: str
) -> None:
    folder = tmp_path / "resources"
    folder.mkdir()
    victim = {
        "apiVersion": "infra.llmdevops.io/v1alpha1",
        "kind": "AuditSink",
        "metadata": {"namespace": "team-a", "name": "victim22"},
        "spec": {
            "stream": {"storage": "memory", "name": "victim22-trail"},
            "sinks": [{"name": "f", "file": {"path": "/v"}}],
        },
    }
    stream = audit.stream_name("team-a", "victim22", AuditSinkSpec.model_validate(victim["spec"]))
    evil = {
        **victim,
        # Applied after the victim (the applier goes in namespace order).
        "metadata": {"namespace": "zz-evil", "name": "x22"},
        "spec": {
            "stream": {"storage": "memory", "name": stream},
            "sinks": [{"name": "f", "file": {"path": "/e"}}],
            "deletionPolicy": "Delete",
            "deleteUndelivered": True,
        },
    }
    (folder / "victim.yaml").write_text(yaml.safe_dump(victim))
    (folder / "evil.yaml").write_text(yaml.safe_dump(evil))
    lines: list[str] = []
    async with _served(tmp_path, nats_url) as cp:
        state = cp.app.state
        applier = Applier(
            state.collections, state.configs, state.audit, tmp_path / "data", report=lines.append
        )
        try:
            await applier.apply(read_folder(folder))
            assert any("evil" in line and "team-a/victim22" in line for line in lines), lines
            (folder / "evil.yaml").unlink()
            await applier.apply(read_folder(folder))
        finally:
            await applier.aclose()
        assert await _stream_exists(nats_url, stream)
        removal = [line for line in lines if line.startswith("asink zz-evil/x22: removed")]
        assert removal, lines
        assert "deleted" not in removal[0].replace("not deleted", "")
        assert "kept" not in removal[0] or "team-a/victim22" in removal[0]
        answer = await cp.post("team-a", "victim22", [_event(1)])
        assert answer.status_code == 200, answer.text
