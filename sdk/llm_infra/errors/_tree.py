"""The error categories and the cases within them that users tell apart.

One base class per `Category` (``ConfigError`` ... ``SchemaError``, coded
``<category>.error``) with the context fields of that family, then specific
classes with their own code, status and retry policy. Behaviour shared by all
lives in `_base.InfraError`; `_map` builds these from library exceptions.
"""

# The names say what happened (DimensionMismatch, NotFound); the
# root class says they are errors.
# ruff: noqa: N818

import enum
from collections.abc import Sequence
from typing import Any, ClassVar, Unpack

from llm_infra.errors import _base, _problem, _redact

# Seconds to wait when a server asks us to slow down without saying for how long.
HTTP_429_RETRY_AFTER = 30.0
RATE_LIMITED_RETRY_AFTER = 60.0


class VectorOperation(enum.StrEnum):
    INSERT = enum.auto()
    SEARCH = enum.auto()
    DELETE = enum.auto()
    UPDATE = enum.auto()
    INDEX = enum.auto()
    COMPRESS = enum.auto()


class AuthErrorKind(enum.StrEnum):
    INVALID_CREDENTIALS = enum.auto()
    TOKEN_EXPIRED = enum.auto()
    INSUFFICIENT_PERMISSIONS = enum.auto()
    INVALID_TOKEN = enum.auto()
    MISSING_CREDENTIALS = enum.auto()
    RATE_LIMITED = enum.auto()


class CryptoOperation(enum.StrEnum):
    ENCRYPT = enum.auto()
    DECRYPT = enum.auto()
    SIGN = enum.auto()
    VERIFY = enum.auto()
    HASH = enum.auto()
    KEY_GENERATION = enum.auto()


class IoOperation(enum.StrEnum):
    READ = enum.auto()
    WRITE = enum.auto()
    DELETE = enum.auto()
    CREATE = enum.auto()
    LIST = enum.auto()
    WATCH = enum.auto()


class SerializationFormat(enum.StrEnum):
    JSON = enum.auto()
    TOML = enum.auto()
    YAML = enum.auto()
    MSGPACK = enum.auto()
    PROTOBUF = enum.auto()


class MqOperation(enum.StrEnum):
    PUBLISH = enum.auto()
    SUBSCRIBE = enum.auto()
    ACKNOWLEDGE = enum.auto()
    REJECT = enum.auto()
    CONNECT = enum.auto()
    DISCONNECT = enum.auto()
    REQUEST = enum.auto()  # request/reply, which every JetStream API call is


def _scrub(value: str | None) -> str | None:
    return None if value is None else _redact.redact(value)


def _retryable_status(status_code: int | None) -> bool:
    return status_code is not None and (status_code >= 500 or status_code == 429)


# -- configuration ---------------------------------------------------------------------------


class ConfigError(_base.InfraError):
    code = "config.error"
    category = _base.Category.CONFIG
    title = "Configuration error"

    def __init__(
        self, message: str = "", *, key: str | None = None, **common: Unpack[_base.ErrorOptions]
    ) -> None:
        super().__init__(message, **common)
        self.key = _scrub(key)

    def _headline(self) -> str:
        return f"Configuration error for '{self.key}'" if self.key else "Configuration error"


class ConfigMissing(ConfigError):
    code = "config.missing_key"
    title = "Missing configuration key"


# -- HTTP --------------------------------------------------------------------------------------


class HttpError(_base.InfraError):
    """An HTTP call to a dependency failed; retryable on 5xx and 429."""

    code = "http.error"
    category = _base.Category.HTTP
    status = 502
    title = "Upstream HTTP request failed"
    span_fields = (
        ("http.response.status_code", "status_code"),
        ("url.full", "url"),
        ("http.request.method", "method"),
    )

    def __init__(
        self,
        message: str = "",
        *,
        status_code: int | None = None,
        url: str | None = None,
        method: str | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, **common)
        self.status_code = status_code
        self.url = _scrub(url)
        self.method = _scrub(method)

    def _headline(self) -> str:
        status = f" {self.status_code}" if self.status_code is not None else ""
        target = f" for {self.url}" if self.url else ""
        return f"HTTP{status} error{target}"

    def is_retryable(self) -> bool:
        return _retryable_status(self.status_code) or super().is_retryable()

    def _default_retry_after(self) -> float | None:
        return HTTP_429_RETRY_AFTER if self.status_code == 429 else None


class HttpTimeout(HttpError):
    code = "http.timeout"
    status = 504
    title = "Upstream HTTP request timed out"
    retryable = True


class HttpConnectError(HttpError):
    code = "http.connect_error"
    title = "Upstream unreachable"
    retryable = True


class HttpStatusError(HttpError):
    """The dependency answered with an error status (`status_code`)."""

    code = "http.status_error"
    title = "Upstream answered with an error status"


# -- vectors -----------------------------------------------------------------------------------


class VectorError(_base.InfraError):
    code = "vector.error"
    category = _base.Category.VECTOR
    title = "Vector store error"
    span_fields = (("db.collection.name", "collection"),)

    def __init__(
        self,
        message: str = "",
        *,
        operation: VectorOperation | None = None,
        collection: str | None = None,
        dimensions: int | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, **common)
        self.operation = operation
        self.collection = _scrub(collection)
        self.dimensions = dimensions

    def _headline(self) -> str:
        operation = f" {self.operation}" if self.operation else ""
        collection = f" in collection '{self.collection}'" if self.collection else ""
        return f"Vector{operation} error{collection}"


class DimensionMismatch(VectorError):
    """A vector's length differs from the collection's; `dimensions` is the expected one."""

    code = "vector.dimension_mismatch"
    status = 422
    title = "Vector dimension mismatch"

    def __init__(
        self,
        message: str = "",
        *,
        expected: int | None = None,
        actual: int | None = None,
        operation: VectorOperation | None = None,
        collection: str | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        if not message and expected is not None and actual is not None:
            message = f"expected {expected} dimensions, got {actual}"
        super().__init__(
            message, operation=operation, collection=collection, dimensions=expected, **common
        )
        self.expected = expected
        self.actual = actual


class CollectionNotFound(VectorError):
    code = "vector.collection_not_found"
    status = 404
    title = "Vector collection not found"


class VectorUnavailable(VectorError):
    """The vector store could not be reached or gave no usable answer."""

    code = "vector.unavailable"
    status = 503
    title = "Vector store unavailable"
    retryable = True


class InvalidVector(VectorError):
    """A vector that no index can hold: empty, or with NaN or infinite components."""

    code = "vector.invalid_vector"
    status = 422
    title = "Invalid vector"


class UnknownDistance(VectorError):
    code = "vector.unknown_distance"
    status = 422
    title = "Unknown distance"


class CollectionConfigMismatch(VectorError):
    """An existing collection differs from its spec in a field that cannot change in place.

    Nothing was modified; `field` names what differs. Recreate the collection
    (or point the spec at a new collectionName) to change it.
    """

    code = "vector.config_mismatch"
    status = 409
    title = "Collection differs from its spec in an immutable field"

    def __init__(
        self,
        message: str = "",
        *,
        field: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
        collection: str | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, collection=collection, **common)
        self.field = _scrub(field)
        self.expected = _scrub(expected)
        self.actual = _scrub(actual)


class CollectionLocked(VectorError):
    """The embedded collection's directory is open in another process (one owner per directory)."""

    code = "vector.collection_locked"
    status = 409
    title = "Collection is open in another process"


class CollectionOwned(VectorError):
    """The engine collection is bound to another VectorCollection of the namespace.

    One engine collection serves one VectorCollection: a caller's rights on its
    VectorCollection must not reach another one's points. Nothing was changed.
    """

    code = "vector.collection_owned"
    status = 409
    title = "Collection belongs to another VectorCollection"


# -- authentication and authorization ----------------------------------------------------------


class AuthError(_base.InfraError):
    code = "auth.error"
    category = _base.Category.AUTH
    status = 401
    title = "Authentication failed"
    default_kind: ClassVar[AuthErrorKind | None] = None
    span_fields = (("llm_infra.auth.kind", "kind"),)

    def __init__(
        self,
        message: str = "",
        *,
        kind: AuthErrorKind | None = None,
        identity: str | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, **common)
        self.kind = kind or self.default_kind
        self.identity = _scrub(identity)

    def _headline(self) -> str:
        return f"Authentication error ({self.kind})" if self.kind else "Authentication error"

    def is_retryable(self) -> bool:
        return self.kind is AuthErrorKind.RATE_LIMITED or super().is_retryable()

    def _default_retry_after(self) -> float | None:
        return RATE_LIMITED_RETRY_AFTER if self.kind is AuthErrorKind.RATE_LIMITED else None


class InvalidCredentials(AuthError):
    code = "auth.invalid_credentials"
    title = "Invalid credentials"
    default_kind = AuthErrorKind.INVALID_CREDENTIALS


class TokenExpired(AuthError):
    code = "auth.token_expired"
    title = "Token expired"
    default_kind = AuthErrorKind.TOKEN_EXPIRED


class InvalidToken(AuthError):
    code = "auth.invalid_token"
    title = "Invalid token"
    default_kind = AuthErrorKind.INVALID_TOKEN


class MissingCredentials(AuthError):
    code = "auth.missing_credentials"
    title = "Missing credentials"
    default_kind = AuthErrorKind.MISSING_CREDENTIALS


class InsufficientPermissions(AuthError):
    code = "auth.insufficient_permissions"
    status = 403
    title = "Insufficient permissions"
    default_kind = AuthErrorKind.INSUFFICIENT_PERMISSIONS


class RateLimited(AuthError):
    code = "auth.rate_limited"
    status = 429
    title = "Rate limited"
    retryable = True
    default_kind = AuthErrorKind.RATE_LIMITED


# -- cryptography ------------------------------------------------------------------------------


class CryptoError(_base.InfraError):
    code = "crypto.error"
    category = _base.Category.CRYPTO
    title = "Cryptographic operation failed"
    default_operation: ClassVar[CryptoOperation | None] = None

    def __init__(
        self,
        message: str = "",
        *,
        operation: CryptoOperation | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, **common)
        self.operation = operation or self.default_operation

    def _headline(self) -> str:
        return f"Crypto {self.operation} error" if self.operation else "Crypto error"


class DecryptionFailed(CryptoError):
    code = "crypto.decryption_failed"
    title = "Decryption failed"
    default_operation = CryptoOperation.DECRYPT


class VerificationFailed(CryptoError):
    code = "crypto.verification_failed"
    title = "Signature verification failed"
    default_operation = CryptoOperation.VERIFY


# -- local I/O ---------------------------------------------------------------------------------


class IoError(_base.InfraError):
    code = "io.error"
    category = _base.Category.IO
    title = "I/O error"

    def __init__(
        self,
        message: str = "",
        *,
        operation: IoOperation | None = None,
        path: str | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, **common)
        self.operation = operation
        self.path = _scrub(path)

    def _headline(self) -> str:
        operation = f" {self.operation}" if self.operation else ""
        path = f" for {self.path}" if self.path else ""
        return f"I/O{operation} error{path}"


class IoTimeout(IoError):
    code = "io.timeout"
    status = 504
    title = "Operation timed out"
    retryable = True


# -- documents ---------------------------------------------------------------------------------


class SerializationError(_base.InfraError):
    code = "serialization.error"
    category = _base.Category.SERIALIZATION
    status = 400
    title = "Malformed document"

    def __init__(
        self,
        message: str = "",
        *,
        data_format: SerializationFormat | None = None,
        location: str | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, **common)
        self.data_format = data_format
        self.location = _scrub(location)

    def _headline(self) -> str:
        headline = f"{self.data_format.upper()} serialization error" if self.data_format else ""
        location = f" at {self.location}" if self.location else ""
        return f"{headline or 'Serialization error'}{location}"


class ValidationError(_base.InfraError):
    """A value broke a rule; `errors` lists every field at fault when there are several."""

    code = "validation.error"
    category = _base.Category.VALIDATION
    status = 422
    title = "Validation failed"

    def __init__(
        self,
        message: str = "",
        *,
        field: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
        errors: Sequence[_problem.FieldIssue] = (),
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, **common)
        self.field = _scrub(field)
        self.expected = _scrub(expected)
        self.actual = _scrub(actual)
        self.errors = tuple(
            _problem.FieldIssue(
                field=_scrub(issue.field),
                message=_redact.redact(issue.message),
                reason=_scrub(issue.reason),
            )
            for issue in errors
        )

    def _headline(self) -> str:
        return f"Validation error for '{self.field}'" if self.field else "Validation error"

    def details(self) -> dict[str, Any]:
        details = super().details()
        if not self.errors:  # an empty list says nothing a reader needs
            del details["errors"]
        return details


class SchemaError(_base.InfraError):
    code = "schema.error"
    category = _base.Category.SCHEMA
    title = "Schema error"

    def __init__(
        self,
        message: str = "",
        *,
        schema_id: str | None = None,
        path: str | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, **common)
        self.schema_id = _scrub(schema_id)
        self.path = _scrub(path)

    def _headline(self) -> str:
        schema = f" in '{self.schema_id}'" if self.schema_id else ""
        path = f" at {self.path}" if self.path else ""
        return f"Schema error{schema}{path}"


class SchemaViolation(SchemaError):
    code = "schema.violation"
    status = 422
    title = "Document violates its schema"


# -- dependencies ------------------------------------------------------------------------------


class ExternalServiceError(_base.InfraError):
    """A dependency (OpenBao, Qdrant, Kubernetes, ...) refused or failed a call.

    Retryable when it asked for a delay (`retry_after`) or answered 5xx/429.
    """

    code = "external.error"
    category = _base.Category.EXTERNAL
    status = 502
    title = "Dependency failed"
    span_fields = (
        ("llm_infra.external.service", "service"),
        ("http.response.status_code", "status_code"),
    )

    def __init__(
        self,
        message: str = "",
        *,
        service: str | None = None,
        operation: str | None = None,
        status_code: int | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        super().__init__(message, **common)
        self.service = _scrub(service)
        self.operation = _scrub(operation)
        self.status_code = status_code

    def _headline(self) -> str:
        service = f" '{self.service}'" if self.service else ""
        operation = f" during {self.operation}" if self.operation else ""
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"External service{service} error{operation}{status}"

    def is_retryable(self) -> bool:
        return (
            self._retry_after is not None
            or _retryable_status(self.status_code)
            or super().is_retryable()
        )

    def _default_retry_after(self) -> float | None:
        return HTTP_429_RETRY_AFTER if self.status_code == 429 else None


class NotFound(ExternalServiceError):
    """The dependency has no such thing (its 404): a secret path, a Kubernetes object, ..."""

    code = "external.not_found"
    status = 404
    title = "Not found"


class Conflict(ExternalServiceError):
    """The dependency refused a write that conflicts with its state (its 409)."""

    code = "external.conflict"
    status = 409
    title = "Conflict"


# -- message queue -----------------------------------------------------------------------------


class MessageQueueError(_base.InfraError):
    """NATS / JetStream failed; retryable unless the server rejected the request itself."""

    code = "message_queue.error"
    category = _base.Category.MESSAGE_QUEUE
    status = 503
    title = "Message queue unavailable"
    retryable = True
    span_fields = (("messaging.destination.name", "destination"),)

    def __init__(
        self,
        message: str = "",
        *,
        destination: str | None = None,
        operation: MqOperation | None = None,
        status_code: int | None = None,
        error_code: int | None = None,
        **common: Unpack[_base.ErrorOptions],
    ) -> None:
        """`destination` is a subject or stream; `error_code` JetStream's own (e.g. 10059)."""
        super().__init__(message, **common)
        self.destination = _scrub(destination)
        self.operation = operation
        self.status_code = status_code
        self.error_code = error_code

    def _headline(self) -> str:
        operation = f" {self.operation}" if self.operation else ""
        destination = f" on '{self.destination}'" if self.destination else ""
        return f"Message queue{operation} error{destination}"


class MessageQueueTimeout(MessageQueueError):
    code = "message_queue.timeout"
    status = 504
    title = "Message queue timed out"


class MessageQueueRejected(MessageQueueError):
    """JetStream answered 4xx, or the client refused a malformed request: retrying cannot help."""

    code = "message_queue.rejected"
    status = 502
    title = "Message queue rejected the request"
    retryable = False


class MessageQueueNotFound(MessageQueueRejected):
    """No such stream, consumer, bucket or key."""

    code = "message_queue.not_found"
    status = 404
    title = "Stream or consumer not found"
