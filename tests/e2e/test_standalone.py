"""`llm-infra up` on the examples, as a newcomer runs it: quickstart, live config, restarts.

The control plane runs as a real process with its own nats-server child, on a
copy of examples/ in a temp dir (the test edits it), and is driven through the
SDK client and examples/quickstart.py exactly as the README says.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_infra.client import ControlPlaneClient
from tests.corpus import EXAMPLES
from tests.servers.controlplane import ControlPlaneProcess

NS = "default"
QUICKSTART = EXAMPLES / "quickstart.py"


@pytest.fixture
def resources(tmp_path: Path) -> Path:
    folder = tmp_path / "resources"
    folder.mkdir()
    for manifest in EXAMPLES.glob("*.yaml"):
        shutil.copy(manifest, folder / manifest.name)
    return folder


@pytest.fixture
def up(tmp_path: Path, resources: Path) -> Iterator[ControlPlaneProcess]:
    process = ControlPlaneProcess(tmp_path, resources=resources)
    with process:
        yield process


def run_quickstart(up: ControlPlaneProcess) -> str:
    env = {**os.environ, "LLM_INFRA_URL": up.url, "LLM_INFRA_TOKEN": up.token or ""}
    done = subprocess.run(
        [sys.executable, str(QUICKSTART)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _next_version(cp: ControlPlaneClient, after: str) -> tuple[int, float]:
    started = time.monotonic()
    async with asyncio.timeout(10):
        async for served in cp.watch_config(NS, "rag-app", after_hash=after):
            return served.version, time.monotonic() - started
    raise AssertionError("the watch ended without a new version")


async def _edit_and_watch(up: ControlPlaneProcess, manifest: Path) -> tuple[int, float, int]:
    async with ControlPlaneClient(up.url, token=up.token) as cp:
        first = await cp.get_config(NS, "rag-app")
        assert first is not None
        assert first.document["retrieval"]["k"] == 8
        watching = asyncio.create_task(_next_version(cp, first.content_hash))
        await asyncio.sleep(0.2)  # the watch is open before the edit
        text = await asyncio.to_thread(manifest.read_text)
        await asyncio.to_thread(manifest.write_text, text.replace("k: 8", "k: 13"))
        edited = time.monotonic()
        version, _ = await watching
        return first.version, time.monotonic() - edited, version


async def _state(up: ControlPlaneProcess) -> dict[str, object]:
    async with ControlPlaneClient(up.url, token=up.token) as cp:
        config = await cp.get_config(NS, "rag-app")
        assert config is not None
        verified = await cp.verify_audit(NS, "quickstart")
        return {
            "points": await cp.count(NS, "quickstart"),
            "k": config.document["retrieval"]["k"],
            "audit_ok": verified.ok,
            "audit_records": verified.records,
        }


def test_quickstart_live_config_and_a_restart_that_loses_nothing(
    up: ControlPlaneProcess, resources: Path
) -> None:
    assert up.token is not None, up.log_tail()
    out = run_quickstart(up)
    assert "vectors: stored 3 points" in out
    assert "audit: chain of 1 records verifies: True" in out

    before, delay, after = asyncio.run(
        _edit_and_watch(up, resources / "configsource-quickstart.yaml")
    )
    assert after == before + 1
    assert delay < 2.0, f"the new version took {delay:.2f}s to reach the watcher"

    state = asyncio.run(_state(up))
    assert state == {"points": 3, "k": 13, "audit_ok": True, "audit_records": 1}
    assert up.interrupt() == 0, up.log_tail()
    assert "llm-infra up: stopped" in up.log

    up.start()  # same data, same folder: everything is still there
    assert asyncio.run(_state(up)) == state
    assert "admin key: (stored" in up.log  # never printed twice


async def _burst(up: ControlPlaneProcess, nats_pid: int, batches: int) -> list[str]:
    """Append `batches` batches of 5 events; kill nats-server a third of the way in."""
    acked: list[str] = []
    async with ControlPlaneClient(up.url, token=up.token) as cp:
        for batch in range(batches):
            if batch == batches // 3:
                os.kill(nats_pid, signal.SIGKILL)
            events = [
                {
                    "actor": {"id": "burst", "kind": "service"},
                    "action": "collections.search",
                    "resource": {"kind": "vectorcollections", "namespace": NS, "name": "q"},
                    "outcome": "success",
                    "metadata": {"batch": batch, "item": item},
                }
                for item in range(5)
            ]
            # The client retries through the 503s (Retry-After) while nats-server is down.
            answer = await cp.append_audit_events(NS, "quickstart", events)
            acked.extend(record.id for record in answer.records)
    return acked


async def _stored_ids(up: ControlPlaneProcess) -> list[str]:
    async with ControlPlaneClient(up.url, token=up.token) as cp:
        return [
            record.id
            async for page in cp.query_audit_events(NS, "quickstart", limit=1000)
            for record in page.records
        ]


def test_killing_nats_during_an_ingest_burst_loses_no_acknowledged_event(
    up: ControlPlaneProcess,
) -> None:
    pid_file = up.data / "nats.pid"
    killed = int(pid_file.read_text())
    acked = asyncio.run(_burst(up, killed, batches=30))
    assert int(pid_file.read_text()) != killed, "nats-server was not restarted"
    assert len(acked) == len(set(acked)) == 150
    stored = asyncio.run(_stored_ids(up))
    assert sorted(stored) == sorted(acked)  # every acknowledged event, each once

    async def verify() -> bool:
        async with ControlPlaneClient(up.url, token=up.token) as cp:
            return (await cp.verify_audit(NS, "quickstart")).ok

    assert asyncio.run(verify())
