"""The manifests tests share: examples/, tests/data/valid/ and tests/data/invalid/ (see READMEs)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
INVALID = REPO / "tests" / "data" / "invalid"
VALID = REPO / "tests" / "data" / "valid"

_HEADER = re.compile(r"^# (?P<key>field|python|update): *(?P<value>.+?) *$", re.MULTILINE)


@dataclass(frozen=True)
class InvalidCase:
    """One manifest the API server and the models must refuse, naming `field`."""

    path: Path
    field: str
    python_field: str
    update: bool
    documents: tuple[dict[str, Any], ...]

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}"

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest that must be refused (the update, for update cases)."""
        return self.documents[-1]


def invalid_cases() -> list[InvalidCase]:
    cases = []
    for path in sorted(INVALID.glob("*/*.yaml")):
        text = path.read_text()
        header = {m["key"]: m["value"] for m in _HEADER.finditer(text)}
        documents = tuple(doc for doc in yaml.safe_load_all(text) if doc)
        cases.append(
            InvalidCase(
                path=path,
                field=header["field"],
                python_field=header.get("python", header["field"]),
                update=header.get("update") == "true",
                documents=documents,
            )
        )
    return cases


@dataclass(frozen=True)
class ValidCase:
    """Manifests the API server and the models must accept, applied in order (later ones update)."""

    path: Path
    documents: tuple[dict[str, Any], ...]

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}"


def valid_cases() -> list[ValidCase]:
    return [
        ValidCase(path, tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc))
        for path in sorted(VALID.glob("*/*.yaml"))
    ]


def examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))
