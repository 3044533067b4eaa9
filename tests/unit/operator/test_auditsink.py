"""The AuditSink reconciler's pure decisions and how it classifies NATS failures into conditions."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest

from llm_infra import audit, errors, kube, mq
from llm_infra.api.conditions import get_condition
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec, AuditSinkStatus, SinkStatus
from llm_infra_operator.conditions import StatusConditions
from llm_infra_operator.context import Context
from llm_infra_operator.reconcilers import auditsink
from llm_infra_operator.settings import OperatorSettings

STREAM = "AUDIT_ns_a"


def spec(*sinks: str, **stream: Any) -> AuditSinkSpec:
    return AuditSinkSpec.model_validate(
        {
            "sinks": [{"name": s, "file": {"path": f"/var/log/{s}.jsonl"}} for s in sinks],
            "stream": stream,
        }
    )


def lag(pending: int, ack_pending: int = 0) -> audit.ConsumerLag:
    return audit.ConsumerLag(pending, ack_pending, delivered_stream_seq=0)


STATE = audit.StreamState(messages=12, bytes=3400, first_seq=1, last_seq=12, consumer_count=2)


# -- decide_immutable_changes -----------------------------------------------------------------


def test_a_new_stream_has_nothing_immutable_to_change() -> None:
    wanted = audit.stream_spec("ns", "a", spec("s"))
    assert auditsink.decide_immutable_changes(wanted, None, None) == []
    assert auditsink.decide_immutable_changes(wanted, wanted, STREAM) == []


def test_storage_change_names_the_manifest_field() -> None:
    wanted = audit.stream_spec("ns", "a", spec("s", storage="memory"))
    observed = audit.stream_spec("ns", "a", spec("s"))
    [change] = auditsink.decide_immutable_changes(wanted, observed, STREAM)
    assert change.startswith("spec.stream.storage ")
    assert "the stream has file, the spec asks for memory" in change


def test_lifting_deny_flags_is_immutable_but_mutable_limits_are_not() -> None:
    observed = audit.stream_spec("ns", "a", spec("s"))
    wanted = audit.stream_spec("ns", "a", spec("s", denyPurge=False, maxAge="1h", maxMsgs=5))
    changes = auditsink.decide_immutable_changes(wanted, observed, STREAM)
    assert [c.split(" ")[0] for c in changes] == ["spec.stream.denyPurge"]


def test_renaming_the_stream_is_immutable() -> None:
    wanted = audit.stream_spec("ns", "a", spec("s", name="NEW"))
    [change] = auditsink.decide_immutable_changes(wanted, None, STREAM)
    assert change == f"spec.stream.name (the stream is {STREAM}, the spec asks for NEW)"


# -- consumers, status, ready ----------------------------------------------------------------


def test_stale_consumers_are_only_ours_and_only_removed_sinks() -> None:
    existing = ["sink-keep", "sink-gone", "sink-also-gone", "reporting", "other-sink-x"]
    assert auditsink.decide_stale_consumers(existing, spec("keep", "new")) == [
        "sink-also-gone",
        "sink-gone",
    ]
    assert auditsink.decide_stale_consumers([], spec("keep")) == []


def test_status_has_stream_counters_and_lag_per_sink_in_spec_order() -> None:
    written = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    previous = AuditSinkStatus(
        sinks=[
            SinkStatus(name="siem", lag=1, last_error="503 from siem", last_delivery_time=written),
            SinkStatus(name="removed", lag=9),
        ]
    )
    status = auditsink.decide_status(
        previous, STREAM, STATE, {"local": lag(0), "siem": lag(5, ack_pending=2)}
    )
    assert (status.stream_name, status.messages, status.bytes) == (STREAM, 12, 3400)
    assert (status.first_sequence, status.last_sequence) == (1, 12)
    local, siem = status.sinks
    assert (local.name, local.consumer, local.lag, local.delivered) == (
        "local",
        "sink-local",
        0,
        12,
    )
    assert (siem.consumer, siem.lag, siem.delivered) == ("sink-siem", 7, 5)
    # What the audit writer records is kept; a removed sink's entry is not.
    assert (siem.last_error, siem.last_delivery_time) == ("503 from siem", written)
    assert local.last_error is None
    assert previous.sinks[0].lag == 1  # the previous status is not modified


def test_ready_message_says_in_sync_or_who_is_behind() -> None:
    in_sync = auditsink.decide_ready_message(STREAM, STATE, {"a": lag(0), "b": lag(0)})
    assert in_sync == f"stream {STREAM}: 12 events, sinks in sync"
    behind = auditsink.decide_ready_message(STREAM, STATE, {"a": lag(0), "b": lag(3, 1)})
    assert behind == f"stream {STREAM}: 12 events; not yet delivered: b 4"


def test_stream_plan_described_with_manifest_field_names() -> None:
    wanted = audit.stream_spec("ns", "a", spec("s"))
    describe = auditsink.describe_stream_plan
    assert describe(mq.StreamPlan(mq.Action.CREATE, wanted)) == "stream AUDIT_ns_a created"
    updated = mq.StreamPlan(mq.Action.UPDATE, wanted, ("max_age", "discard"))
    assert describe(updated) == "stream AUDIT_ns_a updated (maxAge, discard)"
    assert describe(mq.StreamPlan(mq.Action.NONE, wanted)) == "stream AUDIT_ns_a matches the spec"


def test_finalizer_only_for_delete_policy() -> None:
    assert auditsink.AuditSinkReconciler.needs_finalizer({"deletionPolicy": "Delete"})
    assert not auditsink.AuditSinkReconciler.needs_finalizer({"deletionPolicy": "Retain"})
    assert not auditsink.AuditSinkReconciler.needs_finalizer({})


# -- failures -> conditions ------------------------------------------------------------------


@pytest.fixture
def reconciler() -> auditsink.AuditSinkReconciler:
    settings = OperatorSettings(nats_url="nats://audit:hunter2@nats.infra:4222")
    # _failed reads only the settings: no Kubernetes client is needed.
    return auditsink.AuditSinkReconciler(Context(settings, cast(kube.Kube, None)))


def classify(
    reconciler: auditsink.AuditSinkReconciler, exc: errors.InfraError
) -> tuple[bool, dict[str, tuple[str, str, str]]]:
    conditions = StatusConditions([], 3)
    outcome = reconciler._failed(exc, STREAM, conditions, AuditSinkStatus())
    found = {
        type_: (str(c.status), c.reason, c.message)
        for type_ in ("Ready", "StreamReady", "ConsumersReady")
        if (c := get_condition(conditions.conditions, type_)) is not None
    }
    return outcome.retry, found


def test_unreachable_nats_is_retried_and_names_the_url_without_credentials(
    reconciler: auditsink.AuditSinkReconciler,
) -> None:
    retry, found = classify(reconciler, errors.MessageQueueError("connection refused"))
    assert retry
    status, reason, message = found["StreamReady"]
    assert (status, reason) == ("False", "StreamUnreachable")
    assert "nats://***@nats.infra:4222" in message
    assert "hunter2" not in message
    assert "natsUrl" in message
    assert found["Ready"][:2] == ("False", "StreamUnreachable")


def test_server_refusal_is_not_retried_and_keeps_the_field(
    reconciler: auditsink.AuditSinkReconciler,
) -> None:
    refused = errors.MessageQueueRejected(
        "spec.stream.replicas: replicas > 1 not supported; set spec.stream.replicas to 1",
        destination=STREAM,
        error_code=10074,
    )
    retry, found = classify(reconciler, refused)
    assert not retry
    status, reason, message = found["StreamReady"]
    assert (status, reason) == ("False", "StreamRejected")
    assert "spec.stream.replicas" in message
    assert "ConsumersReady" not in found


def test_consumer_refusal_is_reported_on_consumers(
    reconciler: auditsink.AuditSinkReconciler,
) -> None:
    refused = errors.MessageQueueRejected(
        "cannot change in place: deliver: wanted pull, found push",
        destination=f"{STREAM}/sink-siem",
    )
    retry, found = classify(reconciler, refused)
    assert not retry
    assert found["StreamReady"][0] == "True"
    assert found["ConsumersReady"][:2] == ("False", "ConsumerRejected")
    assert f"{STREAM}/sink-siem" in found["ConsumersReady"][2]
    assert found["Ready"][:2] == ("False", "ConsumerRejected")


def test_a_vanished_stream_is_retried(reconciler: auditsink.AuditSinkReconciler) -> None:
    retry, found = classify(reconciler, errors.MessageQueueNotFound("stream not found"))
    assert retry
    assert found["StreamReady"][:2] == ("False", "StreamMissing")


def test_other_errors_go_to_the_engine(reconciler: auditsink.AuditSinkReconciler) -> None:
    with pytest.raises(errors.InvalidCredentials):
        classify(reconciler, errors.InvalidCredentials("authorization violation"))
