"""bench/mq_audit_bench.py --quick runs and reports every row with positive numbers; never speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[3] / "bench" / "mq_audit_bench.py"


def test_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for row in ("publish-raw", "publish-mq", "audit-append", "audit-verify"):
        assert f"| {row} |" in proc.stdout
    report = json.loads(out.read_text())
    assert report["machine"]["python"]
    assert report["date"]
    assert report["publish"]["raw_msgs_per_s"] > 0
    mq_rate = report["publish"]["mq_msgs_per_s"]
    assert mq_rate is None or mq_rate > 0
    assert report["append"]["records_per_s"] > 0
    assert report["verify"]["records_per_s"] > 0
    assert report["verify"]["records"] > 0
