"""Smoke run of bench/sdk_micro.py --quick: every row is there with sane numbers.

A correctness check with tiny counts, never a timing assertion (speed is for the full run).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "bench" / "sdk_micro.py"
ROWS = (
    "config-get",
    "canonical-sha256",
    "schema-validate",
    "http-get",
    "http-get-recording",
    "span-sdk",
    "span-noop",
)


@pytest.mark.timeout(150)
def test_sdk_micro_smoke(tmp_path: Path) -> None:
    out = tmp_path / "sdk_micro.json"
    md = tmp_path / "sdk_micro.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out), "--markdown", str(md)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())

    assert report["params"]["quick"] is True
    assert report["date"]
    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["python"]
    assert machine["versions"]["llm-infra"]
    assert machine["versions"]["jsonschema-rs"]

    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == list(ROWS)
    for name, row in rows.items():
        assert row["raw_us"] > 0, name
        assert row["ours_us"] > 0, name
        assert math.isfinite(row["ratio"]), name
        assert row["ratio"] > 0, name
        assert row["raw_runs_us"], name
        assert len(row["raw_runs_us"]) == len(row["ours_runs_us"]), name
        assert all(t > 0 for t in row["raw_runs_us"] + row["ours_runs_us"]), name
    assert rows["http-get"]["target"] == pytest.approx(1.10)
    assert isinstance(rows["http-get"]["met"], bool)

    table = md.read_text()
    assert table == proc.stdout
    for name in ROWS:
        assert f"| {name} |" in table
