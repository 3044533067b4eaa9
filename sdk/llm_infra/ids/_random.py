"""Random-bodied ids: UUIDv7, ULID and nanoid, their generators and timestamp extraction.

Thin policy over uuid-utils (or the standard library from Python 3.14), python-ulid and
fastnanoid: our defaults, argument checks and `errors.ValidationError` instead of library
exceptions (fastnanoid panics on an empty alphabet, and silently misbehaves on non-ASCII).
"""

from __future__ import annotations

import sys
import uuid
from typing import Final, Protocol, runtime_checkable

import fastnanoid
import ulid as _ulid

from llm_infra import errors

if sys.version_info >= (3, 14):
    from uuid import uuid7 as _uuid7
else:
    from uuid_utils.compat import uuid7 as _uuid7

NANOID_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"
"""The URL-safe nanoid alphabet (A-Z a-z 0-9 _ -), 64 symbols."""

NANOID_SIZE: Final = 21
"""The default nanoid length: 126 random bits, about the collision resistance of UUIDv4."""

NANOID_MAX_SIZE: Final = 1024

CROCKFORD_BASE32: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""The ULID alphabet (Crockford base32 without I, L, O, U)."""

_ULID_LENGTH: Final = 26


@runtime_checkable
class IdGenerator(Protocol):
    """Anything that makes a fresh id as text: the generators here and every `id_type` class."""

    def new(self) -> str:
        """Return a new, unique id."""
        ...


def uuid7() -> uuid.UUID:
    """Return a new time-ordered UUID version 7 (RFC 9562) as a standard `uuid.UUID`.

    Ids made in one process sort in creation order, also within a millisecond.
    """
    return _uuid7()


def ulid() -> str:
    """Return a new ULID as its canonical 26-character, upper-case Crockford base32 text."""
    return str(_ulid.ULID())


def nanoid(size: int = NANOID_SIZE, alphabet: str = NANOID_ALPHABET) -> str:
    """Return a random id of `size` symbols drawn uniformly from `alphabet`.

    `alphabet` must be 2 to 256 distinct printable ASCII characters; `size` 1 to 1024.
    """
    _check_nanoid_args(size, alphabet)
    return fastnanoid.generate(alphabet=alphabet, size=size)


def _check_nanoid_args(size: object, alphabet: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= NANOID_MAX_SIZE:
        raise errors.ValidationError(
            f"nanoid size must be an integer from 1 to {NANOID_MAX_SIZE}, got {size!r}",
            field="size",
            expected=f"integer in [1, {NANOID_MAX_SIZE}]",
            actual=repr(size),
        )
    if not isinstance(alphabet, str):
        raise errors.ValidationError(
            "nanoid alphabet must be a string",
            field="alphabet",
            expected="str",
            actual=type(alphabet).__name__,
        )
    if not 2 <= len(alphabet) <= 256:
        raise errors.ValidationError(
            f"nanoid alphabet must have 2 to 256 symbols, got {len(alphabet)}",
            field="alphabet",
            expected="2 to 256 symbols",
            actual=str(len(alphabet)),
        )
    # fastnanoid indexes the alphabet by byte: a multi-byte symbol would be split.
    if not (alphabet.isascii() and alphabet.isprintable()):
        raise errors.ValidationError(
            "nanoid alphabet must be printable ASCII",
            field="alphabet",
            expected="printable ASCII characters",
            actual=repr(alphabet),
        )
    if len(set(alphabet)) != len(alphabet):
        duplicates = sorted({ch for ch in alphabet if alphabet.count(ch) > 1})
        raise errors.ValidationError(
            f"nanoid alphabet repeats {''.join(duplicates)!r}, which would bias the ids",
            field="alphabet",
            expected="distinct symbols",
            actual=repr(alphabet),
        )


def uuid7_timestamp_ms(value: uuid.UUID | str) -> int:
    """Return the Unix time in milliseconds stored in a UUIDv7 (a `uuid.UUID` or its text)."""
    if isinstance(value, str):
        text = value
        try:
            value = uuid.UUID(text)
        except ValueError:
            raise errors.ValidationError(
                f"not a UUID: {text!r}", field="uuid", expected="UUID text", actual=text
            ) from None
    if value.version != 7 or value.variant != uuid.RFC_4122:
        raise errors.ValidationError(
            f"not a version 7 UUID: {value}",
            field="uuid",
            expected="UUID version 7",
            actual=f"version {value.version}",
        )
    return value.int >> 80


def parse_ulid(text: str) -> _ulid.ULID:
    """Parse canonical ULID text (26 upper-case Crockford base32 symbols, at most 7ZZZ...)."""
    if not _is_canonical_ulid(text):
        raise errors.ValidationError(
            f"not a canonical ULID: {text!r}",
            field="ulid",
            expected="26 upper-case Crockford base32 characters, first one 0-7",
            actual=repr(text),
        )
    return _ulid.ULID.from_str(text)


def _is_canonical_ulid(text: object) -> bool:
    return (
        isinstance(text, str)
        and len(text) == _ULID_LENGTH
        and text[0] in "01234567"
        and all(ch in CROCKFORD_BASE32 for ch in text)
    )


def ulid_timestamp_ms(text: str) -> int:
    """Return the Unix time in milliseconds stored in a ULID's first 48 bits."""
    return parse_ulid(text).milliseconds


class Uuid7Generator:
    """`IdGenerator` of UUIDv7 text (``0190...-7...``, 36 characters)."""

    def new(self) -> str:
        """Return a new UUIDv7 as hyphenated lower-case text."""
        return str(uuid7())


class UlidGenerator:
    """`IdGenerator` of ULID text (26 characters)."""

    def new(self) -> str:
        """Return a new ULID."""
        return ulid()


class NanoidGenerator:
    """`IdGenerator` of nanoids; size and alphabet are checked once, here."""

    def __init__(self, size: int = NANOID_SIZE, alphabet: str = NANOID_ALPHABET) -> None:
        _check_nanoid_args(size, alphabet)
        self.size = size
        self.alphabet = alphabet

    def new(self) -> str:
        """Return a new nanoid."""
        return fastnanoid.generate(alphabet=self.alphabet, size=self.size)
