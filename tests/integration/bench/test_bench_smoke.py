"""Smoke run of bench/vector_bench.py: every engine row is there and the numbers are sane.

A correctness check at a small size, never a timing assertion (speed is for the full run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "bench" / "vector_bench.py"
ENGINES = ("edgestore", "edgestore-batch", "edge-raw", "edge-raw-batch", "hnswlib", "qdrant-local")
OPTIONAL = {"hnswlib"}  # not a dev dependency: its row may say "not installed"


@pytest.mark.timeout(180)
def test_vector_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    args = ["--n", "5000", "--queries", "100", "--local-n", "2000", "--ef", "64"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", str(out), "--markdown", str(md)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())

    assert report["params"]["n"] == 5000
    assert report["machine"]["versions"]["qdrant-edge-py"]
    engines = report["engines"]
    assert set(ENGINES) <= engines.keys()
    for name in ENGINES:
        engine = engines[name]
        if name in OPTIONAL and engine["status"] == "not installed":
            continue
        assert engine["status"] == "ok", (name, engine["status"])
        assert engine["searches"], name
        for search in engine["searches"]:
            assert 0.0 <= search["recall_at_10"] <= 1.0, (name, search)
            assert search["qps"] > 0, (name, search)
            assert search["queries"] == 100, (name, search)
        if name != "qdrant-local":
            assert [s["ef"] for s in engine["searches"]] == [64], name

    store = engines["edgestore"]
    assert store["ingest_vectors_per_s"] > 0
    assert store["build_seconds"] >= 0
    assert store["searches"][0]["recall_at_10"] >= 0.9
    assert engines["edgestore-batch"]["searches"][0]["recall_at_10"] >= 0.9

    table = md.read_text()
    assert table == proc.stdout
    for name in ENGINES:
        assert f"| {name} |" in table
