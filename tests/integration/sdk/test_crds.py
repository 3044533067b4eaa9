"""The generated CRDs on a real API server: installed, explained, listed, and strict about input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from llm_infra.api import v1alpha1
from llm_infra.api.conditions import set_condition
from llm_infra.api.v1alpha1.vectorcollection import HnswConfig, VectorCollectionStatus
from tests.corpus import REPO, InvalidCase, ValidCase, examples, invalid_cases, valid_cases
from tests.servers.kube import KubeServer


@pytest.fixture(scope="module")
def crds(kube: KubeServer) -> None:
    kube.install_crds(REPO / "crds", *(f"crd/{kind.crd.crd_name}" for kind in v1alpha1.KINDS))


def _kubectl(kube: KubeServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "bin" / "kubectl"), f"--kubeconfig={kube.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.usefixtures("crds")
def test_crds_are_established_with_their_names(kube: KubeServer) -> None:
    for kind in v1alpha1.KINDS:
        crd = json.loads(kube.kubectl("get", "crd", kind.crd.crd_name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == conditions["NamesAccepted"] == "True"
        assert crd["status"]["acceptedNames"]["shortNames"] == list(kind.crd.short_names)


@pytest.mark.usefixtures("crds")
def test_examples_apply_and_read_back_with_columns(kube: KubeServer, namespace: str) -> None:
    for path in examples():
        kube.kubectl("apply", "-n", namespace, "-f", str(path))
    for kind in v1alpha1.KINDS:
        table = kube.kubectl("get", kind.crd.short_names[0], "-n", namespace).stdout
        header = table.splitlines()[0].split()
        expected = (
            ["NAME", "READY", "REASON"] + [c.name.upper() for c in kind.crd.columns] + ["AGE"]
        )
        assert header == expected, table
        assert len(table.splitlines()) >= 2, f"no {kind.crd.kind} from examples/"
    listed = kube.kubectl("get", "llm-infra", "-n", namespace, "-o", "name").stdout.split()
    groups = {name.split("/")[0].split(".")[0] for name in listed}
    assert groups == {kind.crd.singular for kind in v1alpha1.KINDS}


@pytest.mark.usefixtures("crds")
def test_explain_shows_the_model_descriptions(kube: KubeServer) -> None:
    text = kube.kubectl("explain", "vectorcollection.spec.hnsw").stdout
    for field in ("ef_construct", "m", "full_scan_threshold"):
        description = HnswConfig.model_fields[field].description
        assert description
        assert " ".join(description.split()[:5]) in " ".join(text.split())


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize("case", invalid_cases(), ids=lambda c: c.id)
def test_invalid_manifest_is_refused_naming_the_field(
    kube: KubeServer, namespace: str, case: InvalidCase, tmp_path: Path
) -> None:
    *accepted, refused = case.documents  # update cases first create the object they then change
    for index, document in enumerate(case.documents):
        path = tmp_path / f"{index}.yaml"
        path.write_text(yaml.safe_dump(document))
        result = _kubectl(kube, "apply", "-n", namespace, "-f", str(path))
        if document is not refused:
            assert result.returncode == 0, result.stderr
    assert accepted or not case.update
    assert result.returncode != 0, f"{case.id} was accepted"
    assert case.field in result.stderr, result.stderr


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize("case", valid_cases(), ids=lambda c: c.id)
def test_valid_manifest_is_accepted(
    kube: KubeServer, namespace: str, case: ValidCase, tmp_path: Path
) -> None:
    for index, document in enumerate(case.documents):  # later documents update earlier ones
        path = tmp_path / f"{index}.yaml"
        path.write_text(yaml.safe_dump(document))
        result = _kubectl(kube, "apply", "-n", namespace, "-f", str(path))
        assert result.returncode == 0, f"{case.id} document {index}: {result.stderr}"


FLOATS_IN_INTEGER_FIELDS = [
    ("VectorCollection", {"vectors": {"size": 8.0}}, "spec.vectors.size"),
    # A field a cross-field rule reads: the float once failed inside that rule, at spec.
    (
        "Route",
        {
            "strategy": "weighted",
            "targets": [{"name": "a", "provider": "openai", "model": "m", "weight": 1.0}],
        },
        "spec.targets[0].weight",
    ),
]


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(("kind", "spec", "field"), FLOATS_IN_INTEGER_FIELDS)
def test_a_float_posted_for_an_integer_is_refused_at_its_field(
    kube: KubeServer, namespace: str, tmp_path: Path, kind: str, spec: dict[str, object], field: str
) -> None:
    # Posted as JSON, as a client library does (kubectl would send a YAML 8.0 as 8).
    info = next(k.crd for k in v1alpha1.KINDS if k.crd.kind == kind)
    body = {"apiVersion": info.api_version, "kind": kind, "metadata": {"name": "f"}, "spec": spec}
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body))
    assert ".0" in path.read_text()
    url = f"/apis/{info.group}/{info.version}/namespaces/{namespace}/{info.plural}"
    result = _kubectl(kube, "create", "--raw", url, "-f", str(path))
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
    assert "whole number written without a decimal point" in result.stderr


@pytest.mark.usefixtures("crds")
def test_explain_states_immutability_and_rules(kube: KubeServer) -> None:
    size = " ".join(kube.kubectl("explain", "vectorcollection.spec.vectors.size").stdout.split())
    assert "Immutable" in size
    assert "move an alias" in size
    name = " ".join(kube.kubectl("explain", "auditsink.spec.stream.name").stdout.split())
    assert "name is immutable" in name
    backoff = " ".join(kube.kubectl("explain", "route.spec.retries.backoff.initial").stdout.split())
    assert "initial must not be longer than max" in backoff


@pytest.mark.usefixtures("crds")
def test_status_subresource_takes_the_helper_conditions(kube: KubeServer, namespace: str) -> None:
    kube.kubectl(
        "apply", "-n", namespace, "-f", str(REPO / "examples" / "vectorcollection-rag.yaml")
    )
    before = json.loads(
        kube.kubectl("get", "vc", "support-docs", "-n", namespace, "-o", "json").stdout
    )
    generation = before["metadata"]["generation"]
    conditions = set_condition(
        [],
        "Ready",
        True,
        reason="CollectionReady",
        message="1,204 points",
        observed_generation=generation,
    )
    status = VectorCollectionStatus(
        observed_generation=generation,
        conditions=conditions,
        backend="qdrant",
        collection_name=f"{namespace}-support-docs",
        points_count=1204,
    )
    patch = json.dumps({"status": status.to_wire()})
    kube.kubectl(
        "patch",
        "vc",
        "support-docs",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    )

    after = json.loads(
        kube.kubectl("get", "vc", "support-docs", "-n", namespace, "-o", "json").stdout
    )
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == generation
    assert VectorCollectionStatus.model_validate(after["status"]) == status
    row = kube.kubectl("get", "vc", "support-docs", "-n", namespace, "--no-headers").stdout.split()
    assert row[1:3] == ["True", "CollectionReady"]
    assert "1204" in row
