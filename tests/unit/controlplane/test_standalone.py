"""Standalone mode's reading of a resource folder: kinds, namespaces, Secrets, and problems."""

from __future__ import annotations

import base64
from pathlib import Path

from llm_infra.api.v1alpha1 import VectorCollection
from llm_infra_controlplane.standalone import applier as standalone
from tests.corpus import EXAMPLES


def test_the_examples_read_without_problems() -> None:
    folder = standalone.read_folder(EXAMPLES)
    assert folder.problems == []
    assert standalone.summary(folder) == {
        "AuditSink": 2, "ConfigSource": 2, "Route": 1, "VectorCollection": 2,
    }  # fmt: skip
    quickstart = folder.resources[("VectorCollection", "default", "quickstart")]
    assert isinstance(quickstart.obj, VectorCollection)
    assert quickstart.source == "vectorcollection-quickstart.yaml#1"
    assert folder.config_maps[("default", "rag-app-overrides")]["overrides.yaml"].strip()


def test_problems_name_the_file_and_field_and_the_rest_still_reads(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: infra.llmdevops.io/v1alpha1\nkind: VectorCollection\n"
        "metadata: {name: broken}\nspec: {vectors: {size: 0}}\n"
        "---\nkind: Deployment\nmetadata: {name: web}\n"
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: nameless-ok, namespace: team}\n"
        f"data: {{token: {base64.b64encode(b's3cr3t').decode()}}}\nstringData: {{extra: x}}\n"
        "---\nkind: ConfigMap\nmetadata: {}\n"
    )
    (tmp_path / "notes.txt").write_text("not yaml, not read")
    (tmp_path / "broken.yml").write_text("key: [unclosed\n")
    folder = standalone.read_folder(tmp_path)
    problems = "\n".join(folder.problems)
    assert "bad.yaml#1: VectorCollection broken: spec.vectors.size" in problems
    assert "bad.yaml#2: kind Deployment is not applied in standalone mode" in problems
    assert "bad.yaml#4: ConfigMap without metadata.name" in problems
    assert "broken.yml: not readable as YAML" in problems
    assert folder.secrets[("team", "nameless-ok")] == {"token": "s3cr3t", "extra": "x"}
    assert "s3cr3t" not in problems
    assert folder.resources == {}


def test_the_digest_follows_the_content(tmp_path: Path) -> None:
    manifest = (EXAMPLES / "route-chat.yaml").read_text()
    (tmp_path / "r.yaml").write_text(manifest)
    first = standalone.read_folder(tmp_path).resources[("Route", "default", "chat")]
    (tmp_path / "r.yaml").write_text(manifest.replace("weight: 70", "weight: 60"))
    second = standalone.read_folder(tmp_path).resources[("Route", "default", "chat")]
    assert first.digest != second.digest
    assert standalone.read_folder(tmp_path).resources[("Route", "default", "chat")] == second


def test_yaml_dates_in_a_layer_read_and_digest(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "apiVersion: infra.llmdevops.io/v1alpha1\nkind: ConfigSource\nmetadata: {name: app}\n"
        "spec: {layers: [{name: base, inline: {release: 2024-01-01}}]}\n"
    )
    first, again = standalone.read_folder(tmp_path), standalone.read_folder(tmp_path)
    assert first.problems == []
    key = ("ConfigSource", "default", "app")
    assert first.resources[key].digest == again.resources[key].digest


def test_a_secret_value_that_is_not_base64_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ndata: {password: s3cr3tX}\n"
    )
    folder = standalone.read_folder(tmp_path)
    assert folder.problems == [
        "s.yaml#1: Secret db: a data value is not base64: encode it, or use stringData"
    ]
    assert folder.secrets == {}
