"""The standalone admin key: one API key made on the first `llm-infra up`, its hash kept on disk.

Only its argon2id hash is stored (``<data_dir>/admin-key.json``, mode 0600);
the key itself is printed once. `llm-infra serve` never makes one: in a cluster
keys come from `Settings.api_keys`.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pydantic

from llm_infra import auth, errors

ADMIN_KEY_FILE = "admin-key.json"
ADMIN_KEY_OWNER = "llm-infra-admin"
ROTATE_HINT = "llm-infra up --rotate-admin-key"

log = logging.getLogger(__name__)


def admin_key_path(data_dir: Path) -> Path:
    return data_dir / ADMIN_KEY_FILE


async def ensure_admin_key(data_dir: Path) -> auth.ApiKeyRecord:
    """The admin key's record; on the first start, a new key, printed once to stdout.

    Only its argon2id hash is stored (``<data_dir>/admin-key.json``, mode 0600); later
    starts print that it is stored, never the key.
    """
    path = admin_key_path(data_dir)
    if not path.exists():
        return await rotate_admin_key(data_dir)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("%s is readable by others: chmod 600 it", path)
    try:
        record = auth.ApiKeyRecord.model_validate_json(path.read_bytes())
    except pydantic.ValidationError:
        raise errors.ConfigError(
            f"{path} is not an admin key record: delete it or run `{ROTATE_HINT}`",
            key="admin_key",
        ) from None
    print(f"admin key: (stored; see the first start or rotate with `{ROTATE_HINT}`)", flush=True)
    return record


async def rotate_admin_key(data_dir: Path) -> auth.ApiKeyRecord:
    """Replace the admin key with a new one, printed once to stdout; the old key stops working.

    A running control plane keeps the key it loaded until it restarts.
    """
    key, record = await issue_api_key(ADMIN_KEY_OWNER)
    _write_private(admin_key_path(data_dir), record.model_dump_json(indent=2).encode())
    print(f"admin key: {key.get_secret_value()}", flush=True)
    print(
        "  (shown once: keep it now; send it as 'Authorization: Bearer <key>';"
        f" only its hash is stored in {admin_key_path(data_dir)})",
        flush=True,
    )
    return record


async def issue_api_key(owner: str) -> tuple[pydantic.SecretStr, auth.ApiKeyRecord]:
    """A new API key for `owner` (the plaintext, once; the record to store in `api_keys`)."""
    return await auth.ApiKeyAuthenticator(auth.InMemoryApiKeyStore()).create_key(owner)


def _write_private(path: Path, content: bytes) -> None:
    # Created 0600 and renamed into place: no moment where the file is readable by others
    # or half-written.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


__all__ = [
    "ADMIN_KEY_FILE",
    "ADMIN_KEY_OWNER",
    "admin_key_path",
    "ensure_admin_key",
    "issue_api_key",
    "rotate_admin_key",
]
