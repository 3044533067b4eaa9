"""The data folder of `llm-infra up`: private to its user, and used by one process at a time.

Everything the control plane writes is created 0600 in 0700 folders (the CLI
sets the process umask to 077, so the embedded Qdrant shards and the
nats-server child's store inherit it too): admin key hash, collections, audit
records and the NATS credentials are nobody else's to read. `claim` takes an
exclusive lock on ``<data>/.lock`` for the life of the process: a second
`llm-infra up` on the same folder would start a second nats-server on the same
JetStream store and open the same shards, so it is refused, naming the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from llm_infra import errors

LOCK_FILE = ".lock"
PRIVATE_UMASK = 0o077

_log = logging.getLogger(__name__)


def make_private(data_dir: Path) -> None:
    """Create `data_dir` 0700, or tighten an existing one that others may read."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077:
        data_dir.chmod(mode & 0o700)
        _log.warning("%s was readable by other users (%o): now 0700", data_dir, mode)


@contextlib.contextmanager
def claim(data_dir: Path) -> Iterator[None]:
    """Hold `data_dir` for this process; a ConfigError if another process holds it."""
    make_private(data_dir)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise errors.ConfigError(
                f"{data_dir} is in use by another llm-infra process (pid {holder}): stop it,"
                " or give this one its own folder (--data DIR)",
                key="data_dir",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


__all__ = ["LOCK_FILE", "PRIVATE_UMASK", "claim", "make_private"]
