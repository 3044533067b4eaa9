"""The standalone machine as a shared one: other local users and processes get nothing.

Findings 6 (the nats-server child accepted anyone), 16 (the data folder was
readable by every local user) and 17 (a second `llm-infra up` on the same folder
started a second nats-server on the same store), against `llm-infra up` itself.
"""

from __future__ import annotations

import json
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

from tests.security.conftest import UpServer
from tests.servers._process import free_port


def _nats_url(up_server: UpServer) -> str:
    found = re.search(r"nats-server \(JetStream\) on (nats://\S+),", up_server.process.log)
    assert found is not None, up_server.process.log
    return found.group(1)


def test_the_nats_child_refuses_a_client_without_the_token(up_server: UpServer) -> None:
    # The NATS protocol by hand: nats-py leaves its socket to the garbage collector when the
    # server refuses it, and this must fail for no other reason than the refusal.
    host, port = _nats_url(up_server).removeprefix("nats://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        info = sock.recv(65536)
        assert info.startswith(b"INFO ")
        assert json.loads(info[5:])["auth_required"] is True
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        answer = sock.recv(65536)
    assert b"-ERR 'Authorization Violation'" in answer


def test_the_token_is_on_no_command_line_and_in_a_private_file(up_server: UpServer) -> None:
    config = up_server.process.data / "nats.conf"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    pid = int((up_server.process.data / "nats.pid").read_text())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert not any(b"token" in arg or b"--auth" in arg for arg in argv)


def test_everything_in_the_data_folder_is_private(up_server: UpServer) -> None:
    data = up_server.process.data
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    exposed = [
        str(path.relative_to(data))
        for path in [data, *data.rglob("*")]
        if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & 0o077
    ]
    assert exposed == []


def test_a_second_up_on_the_same_folder_is_refused(up_server: UpServer) -> None:
    command = Path(sys.executable).parent / "llm-infra"
    argv = [str(command), "up", "--port", str(free_port()), "--data", str(up_server.process.data)]
    second = subprocess.run(
        [*argv, "--no-resources"], capture_output=True, text=True, timeout=60, check=False
    )
    assert second.returncode == 2
    assert "in use by another llm-infra process (pid" in second.stderr
    assert "--data DIR" in second.stderr
