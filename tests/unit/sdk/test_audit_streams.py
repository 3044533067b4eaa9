"""llm_infra.audit stream plan: an AuditSinkSpec mapped to the mq stream and consumer specs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_infra import audit, mq
from llm_infra.api.v1alpha1.auditsink import AuditSink, AuditSinkSpec

EXAMPLE = Path(__file__).parents[3] / "examples" / "auditsink-platform.yaml"
FILE_SINK = {"name": "local", "file": {"path": "/var/log/audit.jsonl"}}


@pytest.fixture
def platform() -> AuditSinkSpec:
    return AuditSink.model_validate(yaml.safe_load(EXAMPLE.read_text())).spec


def minimal(**stream: Any) -> AuditSinkSpec:
    return AuditSinkSpec.model_validate({"sinks": [FILE_SINK], "stream": stream})


def test_subject_and_default_stream_name() -> None:
    assert (
        audit.audit_subject("team-a", "platform-audit") == "llm-infra.audit.team-a.platform-audit"
    )
    # A dotted Kubernetes name stays one subject token.
    assert audit.audit_subject("ns", "a.b") == "llm-infra.audit.ns.a_b"
    assert (
        audit.default_stream_name("team-a", "platform.audit-x") == "AUDIT_TEAM_A_PLATFORM_AUDIT_X"
    )


def test_stream_name_from_spec_wins() -> None:
    assert audit.stream_name("ns", "n", minimal(name="MINE")) == "MINE"
    assert audit.stream_name("ns", "n", minimal()) == "AUDIT_NS_N"


def test_default_stream_name_is_jetstream_safe() -> None:
    name = audit.default_stream_name("kube-system", "a.b-c.d")
    assert re.fullmatch(r"[A-Z0-9_]+", name)


def test_stream_spec_of_the_example(platform: AuditSinkSpec) -> None:
    assert audit.stream_spec("security", "platform-audit", platform) == mq.StreamSpec(
        name="AUDIT_PLATFORM",
        subjects=("llm-infra.audit.security.platform-audit.>",),
        storage=mq.Storage.FILE,
        replicas=3,
        max_age=2160 * 3600.0,
        max_bytes=53687091200,
        max_msgs=-1,
        duplicate_window=120.0,
        deny_delete=True,
        deny_purge=True,
        discard="old",
        compression="s2",
    )


def test_stream_spec_defaults_and_overrides() -> None:
    default = audit.stream_spec("ns", "n", minimal())
    assert (default.max_age, default.max_bytes, default.max_msgs) == (0.0, -1, -1)
    assert (default.storage, default.replicas) == (mq.Storage.FILE, 1)
    assert (default.deny_delete, default.deny_purge) == (True, True)
    custom = audit.stream_spec(
        "ns",
        "n",
        minimal(
            storage="memory",
            maxAge="1h30m",
            duplicateWindow="500ms",
            maxMsgs=10,
            denyDelete=False,
            denyPurge=False,
        ),
    )
    assert (custom.storage, custom.max_age, custom.duplicate_window) == (
        mq.Storage.MEMORY,
        5400.0,
        0.5,
    )
    assert (custom.max_msgs, custom.deny_delete, custom.deny_purge) == (10, False, False)


def test_consumer_per_sink(platform: AuditSinkSpec) -> None:
    local, siem = (audit.consumer_spec("security", "platform-audit", s) for s in platform.sinks)
    subject = "llm-infra.audit.security.platform-audit.>"
    assert local == mq.ConsumerSpec(
        durable="sink-local-file", filter_subject=subject, max_deliver=6, max_ack_pending=100
    )
    assert siem == mq.ConsumerSpec(
        durable="sink-siem", filter_subject=subject, max_deliver=11, max_ack_pending=500
    )
    # The filter covers exactly what the stream holds.
    assert audit.stream_spec("security", "platform-audit", platform).subjects == (subject,)


def test_durable_names_are_jetstream_safe(platform: AuditSinkSpec) -> None:
    for sink in platform.sinks:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", audit.sink_durable(sink.name))


def test_consumer_lag_undelivered_counts_ack_pending() -> None:
    lag = audit.ConsumerLag(num_pending=4, num_ack_pending=3, delivered_stream_seq=10)
    assert lag.undelivered == 7


def test_all_is_complete() -> None:
    from llm_infra.audit import _chain, _streams

    public = {
        name
        for module in (_chain, _streams)
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
        and (isinstance(value, type) or callable(value))
    }
    assert public <= set(audit.__all__)
    assert all(hasattr(audit, name) for name in audit.__all__)
