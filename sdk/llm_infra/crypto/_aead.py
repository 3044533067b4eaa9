"""AES-256-GCM with a random 96-bit nonce per message, on cryptography's AESGCM.

The wire format is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``; the
same format `envelope_encrypt` (`_envelope`) stores and the WASM client reads
(``sdk/testvectors/crypto.json``). A passphrase becomes a key through argon2id
(RFC 9106 low-memory parameters, 16-byte salt).
"""

from __future__ import annotations

import os

import argon2
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from llm_infra import errors

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
SALT_SIZE = 16
# Pinned, not "whatever argon2-cffi defaults to today": a changed default would
# derive a different key from the same passphrase and salt.
KDF_PARAMETERS = argon2.profiles.RFC_9106_LOW_MEMORY


class AeadKey:
    """An AES-256-GCM key. Its repr never shows the key; `to_bytes` exports it on purpose."""

    __slots__ = ("_aesgcm", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise errors.ValidationError(
                "AES-256-GCM needs a 32-byte key",
                field="key",
                expected=f"{KEY_SIZE} bytes",
                actual=f"{len(key)} bytes",
            )
        self._key = bytes(key)
        self._aesgcm = AESGCM(self._key)

    @classmethod
    def random(cls) -> AeadKey:
        return cls(AESGCM.generate_key(bit_length=256))

    @classmethod
    def from_bytes(cls, key: bytes) -> AeadKey:
        return cls(key)

    @classmethod
    def from_passphrase(
        cls, passphrase: str | bytes, salt: bytes | None = None
    ) -> tuple[AeadKey, bytes]:
        """Derive a key with argon2id; returns ``(key, salt)`` (a new random salt if none given).

        The same passphrase and salt always give the same key; store the salt.
        """
        if salt is None:
            salt = os.urandom(SALT_SIZE)
        if len(salt) < 8:  # argon2's own minimum
            raise errors.ValidationError(
                "salt too short", field="salt", expected=">= 8 bytes", actual=f"{len(salt)} bytes"
            )
        secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
        key = hash_secret_raw(
            secret,
            salt,
            time_cost=KDF_PARAMETERS.time_cost,
            memory_cost=KDF_PARAMETERS.memory_cost,
            parallelism=KDF_PARAMETERS.parallelism,
            hash_len=KEY_SIZE,
            type=Type.ID,
        )
        return cls(key), salt

    def to_bytes(self) -> bytes:
        """The raw key: for wrapping it (`envelope_encrypt`), never for logging it."""
        return self._key

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """``nonce || ciphertext || tag``, with a fresh random nonce."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aesgcm.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        """The plaintext of an `encrypt` blob; `errors.DecryptionFailed` if it does not verify."""
        if len(blob) < NONCE_SIZE + TAG_SIZE:
            raise errors.DecryptionFailed(
                f"ciphertext too short: {len(blob)} bytes, at least {NONCE_SIZE + TAG_SIZE} needed",
                operation=errors.CryptoOperation.DECRYPT,
            )
        try:
            return self._aesgcm.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
        except InvalidTag:
            raise errors.DecryptionFailed(
                "authentication failed: wrong key, wrong AAD, or tampered or truncated ciphertext",
                operation=errors.CryptoOperation.DECRYPT,
                cause="cryptography.exceptions.InvalidTag",
            ) from None

    def __repr__(self) -> str:
        return "AeadKey(<redacted>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        # Keys do not travel by pickle; export them with to_bytes when you mean to.
        raise TypeError("AeadKey cannot be pickled")
