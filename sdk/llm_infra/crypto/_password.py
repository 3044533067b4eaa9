"""Password hashes: argon2id for new ones (argon2-cffi), bcrypt accepted for imported ones.

`hash_password` uses argon2-cffi's `PasswordHasher` defaults, the RFC 9106
"low memory" profile (argon2id, t=3, m=64 MiB, p=4). `verify_password` also
checks ``$2a$``/``$2b$``/``$2y$`` bcrypt hashes from older systems, and
`needs_rehash` says True for them, so a login can migrate them to argon2id.
"""

from __future__ import annotations

import argon2
import bcrypt

from llm_infra import errors

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# bcrypt only reads 72 bytes; the bcrypt library refuses longer passwords rather
# than truncate them silently, and so do we (verification says False).
_BCRYPT_MAX_PASSWORD_BYTES = 72

_HASHER = argon2.PasswordHasher()  # a stateless policy object, not a client


def _encode(password: str | bytes) -> bytes:
    return password.encode() if isinstance(password, str) else password


def hash_password(password: str | bytes) -> str:
    """An argon2id PHC string (``$argon2id$v=19$...``) with a random salt."""
    return _HASHER.hash(password)


def _is_bcrypt(password_hash: str) -> bool:
    return password_hash.startswith(_BCRYPT_PREFIXES)


def verify_password(password: str | bytes, password_hash: str) -> bool:
    """Whether `password` matches an argon2 or bcrypt `password_hash`.

    A hash in neither format raises `errors.CryptoError` (operation verify):
    that is corrupt stored data, not a wrong password.
    """
    if _is_bcrypt(password_hash):
        secret = _encode(password)
        if len(secret) > _BCRYPT_MAX_PASSWORD_BYTES:
            return False
        try:
            return bcrypt.checkpw(secret, password_hash.encode("ascii"))
        except ValueError:
            raise errors.CryptoError(
                "malformed bcrypt hash", operation=errors.CryptoOperation.VERIFY
            ) from None
    if password_hash.startswith("$argon2"):
        try:
            return _HASHER.verify(password_hash, password)
        except argon2.exceptions.VerifyMismatchError:
            return False
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            # Not a mismatch: the stored hash itself does not decode.
            raise errors.CryptoError(
                "malformed argon2 hash", operation=errors.CryptoOperation.VERIFY
            ) from None
    raise errors.CryptoError(
        "unrecognised password hash format (expected argon2 or bcrypt)",
        operation=errors.CryptoOperation.VERIFY,
    )


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash should be replaced by `hash_password` at the next successful login.

    True for bcrypt and for argon2 hashes whose type or parameters differ from ours.
    """
    if _is_bcrypt(password_hash):
        return True
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except argon2.exceptions.InvalidHashError:
        raise errors.CryptoError(
            "unrecognised password hash format (expected argon2 or bcrypt)",
            operation=errors.CryptoOperation.VERIFY,
        ) from None
