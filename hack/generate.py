"""Regenerate every generated file from its source of truth: `make generate`.

Each generated file starts with a GENERATED line naming this script, and a unit
test renders it again and compares, so a stale file fails `make test`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from llm_infra import errors
from llm_infra.api import crdgen
from llm_infra_controlplane.feeds import rbac as controlplane_rbac
from llm_infra_operator.chart import peering, rbac

REPO = Path(__file__).resolve().parents[1]

GENERATED: dict[str, Callable[[], str]] = {
    "docs/errors.md": errors.render_catalogue_markdown,
    **{f"crds/{name}": (lambda text=text: text) for name, text in crdgen.generate().items()},
    "charts/llm-infra/files/operator-rbac.yaml": rbac.render,
    "charts/llm-infra/files/kopf-peering-crds.yaml": peering.render,
    "charts/llm-infra/files/controlplane-rbac.yaml": controlplane_rbac.render,
}


def main() -> int:
    for relative, render in GENERATED.items():
        path = REPO / relative
        text = render()
        if path.exists() and path.read_text(encoding="utf-8") == text:
            print(f"unchanged  {relative}")
            continue
        path.write_text(text, encoding="utf-8")
        print(f"written    {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
