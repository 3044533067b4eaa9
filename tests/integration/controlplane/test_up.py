"""`llm-infra up`, the README's first command, run as a user runs it, from the repository root.

It starts its nats-server child, applies ./examples, prints the admin key once,
answers /healthz and /readyz, and stops cleanly on SIGTERM (exit 0, its child gone).
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

import llm_infra
from tests.corpus import REPO
from tests.servers._process import ServerProcess, free_port


def test_up_applies_the_examples_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    command = Path(sys.executable).parent / "llm-infra"
    data = tmp_path / "data"
    process = ServerProcess(
        "llm-infra up",
        [command, "up", "--port", str(port), "--data", data],
        log_path=tmp_path / "up.log",
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        process.launch(
            lambda: httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200,
            what="/readyz",
            timeout=60,
        )
        health = httpx.get(f"{base}/healthz").json()
        assert (health["status"], health["version"]) == ("ok", llm_infra.__version__)
        nats_pid = int((data / "nats.pid").read_text())
        assert httpx.get(f"{base}/v1/namespaces/default/configs/rag-app").status_code == 401
    finally:
        exit_code = process.stop()
    log = process.log_path.read_text()
    assert exit_code == 0, process.log_tail()
    assert "llm-infra up: resources from examples" in log
    assert "admin key: llmi_" in log
    assert "llm-infra up: vc default/quickstart: created" in log
    assert "llm-infra up: cfgsrc default/rag-app: version 1 published" in log
    assert "Application shutdown complete" in log
    assert log.rstrip().endswith("llm-infra up: stopped")
    assert not Path(f"/proc/{nats_pid}").exists() or _zombie(nats_pid), "nats-server outlived up"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
