"""Files under one root, local or in a bucket: `open_fs(url)` returns an async `FileSystem`.

    from llm_infra import fs

    files = fs.open_fs("s3://models/cache", endpoint="http://127.0.0.1:9000", allow_http=True)
    await files.write("runs/a.json", b"{}", overwrite=False)   # errors.Conflict if present
    async with files.watch("runs") as changes:
        async for change in changes: ...

obstore does the I/O (LocalStore, MemoryStore, S3Store, GCSStore); this package
is the policy around it. Modules: `_paths` (sandbox rules), `_filesystem`
(FileSystem, open_fs, error mapping), `_watch` (change feeds).
"""

from llm_infra.fs._filesystem import DEFAULT_POLL_INTERVAL, Entry, FileSystem, map_error, open_fs
from llm_infra.fs._paths import normalize_path, normalize_prefix
from llm_infra.fs._watch import Change, ChangeKind, Watch

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "Change",
    "ChangeKind",
    "Entry",
    "FileSystem",
    "Watch",
    "map_error",
    "normalize_path",
    "normalize_prefix",
    "open_fs",
]
