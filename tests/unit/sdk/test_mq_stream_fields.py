"""StreamSpec.discard / .compression: defaults, the JetStream wire mapping both ways, the plan."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nats.js import api

from llm_infra import audit, mq
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec
from llm_infra.mq import Compression, Discard, jetstream


def on_the_wire(spec: mq.StreamSpec) -> dict[str, Any]:
    """The JSON the client sends for `spec`, as the server would echo it back."""
    wire: dict[str, Any] = json.loads(json.dumps(jetstream._stream_config(spec).as_dict()))
    return wire


def test_defaults_are_jetstreams() -> None:
    spec = mq.StreamSpec("S", ("s.>",))
    assert (spec.discard, spec.compression) == ("old", "none")
    wire = on_the_wire(spec)
    assert (wire["discard"], wire["compression"]) == ("old", "none")


@pytest.mark.parametrize(
    ("discard", "compression"), [("new", "s2"), ("old", "s2"), ("new", "none")]
)
def test_round_trip_through_the_wire(discard: Discard, compression: Compression) -> None:
    spec = mq.StreamSpec("S", ("s.>",), discard=discard, compression=compression)
    wire = on_the_wire(spec)
    assert (wire["discard"], wire["compression"]) == (discard, compression)
    assert jetstream.stream_spec_of(api.StreamConfig.from_response(wire), "S") == spec


def test_an_older_server_without_the_fields_reads_as_the_defaults() -> None:
    wire = on_the_wire(mq.StreamSpec("S", ("s.>",), discard="new", compression="s2"))
    del wire["discard"], wire["compression"]
    observed = jetstream.stream_spec_of(api.StreamConfig.from_response(wire), "S")
    assert (observed.discard, observed.compression) == ("old", "none")


def test_both_change_in_place() -> None:
    observed = mq.StreamSpec("S", ("s.>",))
    wanted = mq.StreamSpec("S", ("s.>",), discard="new", compression="s2")
    plan = mq.decide_stream(wanted, observed)
    assert plan.action is mq.Action.UPDATE
    assert set(plan.changes) == {"discard", "compression"}
    assert plan.mismatches == ()
    assert mq.decide_stream(wanted, wanted).action is mq.Action.NONE


def test_audit_stream_spec_maps_both() -> None:
    sinks = [{"name": "local", "file": {"path": "/var/log/audit.jsonl"}}]
    spec = AuditSinkSpec.model_validate(
        {"sinks": sinks, "stream": {"discard": "new", "compression": "s2"}}
    )
    mapped = audit.stream_spec("ns", "n", spec)
    assert (mapped.discard, mapped.compression) == ("new", "s2")
    default = audit.stream_spec("ns", "n", AuditSinkSpec.model_validate({"sinks": sinks}))
    assert (default.discard, default.compression) == ("old", "none")
