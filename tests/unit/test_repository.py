"""The repository keeps its promises: two README commands, CI runs the test one, pins agree."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "the quick start has a ```sh block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_quick_start_has_exactly_two_commands() -> None:
    assert _quick_start_commands() == ["make up", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^exec make test$", ci, re.MULTILINE)
    assert "export CI=true" in ci


def test_kubernetes_staging_modules_are_pinned_to_the_matching_release() -> None:
    # k8s.io/kubernetes requires its staging repos at v0.0.0; each replace line
    # must point at v0.<minor>.<patch> of the same release, or the build mixes
    # versions (or fails with "unknown revision v0.0.0").
    go_mod = (REPO / "hack" / "tools" / "kube" / "go.mod").read_text()
    kube = re.search(r"^\tk8s\.io/kubernetes v1\.(\d+\.\d+)\b", go_mod, re.MULTILINE)
    assert kube, "hack/tools/kube/go.mod requires k8s.io/kubernetes"
    replaces = re.findall(r"^replace (k8s\.io/\S+) => (k8s\.io/\S+) (v\S+)$", go_mod, re.MULTILINE)
    assert len(replaces) >= 31  # 33 staging repos in 1.36/1.37
    for source, target, version in replaces:
        assert source == target
        assert version == f"v0.{kube.group(1)}", f"{source} pinned at {version}"
