"""The root of the error tree: `InfraError`, its class registry, problem documents both ways.

`InfraError` holds the behaviour every error shares (redaction on the way in,
str/repr, retry policy hooks, `to_problem`, `record_to_span`); each subclass
registers its stable code as it is defined, which is what `from_problem` and
the catalogue read. Neighbours: `_tree` defines the categories and their
cases on top of this, `_redact` scrubs, `_problem` holds the wire shapes.
"""

import enum
import functools
import inspect
import re
import traceback
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import pydantic
import pydantic_core

from llm_infra.errors import _problem, _redact

if TYPE_CHECKING:
    from opentelemetry import trace

_CODE = re.compile(r"[a-z_]+\.[a-z_]+")
_REGISTRY: dict[str, type["InfraError"]] = {}


class Category(enum.StrEnum):
    """The family an error belongs to; the prefix of its code."""

    CONFIG = enum.auto()
    HTTP = enum.auto()
    VECTOR = enum.auto()
    AUTH = enum.auto()
    CRYPTO = enum.auto()
    IO = enum.auto()
    SERIALIZATION = enum.auto()
    VALIDATION = enum.auto()
    EXTERNAL = enum.auto()
    MESSAGE_QUEUE = enum.auto()
    SCHEMA = enum.auto()


class ErrorOptions(TypedDict, total=False):
    """Keyword arguments every error accepts, whatever its class."""

    retry_after: float | None
    cause: str | None


class InfraError(Exception):
    """Base of every error llm-infra raises.

    Subclasses set `code` (unique, ``category.snake_case``; a category's base
    class is ``<category>.error``), `category`, `status` (the HTTP status of
    its problem document), `title` and whether they are `retryable` by default,
    and take their context as keyword-only arguments. Every string given to an
    error is passed through `redact` first, so str(), repr(), problem documents
    and spans are safe to show. Map a library exception with ``raise
    from_exception(exc) from None``: chaining it would carry its unscrubbed
    message along.
    """

    code: ClassVar[str] = "infra.error"
    category: ClassVar[Category | None] = None
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Infrastructure error"
    retryable: ClassVar[bool] = False
    span_fields: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(span attribute, context field) pairs `record_to_span` sets when the field is set."""

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, cause: str | None = None
    ) -> None:
        # One line, whatever the library's message looked like (hvac's are bulleted).
        self.message = " ".join(_redact.redact(message).split()) or self.title
        # The type of the library exception this error was mapped from, never the
        # exception itself: its message is not scrubbed.
        self.cause = None if cause is None else _redact.redact(cause)
        self._retry_after = None if retry_after is None else float(retry_after)
        super().__init__(self.message)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise TypeError(f"{cls.__qualname__} must set its own code, like 'vector.not_found'")
        if (holder := _REGISTRY.get(code)) is not None:
            raise TypeError(f"error code {code!r} of {cls.__qualname__} is {holder.__qualname__}'s")
        _REGISTRY[code] = cls

    def __str__(self) -> str:
        return f"{self._headline()}: {self.message}"

    def __repr__(self) -> str:
        fields = "".join(f", {name}={value!r}" for name, value in self.details().items())
        return f"{type(self).__name__}({self.message!r}{fields})"

    def _headline(self) -> str:
        return self.title

    def details(self) -> dict[str, Any]:
        """The context fields that are set, by name (already redacted)."""
        return {
            name: value
            for name in _context_types(self.code)
            if name != "retry_after" and (value := getattr(self, name, None)) is not None
        }

    def is_retryable(self) -> bool:
        """Whether the same call may succeed if tried again later."""
        return self.retryable

    def retry_after(self) -> float | None:
        """Seconds to wait before retrying, or None (also when not retryable)."""
        if not self.is_retryable():
            return None
        if self._retry_after is not None:
            return self._retry_after
        return self._default_retry_after()

    def _default_retry_after(self) -> float | None:
        return None

    def to_problem(self, instance: str | None = None) -> _problem.Problem:
        """This error as an RFC 9457 problem document, context fields as extension members."""
        members = {
            "type": _problem.problem_type(self.code),
            "title": self.title,
            "status": self.status,
            "detail": self.message,
            # A request URL may carry a token too.
            "instance": None if instance is None else _redact.redact(instance),
            "code": self.code,
            "category": self.category,
            "retryable": self.is_retryable(),
            "retry_after": self.retry_after(),
        }
        return _problem.Problem.model_validate(
            members | pydantic_core.to_jsonable_python(self.details(), exclude_none=True)
        )

    def record_to_span(self, span: "trace.Span") -> None:
        """Mark `span` failed by this error: status, semconv attributes, exception event."""
        from opentelemetry.trace import StatusCode  # here: keeps `import errors` light

        span.set_status(StatusCode.ERROR, str(self))
        span.set_attributes(self._span_attributes())
        # The SDK's own stack trace would include the chained library exception,
        # whose message may quote a credential: record ours, unchained and scrubbed.
        stacktrace = "".join(traceback.format_exception(self, chain=False))
        span.record_exception(self, {"exception.stacktrace": _redact.redact(stacktrace)})

    def _span_attributes(self) -> dict[str, str | bool | int | float]:
        attributes: dict[str, str | bool | int | float] = {
            "error.type": self.code,
            "llm_infra.error.retryable": self.is_retryable(),
        }
        if self.category is not None:
            attributes["llm_infra.error.category"] = self.category.value
        for attribute, name in self.span_fields:
            value = getattr(self, name, None)
            if isinstance(value, str | bool | int | float):
                attributes[attribute] = str(value) if isinstance(value, enum.Enum) else value
        return attributes


_REGISTRY[InfraError.code] = InfraError


class UnexpectedError(InfraError):
    """An exception no mapping knows; its message is the redacted original."""

    code = "infra.unexpected"
    title = "Unexpected error"


def error_classes() -> list[type[InfraError]]:
    """Every registered error class, sorted by code."""
    return [_REGISTRY[code] for code in sorted(_REGISTRY)]


def from_problem(document: Mapping[str, Any]) -> InfraError:
    """Rebuild the error a problem document describes (the SDK re-raises what the server sent).

    The class comes from `code`; an unknown code falls back to the base class of
    its `category` (coded ``<category>.error``), then to `InfraError`. Members
    that do not fit a field's type are dropped rather than failing: a newer
    server must not break an older client.
    """
    error_class = (
        _REGISTRY.get(str(document.get("code")))
        or _REGISTRY.get(f"{document.get('category')}.error")
        or InfraError
    )
    fields: dict[str, Any] = {}
    for name, adapter in _context_adapters(error_class.code).items():
        if (value := document.get(name)) is not None:
            try:
                fields[name] = adapter.validate_python(value)
            except pydantic.ValidationError:
                continue
    detail = document.get("detail")
    return error_class(detail if isinstance(detail, str) else "", **fields)


# Keyed by code, which names one class for good (and is hashable for the type checker).
@functools.cache
def _context_types(code: str) -> Mapping[str, Any]:
    """Name -> annotation of every keyword-only context field the class of `code` accepts."""
    signature = inspect.signature(_REGISTRY[code].__init__, eval_str=True)
    parameters = signature.parameters.values()
    own = {p.name: p.annotation for p in parameters if p.kind is p.KEYWORD_ONLY}
    return own | typing.get_type_hints(ErrorOptions)


@functools.cache
def _context_adapters(code: str) -> Mapping[str, pydantic.TypeAdapter[Any]]:
    return {name: pydantic.TypeAdapter(hint) for name, hint in _context_types(code).items()}
