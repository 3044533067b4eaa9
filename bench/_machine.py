"""What every benchmark report shares: the machine it ran on, and how it is written out."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def machine_info(dists: Iterable[str]) -> dict[str, Any]:
    """Platform, CPU, RAM, Python and the versions of `dists` (the libraries measured)."""
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_gib": ram_gib(),
        "python": platform.python_version(),
        "versions": {d: version(d) for d in dists},
    }


def write_report(
    report: dict[str, Any], text: str, *, markdown: Path | None, json_path: Path | None
) -> None:
    """The table to stdout (and `markdown`), every number to `json_path`."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if markdown:
        markdown.write_text(text)
    if json_path:
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
