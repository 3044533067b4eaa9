"""llm_infra.audit stream plan: an AuditSinkSpec mapped to the mq stream and consumer specs."""

from __future__ import annotations

import dataclasses
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
        audit.default_stream_name("team-a", "platform.audit-x") == "AUDIT_team-a_platform_audit-x"
    )


def test_stream_name_from_spec_wins() -> None:
    assert audit.stream_name("ns", "n", minimal(name="MINE")) == "MINE"
    assert audit.stream_name("ns", "n", minimal()) == "AUDIT_ns_n"


def test_default_stream_name_is_jetstream_safe() -> None:
    name = audit.default_stream_name("kube-system", "a.b-c.d")
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", name)
    longest = audit.default_stream_name("n" * 63, ".".join(["s" * 63] * 3) + ".ss")
    assert len(longest) <= audit.MAX_STREAM_NAME
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", longest)


def _invert(stream: str) -> tuple[str, str]:
    """The (namespace, name) a plain default stream name came from: the proof it is injective."""
    assert stream.startswith("AUDIT_")
    namespace, _, name = stream.removeprefix("AUDIT_").partition("_")
    return namespace, name.replace("_", ".")


# Namespaces are DNS labels, names DNS subdomains: lowercase, no "_", labels between dots.
_LABELS = ["a", "x", "a-x", "team", "team-a", "a-b", "b", "0", "x-1"]
_NAMES = [*_LABELS, "a.x", "a.b", "team.a", "a-x.b", "a.b.c", "x.1-2"]


def test_default_stream_names_are_injective() -> None:
    # Inverting every name gives back its AuditSink, so no two AuditSinks share one ...
    for namespace in _LABELS:
        for name in _NAMES:
            assert _invert(audit.default_stream_name(namespace, name)) == (namespace, name)
    # ... in particular the pair the old AUDIT_<NS>_<NAME> (upper-cased, "-" as "_") merged.
    pairs = [(ns, n) for ns in _LABELS for n in _NAMES]
    assert len({audit.default_stream_name(ns, n) for ns, n in pairs}) == len(pairs)
    assert audit.legacy_stream_name("team", "a-x") == audit.legacy_stream_name("team-a", "x")
    assert audit.default_stream_name("team", "a-x") != audit.default_stream_name("team-a", "x")


def test_too_long_default_names_are_hashed_apart_from_plain_ones() -> None:
    namespace, long_name = "n" * 63, "s" * 253
    hashed = audit.default_stream_name(namespace, long_name)
    assert hashed.startswith("AUDIT-")  # never a plain name, which starts AUDIT_
    other = audit.default_stream_name(namespace, "s" * 252 + "t")
    assert hashed != other
    assert len(hashed) <= audit.MAX_STREAM_NAME


def test_subjects_of_two_audit_sinks_never_overlap() -> None:
    # The stream captures <subject>.>: disjoint unless one subject is a token prefix of another.
    pairs = [(ns, n) for ns in _LABELS for n in _NAMES]
    subjects = {audit.audit_subject(ns, n): (ns, n) for ns, n in pairs}
    assert len(subjects) == len(pairs)
    for subject in subjects:
        tokens = subject.split(".")
        assert len(tokens) == 4  # llm-infra.audit.<namespace>.<name>: all the same length
        assert all(tokens)
        assert not any(c in subject for c in " *>")


def _observed(**fields: Any) -> mq.StreamSpec:
    return dataclasses.replace(audit.stream_spec("team-a", "victim", minimal()), **fields)


def test_a_stream_labelled_for_another_audit_sink_is_a_conflict() -> None:
    ours = _observed()
    assert audit.stream_conflict(None, "team-a", "victim") is None
    assert audit.stream_conflict(ours, "team-a", "victim") is None
    reason = audit.stream_conflict(ours, "evil", "x")
    assert reason == "stream AUDIT_team-a_victim belongs to AuditSink team-a/victim"
    error = audit.conflict_error(reason, "evil", "x", ours.name)
    assert error.status == 409
    assert "set spec.stream.name to a stream of its own" in error.message


def test_an_unlabelled_stream_is_adopted_only_with_exactly_its_subjects() -> None:
    legacy = _observed(metadata={})
    assert audit.stream_conflict(legacy, "team-a", "victim") is None
    reason = audit.stream_conflict(legacy, "team", "a-x")
    assert reason is not None
    assert "no AuditSink" in reason


def test_default_shaped_explicit_names_are_reserved() -> None:
    own = minimal(name="AUDIT_ns_n")
    assert audit.reserved_name_conflict("ns", "n", own) is None
    assert audit.reserved_name_conflict("ns", "n", minimal(name="trail")) is None
    assert audit.reserved_name_conflict("ns", "n", minimal(name="AUDIT_PLATFORM")) is None
    for squat in ("AUDIT_team-a_victim", "audit_x_y", "AUDIT_TEAM-A_VICTIM", "AUDIT-y"):
        assert "reserved" in (audit.reserved_name_conflict("ns", "n", minimal(name=squat)) or "")


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
        metadata={audit.OWNER_LABEL: "security/platform-audit"},
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
