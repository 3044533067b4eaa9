"""An ASGI app built in the test process, served by uvicorn in a thread on a free loopback port.

For tests that must reach the app's own objects (seed its state in its lifespan,
patch it, count calls) while talking to it over real HTTP. Apps that run as a
user runs them are started as processes instead (tests/servers/controlplane.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

STARTUP_DEADLINE = 30.0


@contextlib.contextmanager
def serve_in_thread(config: uvicorn.Config) -> Iterator[str]:
    """The base URL of `config`'s app, served until the block ends, then stopped cleanly.

    A clean stop runs the app's lifespan shutdown (the control plane's audit
    writers stop, its shards flush), so what the test reads afterwards is complete.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + STARTUP_DEADLINE
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, f"uvicorn did not start within {STARTUP_DEADLINE}s"
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=STARTUP_DEADLINE)
            assert not thread.is_alive(), "uvicorn did not stop"
