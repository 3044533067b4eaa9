"""bench/controlplane_bench.py --quick reports every row with positive numbers; never speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[3] / "bench" / "controlplane_bench.py"
ROWS = (
    "config-get-paced",
    "config-get-max",
    "config-get-sdk",
    "search-batch",
    "search-single",
    "audit-ingest",
)


def test_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    for row in ROWS:
        assert f"| {row} |" in proc.stdout
    report = json.loads(out.read_text())
    assert report["machine"]["python"]
    paced = report["config_open_loop"]
    assert paced["errors"] == 0
    assert paced["achieved_rate"] > 0
    assert 0 < paced["from_send"]["p50_ms"] <= paced["from_send"]["p99_ms"]
    for closed in (report["config_closed_loop"], report["config_closed_loop_sdk"]):
        assert closed["requests_per_s"] > 0
    search = report["search"]
    assert all(qps > 0 for qps in search["qps"].values())
    assert search["batch_ratio"] > 0
    assert search["single_ratio"] > 0
    audit = report["audit"]
    assert audit["acked"] == audit["events"] > 0
    assert audit["events_per_s"] > 0
