"""`llm-infra up`, the README's first command, run as a user runs it: it answers /healthz."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import httpx

import llm_infra
from tests.servers._process import ServerProcess, free_port


def test_up_serves_healthz_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    command = Path(sys.executable).parent / "llm-infra"
    process = ServerProcess(
        "llm-infra up", [command, "up", "--port", str(port)], log_path=tmp_path / "up.log"
    )
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        process.launch(
            lambda: httpx.get(url, timeout=1.0).status_code == 200, what="/healthz", timeout=30
        )
        assert httpx.get(url).json() == {"status": "ok", "version": llm_infra.__version__}
    finally:
        exit_code = process.stop()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal so
    # the exit status tells a supervisor why it stopped.
    assert exit_code in (0, -signal.SIGTERM), process.log_tail()
    assert "Application shutdown complete" in process.log_path.read_text()
