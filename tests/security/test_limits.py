"""Resource exhaustion: what one client may make the server hold, with a bystander's latency.

Each attack runs as bounded loops of raw sockets against `llm-infra up`, while a
well-behaved tenant keeps calling the API; its p99 under attack must stay within
5x its p99 unloaded (a ratio, measured in alternating rounds of the same run: never
an absolute time), and the server's RSS under `RSS_BOUND` (docs/security.md). Findings of the attack
on the control plane: 4 (header size), 5 (body size, body before authentication),
10 (argon2 flood), 13 (slowloris), 20 (two Authorization headers).
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.security.conftest import LIMITS, UpServer, serving

RATIO = 5.0
RSS_BOUND = 512 * 1024 * 1024
"""The bound docs/security.md states for a control plane under these attacks."""
ROUNDS = 5
SAMPLES = 100
"""The bystander's calls per round, alone and then under attack (500 of each in all)."""
GUESS_PAUSE = 0.2
CONFIGS = "/v1/namespaces/team-a/configs"
POINTS = "/v1/namespaces/team-a/collections/docs/points"


def _p99s(
    up_server: UpServer, attack: Callable[[], contextlib.AbstractContextManager[Any]]
) -> tuple[float, float]:
    """The bystander's p99 alone and while `attack()` is entered, in alternating rounds.

    Alternating cancels drift (another process on the machine, a warming cache) that two
    long measurements one after the other would count as the attack's; pooling the rounds
    makes p99 the 5th-slowest of 500 calls rather than the 2nd of 200, which one scheduler
    hiccup can move.
    """
    alone: list[float] = []
    attacked: list[float] = []
    for _ in range(ROUNDS):
        alone += _latencies(up_server)
        with attack():
            attacked += _latencies(up_server)
    return _p99(alone), _p99(attacked)


def _latencies(up_server: UpServer) -> list[float]:
    # A client per round: an idle connection of the last round may have been closed to make
    # room for the slow clients of this one (max_connections), as the server promises.
    with httpx.Client(base_url=up_server.url, headers=up_server.headers("reader-a")) as http:
        http.get(CONFIGS).raise_for_status()  # connected and the key verified
        times = []
        for _ in range(SAMPLES):
            start = time.perf_counter()
            assert http.get(CONFIGS).status_code == 200
            times.append(time.perf_counter() - start)
    return times


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98]


class _Attackers:
    """`workers` processes running `step(*args)` over and over while the attack is on.

    Processes, not threads: an attacking thread would share the measuring client's GIL, and
    its 5 ms switch interval would show up in the bystander's p99 as if the server had stalled.
    Between rounds the attack is paused, not stopped: the processes (and their imports) stay.
    """

    def __init__(self, step: Callable[..., object], *args: Any, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._on, self._stop = context.Event(), context.Event()
        # A step runs holding one of `workers` permits: taking them all waits out the steps
        # under way, so "paused" means no attacker is sending.
        self._permits = context.Semaphore(workers)
        ready = context.Semaphore(0)
        self._processes = [
            context.Process(
                target=_attacker,
                args=(step, args, ready, self._on, self._permits, self._stop),
                daemon=True,
            )
            for _ in range(workers)
        ]
        for process in self._processes:
            process.start()
        for _ in self._processes:  # every attacker has started (imports done)
            assert ready.acquire(timeout=60)
        self._pause()

    def _pause(self) -> None:
        self._on.clear()
        for _ in self._processes:
            assert self._permits.acquire(timeout=30)

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        for _ in self._processes:
            self._permits.release()
        self._on.set()
        try:
            time.sleep(0.1)  # every attacker is sending before the bystander measures
            yield
        finally:
            self._pause()

    def __enter__(self) -> _Attackers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for _ in self._processes:
            self._permits.release()
        self._on.set()
        for process in self._processes:
            process.join(timeout=30)
        assert all(process.exitcode == 0 for process in self._processes)


def _attacker(
    step: Callable[..., object], args: tuple[Any, ...], ready: Any, on: Any, permits: Any, stop: Any
) -> None:
    ready.release()
    while not stop.is_set():
        on.wait()
        with permits:
            if on.is_set() and not stop.is_set():
                step(*args)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or 10 s pass)."""
    chunks = []
    with contextlib.suppress(TimeoutError, ConnectionError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# -- 4: header size --------------------------------------------------------------------------


def _huge_header(port: int) -> bytes:
    """Sends up to 64 MiB of one header; returns what the server answered."""
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        with contextlib.suppress(ConnectionError):
            for _ in range(1024):
                sock.sendall(chunk)
        return _answer(sock)


def test_a_huge_header_gets_431_at_the_limit(up_server: UpServer) -> None:
    answer = _huge_header(up_server.port)
    assert _status(answer) == 431
    assert b"max_header_bytes" in answer


HEADER_PAUSE = 0.01


def _huge_headers(port: int) -> None:
    """One attacker's step: a huge header, then a pause.

    The pause keeps this the attack of finding 4 (before the fix, one such header stalled
    every client for seconds), not a flood of connections as fast as two cores can open
    them, which costs the server ~0.2 ms each however it answers (that is for a connection
    rate limit in front of it, docs/security.md).
    """
    _huge_header(port)
    time.sleep(HEADER_PAUSE)


def test_huge_headers_do_not_stall_other_tenants(up_server: UpServer) -> None:
    with _Attackers(_huge_headers, up_server.port, workers=2) as attackers:
        unloaded, loaded = _p99s(up_server, attackers.on)
    assert loaded <= RATIO * unloaded, (unloaded, loaded)
    assert up_server.rss_bytes() < RSS_BOUND


# -- 5: body size, and authentication before the body ----------------------------------------


def _head_only(
    up_server: UpServer, headers: dict[str, str], length: int, path: str = POINTS
) -> bytes:
    """A POST that declares `length` bytes of body and sends none: what comes back?"""
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {length}")
    with _connect(up_server.port) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.settimeout(5)
        return _answer(sock)


def test_a_body_without_credentials_gets_401_before_it_is_sent(up_server: UpServer) -> None:
    answer = _head_only(up_server, {}, 200 * 1024 * 1024)
    assert _status(answer) == 401


def test_a_body_to_a_namespace_without_rights_gets_403_before_it_is_sent(
    up_server: UpServer,
) -> None:
    # admin-b has no rights on team-a: refused from the headers, within the size limit too,
    # not after the server has waited for (and decoded) the body.
    answer = _head_only(up_server, up_server.headers("admin-b"), 1024)
    assert _status(answer) == 403
    events = "/v1/namespaces/team-a/auditsinks/trail/events"
    assert _status(_head_only(up_server, up_server.headers("reader-a"), 1024, events)) == 403


def test_a_body_over_the_limit_gets_413_before_it_is_sent(up_server: UpServer) -> None:
    answer = _head_only(up_server, up_server.headers("writer-a"), 200 * 1024 * 1024)
    assert _status(answer) == 413
    assert b"max_vector_body_bytes" in answer


def test_a_chunked_body_is_stopped_at_the_limit_and_nothing_is_stored(up_server: UpServer) -> None:
    admin = up_server.headers("admin-a")
    with httpx.Client(base_url=up_server.url, timeout=30) as http:
        spec = {"collectionName": "docs", "spec": {"vectors": {"size": 4}}}
        ensure = http.put("/v1/namespaces/team-a/collections/docs", json=spec, headers=admin)
        assert ensure.status_code == 200, ensure.text
        point = b'{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4], "payload": {"p": "' + b"x" * 1000
        points = [b'{"points": [', point + b'"}}']
        points += [b"," + point + b'"}}' for _ in range(2000)]  # ~2 MiB: over the 1 MiB limit
        points.append(b"]}")
        response = http.post(POINTS, content=iter(points), headers=admin)  # chunked: no length
        assert response.status_code == 413
        count = http.post("/v1/namespaces/team-a/collections/docs/count", headers=admin, json={})
        assert count.json() == {"count": 0}


def test_other_routes_take_the_smaller_limit(up_server: UpServer) -> None:
    with httpx.Client(base_url=up_server.url) as http:
        body = {"events": [{"action": "x", "metadata": {"p": "x" * int(LIMITS["max_body_bytes"])}}]}
        response = http.post(
            "/v1/namespaces/team-a/auditsinks/trail/events",
            json=body,
            headers=up_server.headers("writer-a"),
        )
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["detail"]


# -- 20: two Authorization headers -----------------------------------------------------------


def test_two_authorization_headers_are_refused(up_server: UpServer) -> None:
    headers = [
        ("Authorization", f"Bearer {up_server.keys['reader-a']}"),
        ("Authorization", f"Bearer {up_server.keys['admin-b']}"),
    ]
    with httpx.Client(base_url=up_server.url) as http:
        response = http.get(CONFIGS, headers=headers)
    assert response.status_code == 400
    assert "one Authorization header" in response.json()["detail"]


# -- 13: slowloris -----------------------------------------------------------------------------


def _half_sent(up_server: UpServer) -> socket.socket:
    sock = _connect(up_server.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return sock


def test_a_half_sent_request_is_closed_after_the_header_timeout(up_server: UpServer) -> None:
    with _half_sent(up_server) as sock:
        sock.settimeout(10)  # a bound on the test: a server without the timeout never closes
        assert sock.recv(1) == b""  # closed by the server, nothing answered


def _p99s_under_slow_clients(server: UpServer, clients: int) -> tuple[float, float]:
    """The bystander's p99 alone and while `clients` half-sent requests are held open."""

    @contextlib.contextmanager
    def holding() -> Iterator[None]:
        # Each round opens its own: the server closes a half-sent request after
        # header_timeout, longer than a round takes.
        slow = [_half_sent(server) for _ in range(clients)]
        try:
            yield
        finally:
            for sock in slow:
                sock.close()

    return _p99s(server, holding)


def test_slow_clients_beyond_the_connection_limit_lock_nobody_out(up_server: UpServer) -> None:
    clients = int(LIMITS["max_connections"]) + 20
    unloaded, loaded = _p99s_under_slow_clients(up_server, clients)
    assert loaded <= RATIO * unloaded, (unloaded, loaded)


OPEN_FILES = 256
"""The open-files limit of the host where finding 13 locked everyone out with 300 clients."""


def test_slow_clients_past_the_open_files_limit_lock_nobody_out(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The finding as it was: 300 half-sent requests against a server that may hold 256 files
    # and no max_connections of ours (the default is far above). The connection table is
    # capped below the open-files limit, so new clients still get in; without it the server
    # could accept no one (EMFILE) while the slow ones held every descriptor.
    limits = {name: value for name, value in LIMITS.items() if name != "max_connections"}
    with serving(tmp_path_factory.mktemp("cp-few-files"), limits, OPEN_FILES) as server:
        unloaded, loaded = _p99s_under_slow_clients(server, OPEN_FILES + 44)
    assert loaded <= RATIO * unloaded, (unloaded, loaded)


# -- 10: argon2 flood ------------------------------------------------------------------------


@functools.cache
def _client(url: str) -> httpx.Client:
    """The attacker process's one client (building one costs ~10 ms of CPU: not per step)."""
    return httpx.Client(base_url=url)


def _guess(url: str, guesses: list[str]) -> None:
    """One guessing client's step: each guess once, paced."""
    for guess in guesses:
        answer = _client(url).get(CONFIGS, headers={"Authorization": f"Bearer {guess}"})
        assert answer.status_code in (401, 429)
        time.sleep(GUESS_PAUSE)


def test_guessing_keys_neither_slows_tenants_nor_takes_memory(up_server: UpServer) -> None:
    known_id = up_server.keys["admin-b"].split("_")[1]
    guesses = [f"llmi_{'0' * 16}_{'x' * 43}", f"llmi_{known_id}_{'x' * 43}"]
    # The bystander signs in first: once its address (the guessers', on loopback) is past the
    # failure limit, a key not yet verified waits like theirs (docs/security.md).
    httpx.get(up_server.url + CONFIGS, headers=up_server.headers("reader-a")).raise_for_status()
    # 16 clients x 5 guesses a second: before the fix, 4 cores' worth of argon2id.
    with _Attackers(_guess, up_server.url, guesses, workers=16) as attackers:
        with attackers.on():
            # The first guesses of each minute are checked (auth_failures_per_minute): spent
            # here, the bystander then measures what lasts, the refusals before any check.
            time.sleep(1.0)
        unloaded, loaded = _p99s(up_server, attackers.on)
    assert loaded <= RATIO * unloaded, (unloaded, loaded)
    assert up_server.rss_bytes() < RSS_BOUND
    # The guesser's address is now refused before any check, with a delay to wait.
    with httpx.Client(base_url=up_server.url) as http:
        refused = http.get(CONFIGS, headers={"Authorization": f"Bearer {guesses[1]}"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
