"""Digests and MACs: SHA-256 and BLAKE2b (hashlib), BLAKE3, HMAC-SHA256, constant-time checks."""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

import blake3 as _blake3

from llm_infra import errors

DigestAlgorithm = Literal["sha256", "blake2b", "blake3"]


def sha256(data: bytes) -> bytes:
    """SHA-256 of `data` (32 bytes)."""
    return hashlib.sha256(data).digest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blake2b(data: bytes, digest_size: int = 32) -> bytes:
    """BLAKE2b of `data`, `digest_size` bytes (1..64); 32 by default, not hashlib's 64."""
    if not 1 <= digest_size <= 64:
        raise errors.ValidationError(
            "BLAKE2b digest size out of range",
            field="digest_size",
            expected="1..64",
            actual=str(digest_size),
        )
    return hashlib.blake2b(data, digest_size=digest_size).digest()


def blake2b_hex(data: bytes, digest_size: int = 32) -> str:
    return blake2b(data, digest_size).hex()


def blake3(data: bytes) -> bytes:
    """BLAKE3 of `data` (32 bytes)."""
    return _blake3.blake3(data).digest()


def blake3_hex(data: bytes) -> str:
    return _blake3.blake3(data).hexdigest()


def digest(data: bytes, algorithm: DigestAlgorithm = "sha256") -> bytes:
    """The digest of `data` by algorithm name; default sizes (32 bytes for all three)."""
    if algorithm == "sha256":
        return sha256(data)
    if algorithm == "blake2b":
        return blake2b(data)
    if algorithm == "blake3":
        return blake3(data)
    raise errors.ValidationError(
        "unknown digest algorithm",
        field="algorithm",
        expected="sha256, blake2b or blake3",
        actual=str(algorithm),
    )


def verify_digest(
    data: bytes, expected: bytes | str, algorithm: DigestAlgorithm = "sha256"
) -> bool:
    """Whether `data` hashes to `expected` (raw bytes or hex), compared in constant time."""
    actual = digest(data, algorithm)
    if isinstance(expected, str):
        try:
            expected = bytes.fromhex(expected)
        except ValueError:
            return False
    return hmac.compare_digest(actual, expected)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of `data` under `key` (32 bytes)."""
    return hmac.new(key, data, hashlib.sha256).digest()


def verify_hmac_sha256(key: bytes, data: bytes, expected: bytes) -> bool:
    """Whether `expected` is the HMAC-SHA256 of `data` under `key`, in constant time."""
    return hmac.compare_digest(hmac_sha256(key, data), expected)
