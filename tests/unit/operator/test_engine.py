"""The operator's bookkeeping without a cluster: conditions, the engine's status and events,
retries, resync scheduling, RBAC, settings, and the VectorCollection decisions.

The engine is driven with a recording stand-in for `llm_infra.kube.Kube` (not for
Kubernetes): the integration tests run the same paths against the real API server.
Retries run with stamina in testing mode (no waits), so they finish within the test.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pytest
import stamina
import yaml

from llm_infra import errors, kube
from llm_infra.api.conditions import Condition
from llm_infra.api.v1alpha1 import VectorCollection
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec, VectorCollectionStatus
from llm_infra_operator.chart import peering, rbac
from llm_infra_operator.conditions import StatusConditions, transitions
from llm_infra_operator.context import Context
from llm_infra_operator.engine import Engine, Outcome, Reconciler
from llm_infra_operator.reconcilers.vectorcollection import (
    Target,
    decide_immutable_changes,
    decide_target,
)
from llm_infra_operator.settings import OperatorSettings
from tests.corpus import REPO

T0 = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def _condition(type_: str, status: str, reason: str = "R") -> Condition:
    return Condition(type=type_, status=status, reason=reason, last_transition_time=T0)


# -- conditions ------------------------------------------------------------------------------


def test_ready_is_true_only_when_every_condition_holds() -> None:
    conditions = StatusConditions([], generation=3)
    conditions.set("BackendReachable", True, "Connected")
    conditions.set("SpecApplied", True, "Created")
    assert conditions.ready("CollectionReady", "all good") is True
    ready = conditions.conditions[0]
    assert (ready.type, ready.status, ready.reason, ready.observed_generation) == (
        "Ready", "True", "CollectionReady", 3,
    )  # fmt: skip


def test_ready_takes_the_reason_of_the_first_failing_condition() -> None:
    conditions = StatusConditions([], generation=1)
    conditions.set("BackendReachable", True, "Connected")
    conditions.set("SpecApplied", False, "ImmutableFieldChanged", "dimensions 8 -> 16")
    conditions.set("Other", False, "Later")
    assert conditions.ready("CollectionReady") is False
    ready = conditions.conditions[0]
    assert (ready.status, ready.reason, ready.message) == (
        "False", "ImmutableFieldChanged", "dimensions 8 -> 16",
    )  # fmt: skip
    assert [c.type for c in conditions.conditions] == [
        "Ready", "BackendReachable", "SpecApplied", "Other",
    ]  # fmt: skip


def test_transitions_report_changes_only() -> None:
    before = [_condition("Ready", "True", "CollectionReady"), _condition("X", "True", "Ok")]
    after = [_condition("Ready", "False", "BackendUnreachable"), _condition("X", "True", "Ok")]
    events = transitions(before, after)
    assert [(e.type, e.reason) for e in events] == [("Warning", "BackendUnreachable")]
    assert transitions(after, after) == []
    assert [e.type for e in transitions(after, before)] == ["Normal"]


def test_an_unchanged_condition_keeps_its_transition_time() -> None:
    previous = [_condition("Ready", "True", "CollectionReady")]
    conditions = StatusConditions(previous, generation=2)
    conditions.ready("CollectionReady")
    assert conditions.conditions[0].last_transition_time == T0
    assert conditions.transitions() == []


# -- the engine ------------------------------------------------------------------------------


class RecordingKube:
    """Records what the engine writes through our Kube client, in order."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.writes: list[str] = []
        self.present: dict[str, Any] | None = None
        """What the API server holds now (None: deleted)."""

    async def get(self, kind: kube.Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.present

    async def patch(
        self,
        kind: kube.Kind,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        status: bool = False,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        assert status
        self.statuses.append(dict(patch["status"]))
        self.writes.append("status")
        if self.present is not None:  # what the API server does with a merge patch
            self.present = {**self.present, "status": {**self.present.get("status", {})}}
            self.present["status"].update(patch["status"])
        return self.present

    async def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        self.events.append((type_, reason, message))
        self.writes.append("event")

    async def aclose(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_waits() -> Any:
    """stamina's testing mode: retries happen at once, up to five attempts."""
    stamina.set_testing(True, attempts=5)
    yield
    stamina.set_testing(False)


class Scripted(Reconciler[VectorCollection]):
    """Answers each reconcile with the next scripted result."""

    model = VectorCollection
    status_model = VectorCollectionStatus

    def __init__(self, ctx: Context, script: list[Any]) -> None:
        super().__init__(ctx)
        self.script = script

    async def reconcile(
        self, obj: VectorCollection, body: Mapping[str, Any], conditions: StatusConditions
    ) -> Outcome:
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        conditions.set("BackendReachable", step, "Connected" if step else "BackendUnreachable")
        conditions.ready("CollectionReady")
        return Outcome(VectorCollectionStatus(points_count=1), retry=not step)


def _engine(*script: Any) -> tuple[Engine, RecordingKube]:
    kube = RecordingKube()
    settings = OperatorSettings(retry_initial=1.0, retry_max=4.0, resync_interval=30.0)
    ctx = Context(settings, kube)  # type: ignore[arg-type]
    reconciler = Scripted(ctx, list(script))
    return Engine(ctx, {"VectorCollection": reconciler}), kube


async def _reconcile(engine: Engine, kube: RecordingKube, body: dict[str, Any]) -> Outcome:
    kube.present = body
    return await engine.reconcile("VectorCollection", body)


async def _retries_done(engine: Engine) -> None:
    """Until the background retries the engine scheduled have ended (no waits in testing)."""
    await engine.protocol.idle()


def _body(generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "infra.llmdevops.io/v1alpha1",
        "kind": "VectorCollection",
        "metadata": {"name": "docs", "namespace": "team", "generation": generation, "uid": "u1"},
        "spec": {"vectors": {"size": 4}},
        **({"status": status} if status else {}),
    }


async def test_status_carries_the_generation_and_transitions_post_events() -> None:
    engine, kube = _engine(True)
    await _reconcile(engine, kube, _body(generation=7))
    [status] = kube.statuses
    assert status["observedGeneration"] == 7
    assert status["pointsCount"] == 1
    assert [c["type"] for c in status["conditions"]] == ["Ready", "BackendReachable"]
    assert all(c["observedGeneration"] == 7 for c in status["conditions"])
    assert {(t, r) for t, r, _ in kube.events} == {
        ("Normal", "CollectionReady"), ("Normal", "Connected"),
    }  # fmt: skip


async def test_a_reconcile_that_changes_nothing_writes_nothing() -> None:
    engine, kube = _engine(True, True)
    await _reconcile(engine, kube, _body())
    written = kube.statuses[0]
    kube.statuses.clear()
    kube.events.clear()
    await _reconcile(engine, kube, _body(status=written))
    assert kube.statuses == []
    assert kube.events == []


async def test_transient_failures_are_retried_until_they_succeed() -> None:
    engine, kube = _engine(False, False, True)
    outcome = await _reconcile(engine, kube, _body())
    assert outcome.retry is True  # kopf sees no failure: the engine retries in the background
    assert engine.protocol.retrying(("VectorCollection", "team", "docs"))
    await _retries_done(engine)
    reasons = [s["conditions"][0]["reason"] for s in kube.statuses]
    # The second attempt failed the same way and wrote nothing; the third one worked.
    assert reasons == ["BackendUnreachable", "CollectionReady"]
    assert engine.protocol.failures == {}


async def test_the_backoff_is_the_settings_own() -> None:
    engine, _ = _engine()
    assert engine.protocol.backoff.initial == 1.0
    assert engine.protocol.backoff.maximum == 4.0


async def test_events_are_posted_before_the_status_that_shows_them() -> None:
    engine, kube = _engine(True)
    await _reconcile(engine, kube, _body())
    assert kube.writes == ["event", "event", "status"]


async def test_errors_become_conditions_retryable_or_not() -> None:
    engine, kube = _engine(
        errors.VectorUnavailable("qdrant is down"), errors.ConfigError("bad key", key="x")
    )
    outcome = await _reconcile(engine, kube, _body())
    assert outcome.retry is True
    assert kube.statuses[0]["conditions"][0]["reason"] == "VectorUnavailable"
    await _retries_done(engine)  # the retry meets the second, permanent error
    assert kube.statuses[-1]["conditions"][0]["reason"] == "ConfigError"
    assert not engine.protocol.retrying(("VectorCollection", "team", "docs"))


async def test_a_bug_in_a_reconciler_is_reported_without_its_message() -> None:
    engine, kube = _engine(RuntimeError("password=hunter2 leaked"), True)
    outcome = await _reconcile(engine, kube, _body())
    assert outcome.retry is True
    ready = kube.statuses[0]["conditions"][0]
    assert (ready["reason"], ready["message"]) == ("InternalError", "operator error: RuntimeError")


async def test_a_resource_deleted_meanwhile_is_forgotten_not_written() -> None:
    engine, kube = _engine(True)
    engine.observed("VectorCollection", _body())
    kube.present = None
    outcome = await engine.reconcile("VectorCollection", _body())
    assert outcome.retry is False
    assert kube.statuses == []
    assert ("VectorCollection", "team", "docs") not in engine._due


async def test_the_status_read_under_the_lock_is_the_one_decided_from() -> None:
    engine, kube = _engine(True, True)
    await _reconcile(engine, kube, _body())
    written = kube.statuses[-1]
    kube.statuses.clear()
    kube.events.clear()
    # kopf hands over an older body; the API server already has the written status.
    kube.present = _body(status=written)
    await engine.reconcile("VectorCollection", _body())
    assert kube.statuses == []
    assert kube.events == []


async def test_an_invalid_body_is_reported_and_not_retried() -> None:
    engine, kube = _engine()
    body = _body()
    body["spec"]["vectors"]["size"] = 0
    outcome = await _reconcile(engine, kube, body)
    assert outcome.retry is False
    ready = kube.statuses[-1]["conditions"][0]
    assert ready["reason"] == "InvalidSpec"
    assert "vectors.size" in ready["message"]


async def test_resync_and_reference_changes_schedule_reconciles() -> None:
    engine, kube = _engine(True)
    engine.observed("VectorCollection", _body())
    key = ("VectorCollection", "team", "docs")
    assert engine._due[key] > 0
    await _reconcile(engine, kube, _body())
    engine._refs[key] = frozenset({("Secret", "qdrant-key")})
    due_before = engine._due[key]
    engine.referenced_changed("other-namespace", "Secret", "qdrant-key")
    assert engine._due[key] == due_before
    engine.referenced_changed("team", "Secret", "qdrant-key")
    assert engine._due[key] < due_before
    engine.observed("VectorCollection", _body(), deleted=True)
    assert key not in engine._due
    assert key not in engine._refs


# -- VectorCollection decisions --------------------------------------------------------------


def _spec(**fields: Any) -> VectorCollectionSpec:
    return VectorCollectionSpec.model_validate({"vectors": {"size": 4}, **fields})


def test_target_follows_the_spec_then_the_operator_defaults() -> None:
    embedded = OperatorSettings()
    qdrant = OperatorSettings(default_vector_backend="qdrant", qdrant_url="http://q:6333")
    assert decide_target("ns", "docs", _spec(), embedded) == Target("embedded", "ns.docs")
    assert decide_target("ns", "docs", _spec(), qdrant) == Target(
        "qdrant", "ns.docs", "http://q:6333"
    )
    named = _spec(
        collectionName="shared", backend={"qdrant": {"url": "http://x:6333", "grpc": True}}
    )
    assert decide_target("ns", "docs", named, embedded) == Target(
        "qdrant", "shared", "http://x:6333", True
    )


def test_moving_a_collection_between_backends_is_an_immutable_change() -> None:
    target = Target("qdrant", "ns-docs", "http://q:6333")
    assert decide_immutable_changes(target, None) == []
    same = VectorCollectionStatus(backend="qdrant", collection_name="ns-docs")
    assert decide_immutable_changes(target, same) == []
    moved = VectorCollectionStatus(backend="embedded", collection_name="ns-docs")
    assert decide_immutable_changes(target, moved) == ["backend (embedded -> qdrant)"]


def test_a_collection_made_under_the_old_default_name_keeps_its_points() -> None:
    embedded = OperatorSettings()
    qdrant = OperatorSettings(default_vector_backend="qdrant", qdrant_url="http://q:6333")
    old = VectorCollectionStatus(backend="qdrant", collection_name="ns-docs")
    # On a Qdrant server the points are in the old collection: it stays the target.
    kept = decide_target("ns", "docs", _spec(), qdrant, old)
    assert kept == Target("qdrant", "ns-docs", "http://q:6333")
    assert decide_immutable_changes(kept, old) == []
    # The embedded core moved its data to the new default: not an immutable change.
    moved = VectorCollectionStatus(backend="embedded", collection_name="ns-docs")
    target = decide_target("ns", "docs", _spec(), embedded, moved)
    assert target.collection == "ns.docs"
    assert decide_immutable_changes(target, moved) == []
    # An explicit name is never replaced, and another old name is still a change.
    named = decide_target("ns", "docs", _spec(collectionName="x"), qdrant, old)
    assert named.collection == "x"
    assert decide_immutable_changes(named, old) == ["collectionName (ns-docs -> x)"]


# -- RBAC, settings, small helpers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "render"),
    [("operator-rbac.yaml", rbac.render), ("kopf-peering-crds.yaml", peering.render)],
)
def test_chart_files_on_disk_are_freshly_generated(path: str, render: Any) -> None:
    on_disk = (REPO / "charts/llm-infra/files" / path).read_text()
    assert on_disk == render(), f"{path} is stale: run `make generate`"


def test_the_cluster_wide_role_grants_no_secret_access() -> None:
    cluster, namespaced = yaml.safe_load_all(rbac.render())
    assert not any("secrets" in rule["resources"] for rule in cluster["rules"])
    assert any("secrets" in rule["resources"] for rule in namespaced["rules"])
    for role in (cluster, namespaced):
        verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
        assert "*" not in verbs
        assert "escalate" not in verbs
        assert "bind" not in verbs


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_INFRA_OPERATOR_NAMESPACES", '["team-a", "team-b"]')
    monkeypatch.setenv("LLM_INFRA_OPERATOR_RESYNC_INTERVAL", "15")
    monkeypatch.setenv("LLM_INFRA_OPERATOR_CONTROL_PLANE_TOKEN", "tok-123456")
    settings = OperatorSettings()
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.resync_interval == 15
    assert "tok-123456" not in repr(settings)


def test_every_setting_is_documented() -> None:
    documented = (REPO / "docs" / "operator.md").read_text()
    missing = [name for name in OperatorSettings.model_fields if f"`{name}`" not in documented]
    assert missing == [], f"docs/operator.md does not describe {missing}"
