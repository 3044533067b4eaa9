"""FileSystem: one async facade over obstore's local, memory, S3 and GCS stores.

`open_fs` parses the URL and options once and builds the obstore store; the
FileSystem adds the policy around it: sandboxed relative paths (`_paths`),
the symlink check on local roots, error mapping into `llm_infra.errors`, and
`watch` (`_watch`).
"""

from __future__ import annotations

import asyncio
import builtins
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import obstore
from obstore import exceptions as obstore_errors
from obstore.store import GCSStore, LocalStore, MemoryStore, S3Store
from pydantic import SecretStr

from llm_infra import errors
from llm_infra.fs import _paths, _watch

if TYPE_CHECKING:
    from obstore.store import ClientConfig, ObjectStore, RetryConfig, S3Config

Backend = Literal["file", "memory", "s3", "gs"]
DEFAULT_POLL_INTERVAL = 2.0


@dataclass(frozen=True, slots=True)
class Entry:
    """A file under the root: its relative path, size in bytes and last modification (UTC)."""

    path: str
    size: int
    modified: datetime


class FileSystem:
    """Files under one root: a local directory, an in-process store, or a bucket prefix.

    Build it with `open_fs`. Paths are relative to the root and sandboxed.
    Errors: a missing file raises errors.NotFound; `write(..., overwrite=False)`
    on an existing file raises errors.Conflict; `delete` of a missing file is a
    no-op; denied access raises errors.InsufficientPermissions (local) or the
    auth error the store answered; timeouts raise errors.IoTimeout and failed
    connections errors.HttpConnectError (both retryable); anything else
    errors.IoError with the operation and path.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        backend: Backend,
        url: str,
        local_root: Path | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._store = store
        self._backend = backend
        self._url = url
        self._local_root = local_root
        self._poll_interval = poll_interval
        self._subscribers: set[asyncio.Queue[tuple[str, bool]]] = set()

    @property
    def url(self) -> str:
        """Where the root is, without credentials."""
        return self._url

    @property
    def backend(self) -> Backend:
        return self._backend

    def __repr__(self) -> str:
        return f"FileSystem({self._url!r})"

    __str__ = __repr__

    # -- files -------------------------------------------------------------------------------

    async def read(self, path: str) -> bytes:
        """The whole content of a file."""
        key = self._key(path)
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except Exception as exc:  # noqa: BLE001  mapped, never chained (its message is unscrubbed)
            raise self._error(exc, errors.IoOperation.READ, key) from None

    async def read_text(self, path: str, *, encoding: str = "utf-8") -> str:
        data = await self.read(path)
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise errors.IoError(
                f"{path!r} is not valid {encoding}: byte {exc.start}",
                operation=errors.IoOperation.READ,
                path=path,
                cause=type(exc).__name__,
            ) from None

    async def write(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        """Store `data` at `path` atomically: readers see the old content or the new, never part.

        Local roots stage the bytes in a temporary file next to the target and
        rename it; object stores take one PUT. With `overwrite=False` the write
        is a conditional create and raises errors.Conflict when the file exists.
        """
        key = self._key(path)
        operation = errors.IoOperation.WRITE if overwrite else errors.IoOperation.CREATE
        try:
            await obstore.put_async(
                self._store,
                key,
                bytes(data),
                mode="overwrite" if overwrite else "create",
                use_multipart=False,  # one PUT: atomic, and conditional create needs it
            )
        except Exception as exc:  # noqa: BLE001  mapped, never chained
            raise self._error(exc, operation, key) from None
        _watch.publish(self._subscribers, key, True)

    async def write_text(
        self, path: str, text: str, *, overwrite: bool = True, encoding: str = "utf-8"
    ) -> None:
        await self.write(path, text.encode(encoding), overwrite=overwrite)

    async def delete(self, path: str) -> None:
        """Remove a file; a file that does not exist is not an error (delete is idempotent)."""
        key = self._key(path)
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001  mapped, never chained
            raise self._error(exc, errors.IoOperation.DELETE, key) from None
        _watch.publish(self._subscribers, key, False)

    async def exists(self, path: str) -> bool:
        key = self._key(path)
        try:
            await obstore.head_async(self._store, key)
        except FileNotFoundError:
            return False
        except Exception as exc:  # noqa: BLE001  mapped, never chained
            raise self._error(exc, errors.IoOperation.READ, key) from None
        return True

    async def list(self, prefix: str = "") -> builtins.list[Entry]:
        """Every file under `prefix` (segment-wise: `a` holds `a/b`, not `ab`), sorted by path."""
        normalized = _paths.normalize_prefix(prefix)
        entries: builtins.list[Entry] = []
        try:
            stream = obstore.list(self._store, normalized or None, chunk_size=1000)
            async for chunk in stream:
                entries.extend(
                    Entry(meta["path"], meta["size"], meta["last_modified"])
                    for meta in chunk
                    if self._is_inside(meta["path"])
                )
        except Exception as exc:  # noqa: BLE001  mapped, never chained
            raise self._error(exc, errors.IoOperation.LIST, normalized) from None
        return sorted(entries, key=lambda entry: entry.path)

    def watch(self, prefix: str = "", *, interval: float | None = None) -> _watch.Watch:
        """Changes to files under `prefix`, as they happen; ``async with fs.watch() as changes``.

        memory: notifications from this FileSystem's own writes and deletes;
        local: the OS file watcher (watchfiles), waking every `interval` s when idle;
        S3/GCS: a listing every `interval` seconds (default: the `poll_interval`
        given to `open_fs`), diffed by size and modification time.
        """
        normalized = _paths.normalize_prefix(prefix)
        period = self._poll_interval if interval is None else interval
        if period <= 0:
            raise errors.ValidationError(
                "interval must be positive", field="interval", actual=str(period)
            )
        source: _watch.ChangeSource
        if self._backend == "memory":
            source = _watch.MemorySource(self._subscribers)
        elif self._local_root is not None:
            source = _watch.LocalSource(str(self._local_root), period, self._is_inside)
        else:
            source = _watch.PollingSource(self._snapshot, normalized, period)
        return _watch.Watch(source, normalized, self._snapshot)

    # -- policy ------------------------------------------------------------------------------

    async def _snapshot(self, prefix: str) -> dict[str, tuple[int, datetime]]:
        return {entry.path: (entry.size, entry.modified) for entry in await self.list(prefix)}

    def _key(self, path: str) -> str:
        key = _paths.normalize_path(path)
        if not self._is_inside(key):
            raise errors.ValidationError(
                f"path {path!r} leads outside the root through a symlink", field="path", actual=path
            )
        return key

    def _is_inside(self, key: str) -> bool:
        """Local roots only: whether `key`, symlinks resolved, stays under the root."""
        if self._local_root is None:
            return True
        resolved = os.path.realpath(self._local_root / key)
        return resolved.startswith(str(self._local_root) + os.sep)

    def _error(self, exc: Exception, operation: errors.IoOperation, key: str) -> errors.InfraError:
        return map_error(exc, operation=operation, path=key, service=f"fs:{self._backend}")


def map_error(
    exc: BaseException, *, operation: errors.IoOperation, path: str, service: str
) -> errors.InfraError:
    """An obstore or OS exception as an llm_infra error (the message's first line, redacted)."""
    first_line = str(exc).split("\n", 1)[0]
    cause = type(exc).__name__
    lowered = first_line.lower()
    if isinstance(exc, errors.InfraError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return errors.NotFound(
            f"{path!r} does not exist", service=service, operation=operation, cause=cause
        )
    if isinstance(exc, obstore_errors.AlreadyExistsError | FileExistsError):
        return errors.Conflict(
            f"{path!r} already exists", service=service, operation=operation, cause=cause
        )
    if isinstance(exc, obstore_errors.PreconditionError):
        return errors.Conflict(
            f"{path!r} changed concurrently", service=service, operation=operation, cause=cause
        )
    if isinstance(exc, obstore_errors.PermissionDeniedError | PermissionError):
        return errors.InsufficientPermissions(f"{operation} {path!r}: {first_line}", cause=cause)
    if isinstance(exc, obstore_errors.UnauthenticatedError):
        return errors.InvalidCredentials(f"{operation} {path!r}: {first_line}", cause=cause)
    if isinstance(exc, TimeoutError) or "timed out" in lowered or "timeout" in lowered:
        return errors.IoTimeout(first_line, operation=operation, path=path, cause=cause)
    if "error sending request" in lowered or "connect" in lowered:
        return errors.HttpConnectError(first_line, cause=cause)
    if isinstance(exc, ValueError):
        return errors.ValidationError(first_line, field="path", actual=path, cause=cause)
    return errors.IoError(first_line, operation=operation, path=path, cause=cause)


# -- construction ------------------------------------------------------------------------------


def open_fs(
    url: str,
    *,
    create: bool = False,
    endpoint: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: SecretStr | str | None = None,
    service_account_key: SecretStr | str | None = None,
    allow_http: bool = False,
    timeout: float | None = None,
    max_retries: int | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
) -> FileSystem:
    """A FileSystem rooted at `url`; builds the store, touches no network.

    - ``file:///abs/dir`` or a plain path: a local directory (``create=True`` makes it);
    - ``memory://``: a new, empty in-process store (tests, caches);
    - ``s3://bucket/prefix``: `endpoint`, `region`, `access_key_id`, `secret_access_key`,
      `allow_http` (for local S3-compatible servers); unset ones come from AWS_* variables;
    - ``gs://bucket/prefix``: `service_account_key` (JSON), `endpoint`; else application
      default credentials.

    `timeout` (seconds) and `max_retries` tune the HTTP client of S3/GCS;
    `poll_interval` is how often `watch` lists an object store.
    """
    parsed = urllib.parse.urlsplit(url)
    if "://" not in url:
        scheme, parsed = "file", urllib.parse.urlsplit(Path(url).expanduser().absolute().as_uri())
    else:
        scheme = parsed.scheme.lower()
    if parsed.username is not None or parsed.password is not None:
        raise errors.ValidationError(
            "credentials in the URL are not accepted: pass them as options", field="url"
        )
    remote_options = {
        "endpoint": endpoint,
        "region": region,
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
        "service_account_key": service_account_key,
        "timeout": timeout,
        "max_retries": max_retries,
    }
    if scheme in {"file", "memory"}:
        _reject_options(scheme, remote_options, allow_http=allow_http)
    if scheme == "file":
        return _open_local(parsed, create=create, poll_interval=poll_interval)
    if scheme == "memory":
        return FileSystem(MemoryStore(), backend="memory", url="memory://")
    bucket = parsed.hostname or ""
    if not bucket:
        raise errors.ValidationError(f"{scheme}:// URL names no bucket", field="url")
    prefix = _paths.normalize_prefix(urllib.parse.unquote(parsed.path).lstrip("/"))
    safe_url = f"{scheme}://{bucket}/{prefix}"
    client: ClientConfig = {"allow_http": allow_http}
    if timeout is not None:
        client["timeout"] = timedelta(seconds=timeout)
    retry: RetryConfig | None = None if max_retries is None else {"max_retries": max_retries}
    store: ObjectStore
    try:
        if scheme in {"s3", "s3a"}:
            if service_account_key is not None:
                raise errors.ValidationError(
                    "service_account_key applies to gs:// only", field="service_account_key"
                )
            store = S3Store(
                bucket,
                prefix=prefix or None,
                config=_s3_config(endpoint, region, access_key_id, secret_access_key),
                client_options=client,
                retry_config=retry,
            )
            backend: Backend = "s3"
        elif scheme == "gs":
            if region is not None or access_key_id is not None or secret_access_key is not None:
                raise errors.ValidationError(
                    "region and access keys apply to s3:// only", field="options"
                )
            config = {} if endpoint is None else {"base_url": endpoint}
            if service_account_key is not None:
                config["service_account_key"] = _secret(service_account_key)
            store = GCSStore(
                bucket,
                prefix=prefix or None,
                config=config,  # type: ignore[arg-type]  # keys checked above
                client_options=client,
                retry_config=retry,
            )
            backend = "gs"
        else:
            raise errors.ValidationError(
                f"unsupported scheme {scheme!r}: use file, memory, s3 or gs",
                field="url",
                actual=scheme,
            )
    except errors.InfraError:
        raise
    except Exception as exc:  # noqa: BLE001  mapped, never chained (may quote the config)
        raise errors.ConfigError(
            f"{safe_url}: {str(exc).split(chr(10), 1)[0]}", key="url", cause=type(exc).__name__
        ) from None
    return FileSystem(store, backend=backend, url=safe_url, poll_interval=poll_interval)


def _open_local(
    parsed: urllib.parse.SplitResult, *, create: bool, poll_interval: float
) -> FileSystem:
    if parsed.netloc not in {"", "localhost"}:
        raise errors.ValidationError("file:// URLs name no host", field="url", actual=parsed.netloc)
    root = Path(urllib.parse.unquote(parsed.path))
    if create:
        root.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise errors.ConfigError(f"{root} is not a directory", key="url")
    # Resolved once: the sandbox compares real paths against the real root.
    real_root = Path(os.path.realpath(root))
    return FileSystem(
        LocalStore(real_root),
        backend="file",
        url=real_root.as_uri(),
        local_root=real_root,
        poll_interval=poll_interval,
    )


def _reject_options(scheme: str, options: Mapping[str, object], *, allow_http: bool) -> None:
    given = sorted(name for name, value in options.items() if value is not None)
    if allow_http:
        given.append("allow_http")
    if given:
        raise errors.ValidationError(
            f"{', '.join(given)} apply to object stores, not {scheme}://", field=given[0]
        )


def _s3_config(
    endpoint: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: SecretStr | str | None,
) -> S3Config:
    config: S3Config = {}
    if endpoint is not None:
        config["endpoint"] = endpoint
    if region is not None:
        config["region"] = region
    if access_key_id is not None:
        config["access_key_id"] = access_key_id
    if secret_access_key is not None:
        config["secret_access_key"] = _secret(secret_access_key)
    return config


def _secret(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value
