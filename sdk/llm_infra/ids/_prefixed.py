"""Typed prefixed ids such as ``req_01J9Z8Q4C6X8M5T2W3V7N0B1KD``: a kind prefix and a ULID.

The body is a ULID in canonical Crockford base32 (26 upper-case characters) rather than
base32 of a UUIDv7: same 48-bit millisecond timestamp and sort order, but a published text
form other languages (the WASM client) already parse. Ids of one type therefore sort by
creation time as plain strings. Each `id_type` class is a `str` subclass, so ids compare,
hash and serialise as the text they are; only the canonical spelling is accepted, so one id
has exactly one spelling in logs, URLs and database keys.

Declare a type with a class statement, which type checkers understand as an annotation::

    class RequestId(ids.PrefixedId, prefix="req"):
        '''One inference request.'''

or at run time with ``ids.id_type("req")`` (same behaviour, but a variable is no annotation
for mypy).
"""

from __future__ import annotations

import datetime
import re
from typing import Any, ClassVar, Final, Self

import ulid as _ulid
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from llm_infra import errors
from llm_infra.ids import _random

SEPARATOR: Final = "_"
PREFIX_PATTERN: Final = re.compile(r"[a-z][a-z0-9]{0,15}")
"""A prefix: a lower-case letter, then up to 15 lower-case letters or digits (no ``_``)."""

_BODY_PATTERN: Final = "[0-7][0-9A-HJKMNP-TV-Z]{25}"

_types: dict[str, type[PrefixedId]] = {}


class PrefixedId(str):
    """Base of the classes `id_type` makes; use those, e.g. ``RequestId = id_type("req")``."""

    __slots__ = ()
    prefix: ClassVar[str] = ""

    def __init_subclass__(cls, *, prefix: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if prefix is not None:
            cls.prefix = _check_prefix(prefix)
        elif not cls.prefix:
            raise TypeError(f"{cls.__name__} needs a prefix: class {cls.__name__}(..., prefix=...)")

    def __new__(cls, text: str) -> Self:
        """Validate `text` as an id of this type; same as `parse`."""
        if not cls.prefix:
            raise TypeError("PrefixedId is abstract: make a type with id_type(prefix)")
        expected = f"{cls.prefix}{SEPARATOR}<26-character ULID>"
        if not isinstance(text, str):
            raise errors.ValidationError(
                f"{cls.__name__} must be a string, got {type(text).__name__}",
                field=cls.prefix,
                expected=expected,
                actual=type(text).__name__,
            )
        head, sep, body = text.rpartition(SEPARATOR)
        if not sep or head != cls.prefix:
            raise errors.ValidationError(
                f"{cls.__name__} must start with '{cls.prefix}{SEPARATOR}', got {text!r}",
                field=cls.prefix,
                expected=expected,
                actual=text,
            )
        try:
            _random.parse_ulid(body)
        except errors.ValidationError:
            raise errors.ValidationError(
                f"{cls.__name__} body after '{cls.prefix}{SEPARATOR}' must be a canonical ULID "
                f"(26 upper-case Crockford base32 characters), got {body!r}",
                field=cls.prefix,
                expected=expected,
                actual=text,
            ) from None
        return super().__new__(cls, text)

    @classmethod
    def new(cls) -> Self:
        """Return a fresh id of this type (a new ULID, so later ids sort after earlier ones)."""
        return cls(f"{cls.prefix}{SEPARATOR}{_random.ulid()}")

    @classmethod
    def parse(cls, text: str) -> Self:
        """Validate `text`; errors name the expected prefix in ``field`` and ``expected``."""
        return cls(text)

    @classmethod
    def from_ulid(cls, value: _ulid.ULID) -> Self:
        """Wrap an existing ULID, e.g. one made for a given time with `ULID.from_timestamp`."""
        return cls(f"{cls.prefix}{SEPARATOR}{value}")

    @property
    def body(self) -> str:
        """The ULID text after the prefix."""
        return self[len(self.prefix) + len(SEPARATOR) :]

    @property
    def timestamp_ms(self) -> int:
        """Unix milliseconds at which the id was made."""
        return _random.ulid_timestamp_ms(self.body)

    @property
    def created_at(self) -> datetime.datetime:
        """When the id was made, as an aware UTC datetime (millisecond precision)."""
        return datetime.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=datetime.UTC)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Our ValidationError is no ValueError: translate it so pydantic reports it per field.
        def validate(value: str) -> PrefixedId:
            try:
                return cls(value)
            except errors.ValidationError as exc:
                raise PydanticCustomError(
                    "prefixed_id", "{message}", {"message": exc.message, "prefix": cls.prefix}
                ) from None

        return core_schema.no_info_after_validator_function(
            validate,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = f"^{re.escape(cls.prefix + SEPARATOR)}{_BODY_PATTERN}$"
        return json_schema


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
        raise errors.ValidationError(
            f"id prefix must be a lower-case letter then up to 15 letters or digits, "
            f"got {prefix!r}",
            field="prefix",
            expected=PREFIX_PATTERN.pattern,
            actual=repr(prefix),
        )
    return prefix


def id_type(prefix: str, *, name: str | None = None) -> type[PrefixedId]:
    """Return the id class for `prefix` (``id_type("req")`` makes ``req_<ULID>`` ids).

    One class per prefix: asking twice returns the same class, so ids of one kind made
    this way are always of one type. `name` (default ``<Prefix>Id``) only shapes `repr`
    and messages.
    """
    _check_prefix(prefix)
    existing = _types.get(prefix)
    if existing is not None:
        return existing
    made = type(name or f"{prefix.capitalize()}Id", (PrefixedId,), {"__slots__": ()}, prefix=prefix)
    made.__module__ = __name__
    made.__doc__ = f"An id of the form ``{prefix}{SEPARATOR}<ULID>``."
    _types[prefix] = made
    return made
