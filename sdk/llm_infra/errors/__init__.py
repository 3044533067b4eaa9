"""The unified error tree of llm-infra: stable codes, retry policy, problem documents, spans.

Every error the SDK, the control plane and the operator raise is an
`InfraError` subclass with a stable `code` (``vector.dimension_mismatch``).
The control plane answers `err.to_problem()` as application/problem+json and
the SDK re-raises it with `from_problem`; `err.record_to_span(span)` marks an
OpenTelemetry span failed. Strings given to an error are redacted on the way
in, so none of these outputs can leak a credential.

Library exceptions (httpx, nats-py, hvac, qdrant-client, lightkube) are
mapped, never chained::

    from llm_infra import errors

    try:
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise errors.from_exception(exc) from None

    with errors.translate():
        await js.publish(subject, payload)

Importing this package loads none of those libraries. Modules: `_base` (the
root class, its registry, problem documents both ways), `_tree` (categories and
cases), `_redact`, `_problem` (wire shapes), `_map` (library mappings),
`_catalogue` (docs/errors.md).
"""

from llm_infra.errors._base import (
    Category,
    ErrorOptions,
    InfraError,
    UnexpectedError,
    error_classes,
    from_problem,
)
from llm_infra.errors._catalogue import (
    GENERATED_HEADER,
    CatalogueEntry,
    catalogue,
    render_catalogue_markdown,
)
from llm_infra.errors._map import (
    Mapper,
    from_exception,
    from_httpx,
    from_hvac,
    from_kubernetes,
    from_kubernetes_status,
    from_nats,
    from_qdrant,
    from_transport,
    parse_retry_after,
    translate,
    validation_text,
)
from llm_infra.errors._problem import FieldIssue, Problem, problem_type
from llm_infra.errors._redact import redact
from llm_infra.errors._tree import (
    HTTP_429_RETRY_AFTER,
    RATE_LIMITED_RETRY_AFTER,
    AuthError,
    AuthErrorKind,
    CollectionConfigMismatch,
    CollectionLocked,
    CollectionNotFound,
    CollectionOwned,
    ConfigError,
    ConfigMissing,
    Conflict,
    CryptoError,
    CryptoOperation,
    DecryptionFailed,
    DimensionMismatch,
    ExternalServiceError,
    HttpConnectError,
    HttpError,
    HttpStatusError,
    HttpTimeout,
    InsufficientPermissions,
    InvalidCredentials,
    InvalidToken,
    InvalidVector,
    IoError,
    IoOperation,
    IoTimeout,
    MessageQueueError,
    MessageQueueNotFound,
    MessageQueueRejected,
    MessageQueueTimeout,
    MissingCredentials,
    MqOperation,
    NotFound,
    RateLimited,
    SchemaError,
    SchemaViolation,
    SerializationError,
    SerializationFormat,
    TokenExpired,
    UnknownDistance,
    ValidationError,
    VectorError,
    VectorOperation,
    VectorUnavailable,
    VerificationFailed,
)

__all__ = [
    "GENERATED_HEADER",
    "HTTP_429_RETRY_AFTER",
    "RATE_LIMITED_RETRY_AFTER",
    "AuthError",
    "AuthErrorKind",
    "CatalogueEntry",
    "Category",
    "CollectionConfigMismatch",
    "CollectionLocked",
    "CollectionNotFound",
    "CollectionOwned",
    "ConfigError",
    "ConfigMissing",
    "Conflict",
    "CryptoError",
    "CryptoOperation",
    "DecryptionFailed",
    "DimensionMismatch",
    "ErrorOptions",
    "ExternalServiceError",
    "FieldIssue",
    "HttpConnectError",
    "HttpError",
    "HttpStatusError",
    "HttpTimeout",
    "InfraError",
    "InsufficientPermissions",
    "InvalidCredentials",
    "InvalidToken",
    "InvalidVector",
    "IoError",
    "IoOperation",
    "IoTimeout",
    "Mapper",
    "MessageQueueError",
    "MessageQueueNotFound",
    "MessageQueueRejected",
    "MessageQueueTimeout",
    "MissingCredentials",
    "MqOperation",
    "NotFound",
    "Problem",
    "RateLimited",
    "SchemaError",
    "SchemaViolation",
    "SerializationError",
    "SerializationFormat",
    "TokenExpired",
    "UnexpectedError",
    "UnknownDistance",
    "ValidationError",
    "VectorError",
    "VectorOperation",
    "VectorUnavailable",
    "VerificationFailed",
    "catalogue",
    "error_classes",
    "from_exception",
    "from_httpx",
    "from_hvac",
    "from_kubernetes",
    "from_kubernetes_status",
    "from_nats",
    "from_problem",
    "from_qdrant",
    "from_transport",
    "parse_retry_after",
    "problem_type",
    "redact",
    "render_catalogue_markdown",
    "translate",
    "validation_text",
]
