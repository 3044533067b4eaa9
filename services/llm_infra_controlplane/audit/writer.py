"""The audit writer: one task per sink of an AuditSink, delivering the stream to that sink.

`SinkWriter` binds the sink's durable pull consumer (made by
`llm_infra.audit.ensure_audit_stream`), fetches up to `batchSize` messages,
hands them to the sink's `Delivery` and acks them only once the sink has them:
at-least-once, so a sink may see a message twice after a crash and dedupes by
its ``id`` (records) or ``seq`` (checkpoints, which carry a ``signature``).
A failed batch is nakked with exponential backoff; the consumer redelivers it
at most maxRetries + 1 times (its ``max_deliver``). After the last attempt
the writer terms the batch and counts it `failed`, with `last_error` in the
status: the records stay in the stream (and in the query API), the sink moves
on instead of blocking every later record behind one it cannot take.

Deliveries: `FileDelivery` (JSON lines, fsync per batch, rotation),
`WebhookDelivery` (POST of a JSON array through `llm_infra.http`, HMAC-signed),
`ObjectStoreDelivery` (one object per batch through `llm_infra.fs`, named by
stream sequence so a redelivered batch overwrites its own object).
`AuditService` (audit_service.py) starts and stops the writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

import httpx
import nats.errors
import stamina
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from llm_infra import crypto, errors, fs, http
from llm_infra.api.v1alpha1._common import SecretKeyRef, duration_seconds
from llm_infra.api.v1alpha1.auditsink import (
    FileSink,
    ObjectStoreSink,
    Sink,
    Throttle,
    WebhookSink,
)

_logger = logging.getLogger("llm_infra_controlplane.audit")

FETCH_WAIT = 1.0
"""Seconds one fetch waits for messages; also how soon a stopping writer notices."""
STOP_GRACE = 2 * FETCH_WAIT + 5.0
"""Seconds a stopping writer may take to finish delivering the batch in hand."""
RETRY_BASE = 0.2
RETRY_MAX = 30.0
"""Backoff of a failed batch: RETRY_BASE * 2^(attempt-1) seconds, at most RETRY_MAX."""
OBJECT_STORE_OPTIONS = {
    "endpoint": "endpoint",
    "region": "region",
    "accessKeyId": "access_key_id",
    "secretAccessKey": "secret_access_key",
    "serviceAccountKey": "service_account_key",
}
"""Keys of an objectStore credentials Secret -> `llm_infra.fs.open_fs` options."""

Secrets = Mapping[str, Mapping[str, str]]


class Delivery(Protocol):
    """Where a sink's batches go. `deliver` raises an `errors.InfraError` when they did not."""

    async def deliver(self, batch: Sequence[bytes], first_seq: int, last_seq: int) -> None: ...

    async def close(self) -> None: ...


# -- deliveries ---------------------------------------------------------------------------------


def rerooted(path: str, file_root: Path | None, *, field: str = "spec.sinks[].file.path") -> Path:
    """A file sink's path, under `file_root` when given: /var/log/x.jsonl -> <root>/var/log/x.jsonl.

    Standalone mode passes ``<data>/audit-sinks`` so a manifest written for a
    cluster volume writes below the data folder on a laptop. The path must stay
    there once ``..`` and symbolic links are resolved: anything else raises
    ValidationError naming `field`.
    """
    if file_root is None:
        return Path(path)
    root = file_root.resolve()
    target = root.joinpath(*PurePosixPath(path).parts[1:]).resolve()
    if not target.is_relative_to(root) or target == root:
        raise errors.ValidationError(
            f"{field}: {path!r} resolves outside the data folder's audit-sinks ({root}): name a"
            " file below it, without '..' or links that leave it",
            field=field,
            actual=path,
        )
    return target


def rerooted_url(url: str, file_root: Path | None, *, field: str) -> str:
    """An object store URL; a ``file://`` one re-rooted and confined like `rerooted`."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "file" or file_root is None:
        return url
    return rerooted(urllib.parse.unquote(parsed.path) or "/", file_root, field=field).as_uri()


class FileDelivery:
    """JSON lines appended to `path`, fsynced per batch; rotated to path.1 .. path.N by size."""

    def __init__(self, spec: FileSink, path: Path) -> None:
        self.spec = spec
        self.path = path

    async def deliver(self, batch: Sequence[bytes], first_seq: int, last_seq: int) -> None:
        try:
            await asyncio.to_thread(self._append, batch)
        except OSError as exc:
            raise errors.IoError(
                f"cannot append to {self.path}: {exc.strerror}: check the folder exists and is"
                " writable (spec.sinks[].file.path)",
                operation=errors.IoOperation.WRITE,
                path=str(self.path),
                cause=type(exc).__name__,
            ) from None

    def _append(self, batch: Sequence[bytes]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        out = self.path.open("ab")
        try:
            size = out.tell()
            for line in batch:
                limit = self.spec.rotate_bytes
                if limit is not None and size > 0 and size + len(line) + 1 > limit:
                    _sync_close(out)
                    self._rotate()
                    out = self.path.open("ab")
                    size = 0
                out.write(line + b"\n")
                size += len(line) + 1
        finally:
            _sync_close(out)

    def _rotate(self) -> None:
        # path.1 is the newest rotated file; the oldest beyond maxFiles is dropped.
        keep = self.spec.max_files
        n = 1
        while self._numbered(n).exists():
            n += 1
        for i in range(n - 1, 0, -1):
            if keep is not None and i >= keep:
                self._numbered(i).unlink()
            else:
                self._numbered(i).replace(self._numbered(i + 1))
        self.path.replace(self._numbered(1))

    def _numbered(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    async def close(self) -> None:
        return None


def _sync_close(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()


class WebhookDelivery:
    """A JSON array POSTed per batch, signed ``X-Signature: sha256=<hex HMAC>`` with a secret."""

    def __init__(self, spec: WebhookSink, *, hmac_key: bytes | None, ca_pem: str | None) -> None:
        self.spec = spec
        self._hmac_key = hmac_key
        timeout = duration_seconds(spec.timeout)
        transport = None
        if ca_pem is not None:
            context = ssl.create_default_context(cadata=ca_pem)
            transport = httpx.AsyncHTTPTransport(verify=context)
        # A few quick retries here; the consumer's nak backoff handles longer outages.
        self._http = http.HttpClient(
            timeout=http.Timeouts(connect=timeout, read=timeout, write=timeout, total=timeout),
            retry=http.RetryPolicy(attempts=3, wait_max=1.0, total_timeout=timeout),
            breaker=None,
            transport=transport,
        )

    async def deliver(self, batch: Sequence[bytes], first_seq: int, last_seq: int) -> None:
        body = b"[" + b",".join(batch) + b"]"
        headers = {"Content-Type": "application/json"}
        if self._hmac_key is not None:
            headers["X-Signature"] = "sha256=" + crypto.hmac_sha256(self._hmac_key, body).hex()
        # The same batch keeps its key across retries, so the endpoint can drop a replay.
        key = f"audit-{first_seq}-{last_seq}"
        await self._http.post(self.spec.url, content=body, headers=headers, idempotency_key=key)

    async def close(self) -> None:
        await self._http.aclose()


class ObjectStoreDelivery:
    """One JSON-lines object per batch: ``<prefix>/<first seq>-<last seq>.jsonl`` (zero-padded)."""

    def __init__(self, store: fs.FileSystem, prefix: str | None) -> None:
        self.store = store
        self.prefix = (prefix or "").strip("/")

    async def deliver(self, batch: Sequence[bytes], first_seq: int, last_seq: int) -> None:
        name = f"{first_seq:020d}-{last_seq:020d}.jsonl"
        key = f"{self.prefix}/{name}" if self.prefix else name
        await self.store.write(key, b"".join(line + b"\n" for line in batch))

    async def close(self) -> None:
        return None


def build_delivery(sink: Sink, *, index: int, secrets: Secrets, file_root: Path | None) -> Delivery:
    """The `Delivery` of `sink` (spec.sinks[index]); a missing Secret raises ConfigMissing."""
    where = f"spec.sinks[{index}]"
    if sink.file is not None:
        path = rerooted(sink.file.path, file_root, field=f"{where}.file.path")
        return FileDelivery(sink.file, path)
    if sink.webhook is not None:
        hook = sink.webhook
        key = _secret(secrets, hook.secret_ref, f"{where}.webhook.secretRef")
        ca = _secret(secrets, hook.ca_secret_ref, f"{where}.webhook.caSecretRef")
        return WebhookDelivery(hook, hmac_key=None if key is None else key.encode(), ca_pem=ca)
    assert sink.object_store is not None  # the Sink model allows exactly one kind
    return _object_store(sink.object_store, secrets, f"{where}.objectStore", file_root)


def _object_store(
    spec: ObjectStoreSink, secrets: Secrets, where: str, file_root: Path | None
) -> ObjectStoreDelivery:
    options: dict[str, str] = {}
    if spec.credentials_secret_ref is not None:
        secret = secrets.get(spec.credentials_secret_ref.name)
        if secret is None:
            raise _missing(f"{where}.credentialsSecretRef", spec.credentials_secret_ref.name)
        options = {
            OBJECT_STORE_OPTIONS[k]: v for k, v in secret.items() if k in OBJECT_STORE_OPTIONS
        }
    url = rerooted_url(spec.url, file_root, field=f"{where}.url")
    store = fs.open_fs(url, create=url.startswith("file://"), **options)  # type: ignore[arg-type]
    return ObjectStoreDelivery(store, spec.prefix)


def _secret(secrets: Secrets, ref: SecretKeyRef | None, field_path: str) -> str | None:
    if ref is None:
        return None
    value = secrets.get(ref.name, {}).get(ref.key)
    if value is None:
        raise _missing(field_path, f"{ref.name}/{ref.key}")
    return value


def _missing(field_path: str, what: str) -> errors.ConfigMissing:
    return errors.ConfigMissing(
        f"{field_path}: Secret key {what} not found: create the Secret in the AuditSink's"
        " namespace or fix the reference",
        key=field_path,
    )


# -- the writer ---------------------------------------------------------------------------------


class TokenBucket:
    """spec.throttle: `qps` events per second on average, `burst` at once."""

    def __init__(self, throttle: Throttle, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = throttle.qps
        self.capacity = float(throttle.burst)
        self._clock = clock
        self._tokens = self.capacity
        self._at = clock()

    def delay(self, events: int) -> float:
        """Take `events` tokens; the seconds to wait before sending them (0 when in budget)."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= events
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass
class SinkCounters:
    """What the status reports of one writer, besides the consumer's lag."""

    delivered: int = 0
    failed: int = 0
    last_error: str | None = None
    last_delivery_time: dt.datetime | None = None


def backoff(attempt: int) -> float:
    """Seconds before redelivering a batch that failed its `attempt`-th delivery."""
    return min(RETRY_MAX, RETRY_BASE * 2.0 ** max(0, attempt - 1))


class SinkWriter:
    """Delivers one sink's consumer to its `Delivery` until `stop()`; counters in `counters`."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        durable: str,
        sink: Sink,
        delivery: Delivery,
        throttle: Throttle | None = None,
    ) -> None:
        self.js = js
        self.stream = stream
        self.durable = durable
        self.sink = sink
        self.delivery = delivery
        self.counters = SinkCounters()
        self._bucket = TokenBucket(throttle) if throttle is not None else None
        # Fetch no more than the throttle lets out at once.
        self._batch = min(sink.batch_size, throttle.burst) if throttle else sink.batch_size
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"audit-writer {self.durable}")

    async def stop(self) -> None:
        """Finish the batch in hand, then stop; cancel if that takes longer than STOP_GRACE."""
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=STOP_GRACE)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self.delivery.close()

    async def _run(self) -> None:
        # NATS down or the consumer gone: report, back off (stamina, capped), bind again.
        try:
            async for attempt in stamina.retry_context(
                on=self._failed,
                attempts=None,
                timeout=None,
                wait_initial=RETRY_BASE,
                wait_max=RETRY_MAX,
            ):
                with attempt:
                    await self._deliver()
        except Exception as exc:
            if not self._stopping.is_set():
                raise
            # Stopping as the connection closes: what was not acked is redelivered next time.
            _logger.debug("audit sink %s stopped: %s", self.durable, exc)

    async def _deliver(self) -> None:
        """Bind to the durable and deliver batches until `stop()`."""
        with errors.translate(errors.from_nats):
            sub = await self.js.pull_subscribe_bind(self.durable, self.stream)
        try:
            while not self._stopping.is_set():
                await self._step(sub)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _failed(self, exc: BaseException) -> bool:
        """stamina's hook: every failure waits and retries; a writer outlives one bad batch."""
        if not isinstance(exc, Exception) or self._stopping.is_set():
            return False  # cancelled, or stopping: end
        if isinstance(exc, errors.InfraError):
            self._fail(str(exc))
        else:
            _logger.error("audit sink %s: unexpected error", self.durable, exc_info=exc)
            self._fail("unexpected error: see the control plane's log")
        return True

    async def _step(self, sub: JetStreamContext.PullSubscription) -> None:
        with errors.translate(errors.from_nats):
            try:
                msgs = await sub.fetch(self._batch, timeout=FETCH_WAIT)
            except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either
                return
        if not msgs:
            return
        if self._bucket is not None:
            await self._pause(self._bucket.delay(len(msgs)))
        first, last = msgs[0].metadata.sequence.stream, msgs[-1].metadata.sequence.stream
        try:
            await self.delivery.deliver([m.data for m in msgs], first, last)
        except errors.InfraError as exc:
            await self._retry_later(msgs, str(exc))
            return
        with errors.translate(errors.from_nats):
            for msg in msgs:
                await msg.ack()
        self.counters.delivered += len(msgs)
        self.counters.last_delivery_time = dt.datetime.now(dt.UTC)

    async def _retry_later(self, msgs: list[Msg], reason: str) -> None:
        attempt = max(m.metadata.num_delivered or 1 for m in msgs)
        first = msgs[0].metadata.sequence.stream
        self._fail(f"stream seq {first}+{len(msgs)}, attempt {attempt}: {reason}")
        with errors.translate(errors.from_nats):
            if attempt > self.sink.max_retries:
                self.counters.failed += len(msgs)
                _logger.warning("audit sink %s gave up on %d messages", self.durable, len(msgs))
                for msg in msgs:
                    await msg.term()
            else:
                for msg in msgs:
                    await msg.nak(delay=backoff(attempt))

    def _fail(self, message: str) -> None:
        self.counters.last_error = message[:4096]

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
