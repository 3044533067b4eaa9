"""bench/operator_bench.py --quick brings every resource to Ready and reports positive numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[3] / "bench" / "operator_bench.py"


def test_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    for row in ("all-ready", "peak-rss", "reconciles"):
        assert f"| {row} |" in proc.stdout
    report = json.loads(out.read_text())
    assert report["ready"] == report["resources"] == 20
    assert report["all_ready_s"] > 0
    assert report["operator_peak_rss_mib"] >= report["operator_idle_rss_mib"] > 0
    assert report["reconciles"] >= report["resources"]
    assert report["machine"]["python"]
