"""The resource models: CRDs generated fresh and structural, the corpus judged in Python too."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from llm_infra import cli, errors
from llm_infra.api import Resource, crdgen, v1alpha1
from llm_infra.api.conditions import Condition, get_condition, set_condition
from llm_infra.api.v1alpha1 import route, vectorcollection
from llm_infra.api.v1alpha1._common import MAX_DURATION_SECONDS, Duration, duration_seconds
from tests.corpus import REPO, InvalidCase, ValidCase, examples, invalid_cases, valid_cases

KIND_BY_NAME = {kind.crd.kind: kind for kind in v1alpha1.KINDS}
PYTHON_CASES = [case for case in invalid_cases() if not case.update]


def test_crds_on_disk_are_freshly_generated() -> None:
    on_disk = {path.name: path.read_text() for path in (REPO / "crds").glob("*.yaml")}
    assert on_disk == crdgen.generate(), "crds/ is stale: run `make generate`"


def test_crds_command_writes_the_same_files(tmp_path: Path) -> None:
    assert cli.main(["crds", "--output", str(tmp_path)]) == 0
    written = {path.name: path.read_text() for path in tmp_path.glob("*.yaml")}
    assert written == crdgen.generate()


def _nodes(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        yield path, schema
        for name, child in schema.get("properties", {}).items():
            yield from _nodes(child, f"{path}.{name}")
        if "items" in schema:
            yield from _nodes(schema["items"], f"{path}[]")
        if isinstance(schema.get("additionalProperties"), dict):
            yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", v1alpha1.KINDS, ids=lambda k: k.crd.kind)
def test_schema_is_structural_and_described(kind: type[Resource]) -> None:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(schema["properties"]["spec"], "spec"):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "const", "title"} & node.keys(), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        if path != "spec" and not path.endswith("[]") and not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description for kubectl explain"


@pytest.mark.parametrize("kind", v1alpha1.KINDS, ids=lambda k: k.crd.kind)
def test_crd_names_and_columns(kind: type[Resource]) -> None:
    spec = crdgen.crd(kind)["spec"]
    assert spec["group"] == "infra.llmdevops.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["llm-infra"]
    assert spec["names"]["shortNames"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:2] == ["Ready", "Reason"]
    assert columns[-2:] == ["Age", "Message"]
    assert version["additionalPrinterColumns"][-1]["priority"] == 1


def test_corpus_covers_every_kind() -> None:
    per_kind = {kind.crd.kind.lower(): 0 for kind in v1alpha1.KINDS}
    for case in invalid_cases():
        per_kind[case.path.parent.name] += 1
    assert all(count >= 8 for count in per_kind.values()), per_kind
    assert sum(per_kind.values()) >= 40


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_examples_validate_and_round_trip(path: Path) -> None:
    for document in _documents(path):
        if document["kind"] in ("ConfigMap", "Secret"):  # what a ConfigSource layer reads
            continue
        model = KIND_BY_NAME[document["kind"]].from_manifest(document)
        again = type(model).from_manifest(model.to_wire())
        assert again == model == type(model).model_validate(document)


@pytest.mark.parametrize("case", valid_cases(), ids=lambda c: c.id)
def test_valid_manifest_is_accepted_in_python(case: ValidCase) -> None:
    for document in case.documents:
        model = KIND_BY_NAME[document["kind"]].from_manifest(document)
        assert type(model).from_manifest(model.to_wire()) == model


def test_valid_corpus_covers_every_kind() -> None:
    kinds = {case.path.parent.name for case in valid_cases()}
    assert kinds == {kind.crd.kind.lower() for kind in v1alpha1.KINDS}


@pytest.mark.parametrize("case", PYTHON_CASES, ids=lambda c: c.id)
def test_invalid_manifest_is_refused_in_python(case: InvalidCase) -> None:
    kind = KIND_BY_NAME[case.manifest["kind"]]
    with pytest.raises(pydantic.ValidationError) as refused:
        kind.from_manifest(case.manifest)
    locations = [".".join(str(part) for part in error["loc"]) for error in refused.value.errors()]
    assert any(loc.startswith(case.python_field) for loc in locations), locations
    # The same error through the SDK's error tree names the field too.
    mapped = errors.from_exception(refused.value)
    assert isinstance(mapped, errors.ValidationError)
    assert mapped.field is not None


T0 = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def test_set_condition_keeps_transition_time_unless_status_flips() -> None:
    conditions = set_condition([], "Ready", False, reason="Pending", observed_generation=1, now=T0)
    same = set_condition(conditions, "Ready", False, reason="StillPending", message="x", now=T1)
    ready = get_condition(same, "Ready")
    assert ready is not None
    assert (ready.reason, ready.message, ready.last_transition_time) == ("StillPending", "x", T0)
    flipped = get_condition(set_condition(same, "Ready", True, reason="Ready", now=T1), "Ready")
    assert flipped is not None
    assert (flipped.status, flipped.last_transition_time) == ("True", T1)


def test_set_condition_keeps_order_and_knows_unknown() -> None:
    conditions: list[Condition] = []
    for type_ in ("Ready", "BackendReachable", "Synced"):
        conditions = set_condition(conditions, type_, None, reason="Starting", now=T0)
    conditions = set_condition(conditions, "BackendReachable", True, reason="Connected", now=T1)
    assert [c.type for c in conditions] == ["Ready", "BackendReachable", "Synced"]
    assert [c.status for c in conditions] == ["Unknown", "True", "Unknown"]


def test_condition_wire_shape() -> None:
    (condition,) = set_condition([], "Ready", True, reason="Ready", observed_generation=3, now=T0)
    assert condition.to_wire() == {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "",
        "lastTransitionTime": "2026-11-25T12:00:00Z",
        "observedGeneration": 3,
    }


def test_kind_built_in_python_carries_its_api_version_and_kind() -> None:
    collection = v1alpha1.VectorCollection(metadata={"name": "kb"}, spec={"vectors": {"size": 8}})
    wire = collection.to_wire()
    assert (wire["apiVersion"], wire["kind"]) == ("infra.llmdevops.io/v1alpha1", "VectorCollection")
    assert wire["spec"]["hnsw"] == {"m": 16, "efConstruct": 100, "fullScanThreshold": 10000}


def test_manifest_of_another_kind_is_refused() -> None:
    manifest = {"apiVersion": "infra.llmdevops.io/v1alpha1", "kind": "Route", "spec": {}}
    with pytest.raises(pydantic.ValidationError, match="kind must be 'VectorCollection'"):
        v1alpha1.VectorCollection.model_validate({**manifest, "spec": {"vectors": {"size": 8}}})


@pytest.mark.parametrize("kind", v1alpha1.KINDS, ids=lambda k: k.crd.kind)
def test_explain_states_every_rule_where_it_applies(kind: type[Resource]) -> None:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in [("", schema), *_nodes(schema["properties"]["spec"], "spec")]:
        for rule in node.get("x-kubernetes-validations", ()):
            if rule == crdgen.WHOLE_NUMBER:
                continue  # every integer's: its type says it
            target = node
            for part in filter(None, rule.get("fieldPath", "").split(".")):
                target = target["properties"][part]
            assert rule["message"] in target["description"], (path, rule)


def _transition_rules(kind: type[Resource]) -> list[str]:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [
        f"{path}{rule.get('fieldPath', '')}"
        for path, node in _nodes(schema["properties"]["spec"], "spec")
        for rule in node.get("x-kubernetes-validations", ())
        if "oldSelf" in rule["rule"]
    ]


def test_every_field_documented_immutable_has_a_transition_rule() -> None:
    assert sorted(_transition_rules(v1alpha1.VectorCollection)) == [
        "spec.backend",
        "spec.collectionName",
        "spec.namedVectors[].distance",
        "spec.namedVectors[].size",
        "spec.vectors.distance",
        "spec.vectors.size",
    ]
    assert sorted(_transition_rules(v1alpha1.AuditSink)) == [
        "spec.stream.denyDelete",
        "spec.stream.denyPurge",
        "spec.stream.name",
        "spec.stream.storage",
    ]
    for kind in (v1alpha1.ConfigSource, v1alpha1.Route):
        assert _transition_rules(kind) == []
    # The docstrings say so too: they are the `kubectl explain` text.
    fields = vectorcollection.VectorParams.model_fields
    assert "Immutable" in (fields["size"].description or "")


def test_nullable_enums_take_null() -> None:
    for kind in v1alpha1.KINDS:
        schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _nodes(schema):
            if node.get("nullable") and "enum" in node:
                assert None in node["enum"], path


def test_every_integer_is_an_int64_on_both_sides() -> None:
    for kind in v1alpha1.KINDS:
        schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _nodes(schema):
            if node.get("type") == "integer":
                assert node["format"] == "int64", path
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 9223372036854775807"):
        route.Budgets.model_validate({"tokensPerDay": 2**63})
    assert route.Budgets.model_validate({"tokensPerDay": 2**63 - 1}).tokens_per_day == 2**63 - 1


def test_durations_are_bounded_below_what_cel_can_convert() -> None:
    adapter = pydantic.TypeAdapter(Duration)
    longest = "999999.999999999h999999.9m999999999.9s999999999999.9ms"[:32]
    for accepted in ("30s", "1h30m", "1.5h", "250ms", "2h45m10s500ms", "876000h"):
        assert adapter.validate_python(accepted) == accepted
    for refused in ("", "9999999h", "1m1h", "1s1s", "1 minute", "5", "-1s", longest):
        with pytest.raises(pydantic.ValidationError):
            adapter.validate_python(refused)
    go_limit = (2**63 - 1) / 1e9
    assert duration_seconds("999999h999999m999999999s999999999999ms") < MAX_DURATION_SECONDS
    assert go_limit > MAX_DURATION_SECONDS


def test_manifests_parse_strictly_and_wire_data_stays_lax() -> None:
    manifest = {"metadata": {"name": "kb"}, "spec": {"vectors": {"size": "384", "onDisk": "yes"}}}
    with pytest.raises(pydantic.ValidationError) as refused:
        v1alpha1.VectorCollection.from_manifest(manifest)
    assert {".".join(map(str, e["loc"])) for e in refused.value.errors()} == {
        "spec.vectors.size",
        "spec.vectors.onDisk",
    }
    snake = {"metadata": {"name": "kb"}, "spec": {"vectors": {"size": 8}, "collection_name": "x"}}
    with pytest.raises(pydantic.ValidationError, match=r"spec\.collection_name"):
        v1alpha1.VectorCollection.from_manifest(snake)
    # What our own code hands over keeps parsing: Python names, datetimes as text.
    assert v1alpha1.VectorCollection.model_validate(snake).spec.collection_name == "x"
    status = {"conditions": [], "lastRefreshTime": "2026-11-25T12:00:00Z"}
    source = {"metadata": {"name": "app"}, "spec": {"layers": [{"name": "a", "inline": {}}]}}
    parsed = v1alpha1.ConfigSource.from_manifest({**source, "status": status})
    assert parsed.status is not None
    assert parsed.status.last_refresh_time == T0


def test_metadata_name_is_checked_as_the_kind_needs() -> None:
    spec = {"vectors": {"size": 8}}
    for refused in ("Docs", "docs_v1", "-docs", "a" * 254):
        with pytest.raises(pydantic.ValidationError, match=r"metadata\.name"):
            v1alpha1.VectorCollection.model_validate({"metadata": {"name": refused}, "spec": spec})
    longest = ("a" * 62 + ".") * 4 + "b"
    named = v1alpha1.VectorCollection.model_validate({"metadata": {"name": longest}, "spec": spec})
    assert named.metadata.name == longest
    layers = {"layers": [{"name": "a", "inline": {}}]}
    short = v1alpha1.ConfigSource.model_validate({"metadata": {"name": "a" * 63}, "spec": layers})
    assert short.metadata.name == "a" * 63
    with pytest.raises(pydantic.ValidationError, match="at most 63 characters"):
        v1alpha1.ConfigSource.model_validate({"metadata": {"name": "a" * 64}, "spec": layers})


def test_duplicate_key_message_names_the_key_and_value() -> None:
    targets = [{"name": "openai", "provider": "openai", "model": "m"}] * 2
    with pytest.raises(pydantic.ValidationError) as refused:
        route.RouteSpec.model_validate({"targets": targets})
    (error,) = refused.value.errors()
    assert error["msg"] == "duplicate name 'openai': each item needs its own name"
