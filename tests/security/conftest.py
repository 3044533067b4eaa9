"""The security suite's control plane: `llm-infra up` as a user runs it, with tenants and limits.

One process per module (`up_server`), started from the real CLI so the server's
own protocol (header limits, timeouts, connection table), its nats-server
child (with its token) and its data folder are the ones under attack. A
settings file provisions the tenants: API keys whose owners have read, write
or admin on namespace team-a, and one with admin on team-b only; the limits are
small so that the attacks below stay short loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llm_infra_controlplane.access import admin_key
from tests.servers.controlplane import ControlPlaneProcess

LIMITS: dict[str, int | float] = {
    "max_header_bytes": 16 * 1024,
    "max_body_bytes": 64 * 1024,
    "max_vector_body_bytes": 1024 * 1024,
    "header_timeout": 1.0,
    "body_timeout": 2.0,
    "max_connections": 48,
    "auth_failures_per_minute": 10,
}
RULES = [
    {"subjects": ["apikey:reader-a"], "namespaces": ["team-a"], "actions": ["read"]},
    {"subjects": ["apikey:writer-a"], "namespaces": ["team-a"], "actions": ["write"]},
    {"subjects": ["apikey:admin-a"], "namespaces": ["team-a"], "actions": ["admin"]},
    {"subjects": ["apikey:admin-b"], "namespaces": ["team-b"], "actions": ["admin"]},
]
OWNERS = ("reader-a", "writer-a", "admin-a", "admin-b")


@dataclass
class UpServer:
    process: ControlPlaneProcess
    keys: dict[str, str]
    """The API key of each owner (OWNERS)."""

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def port(self) -> int:
        return self.process.port

    def headers(self, owner: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[owner]}"}

    def rss_bytes(self) -> int:
        pid = self.process._process.pid
        assert pid is not None
        status = Path(f"/proc/{pid}/status").read_text()
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert found is not None
        return int(found.group(1)) * 1024


def provision() -> tuple[dict[str, str], list[dict[str, object]]]:
    async def issue() -> tuple[dict[str, str], list[dict[str, object]]]:
        keys, records = {}, []
        for owner in OWNERS:
            key, record = await admin_key.issue_api_key(owner)
            keys[owner] = key.get_secret_value()
            records.append(record.model_dump(mode="json"))
        return keys, records

    return asyncio.run(issue())


@contextlib.contextmanager
def serving(
    workdir: Path,
    limits: dict[str, int | float],
    open_files: int | None = None,
    resources: Path | None = None,
) -> Iterator[UpServer]:
    """`llm-infra up` with the tenants of RULES and `limits`; an open-files limit, resources."""
    keys, records = provision()
    settings = workdir / "settings.json"
    settings.write_text(json.dumps({"api_keys": records, "access_rules": RULES, "limits": limits}))
    env = {"LLM_INFRA_SETTINGS_FILE": str(settings)}
    with ControlPlaneProcess(
        workdir, env=env, open_files=open_files, resources=resources
    ) as process:
        yield UpServer(process, keys)


@pytest.fixture(scope="module")
def up_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpServer]:
    with serving(tmp_path_factory.mktemp("cp-security"), LIMITS) as server:
        yield server
