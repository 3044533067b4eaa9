"""Maps the exceptions of the libraries llm-infra wraps onto the error tree.

One function per library (httpx, nats-py, hvac, qdrant-client, and lightkube
under `llm_infra.kube`), `from_exception` dispatching on where an exception comes
from, and `translate` doing the same around a block. No library is imported
here at module import time: a mapper imports its library only once it holds
one of that library's exceptions (so it is loaded already) or reads the
exception's attributes. Mappers never raise; an exception from another library
is handed to `from_exception`. The result keeps the original's type name in
`cause` but not the original itself, whose message may quote a secret: write
``raise errors.from_exception(exc) from None``.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC
from typing import Any

import pydantic

from llm_infra.errors import _base, _problem, _tree

Mapper = Callable[[BaseException], _base.InfraError]

_DELTA_SECONDS = re.compile(r"\d+", re.ASCII)
# Qdrant's server says "Not found: Collection `docs` doesn't exist!", its local
# mode "Collection docs not found".
_QDRANT_MISSING_COLLECTION = re.compile(
    r"Collection [`'\"]?(?P<name>[^`'\"\s]+)[`'\"]? (?:doesn't exist|not found)"
)
# Both say "Wrong input: Vector dimension error: expected dim: 4, got 3".
_QDRANT_DIMENSION_MISMATCH = re.compile(r"expected dim: (?P<expected>\d+), got (?P<actual>\d+)")

# What a dependency's HTTP status means for us; other statuses stay ExternalServiceError.
_DEPENDENCY_STATUS: Mapping[int, type[_tree.AuthError] | type[_tree.ExternalServiceError]] = {
    401: _tree.InvalidCredentials,
    403: _tree.InsufficientPermissions,
    404: _tree.NotFound,
    409: _tree.Conflict,
    429: _tree.RateLimited,
}
# hvac raises one class per status (hvac.exceptions.VaultError.from_status).
_HVAC_STATUS: Mapping[str, int] = {
    "InvalidRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "InvalidPath": 404,
    "RateLimitExceeded": 429,
    "InternalServerError": 500,
    "VaultNotInitialized": 501,
    "BadGateway": 502,
    "VaultDown": 503,
}


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": a UTC time with no claim about the sender's zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def from_exception(exc: BaseException) -> _base.InfraError:
    """The InfraError for any exception: as is, via its library's mapper, or from a builtin.

    TimeoutError -> IoTimeout; OSError -> IoError (path from `filename`);
    json.JSONDecodeError -> SerializationError; pydantic.ValidationError ->
    ValidationError (never quoting the invalid input); anything else ->
    UnexpectedError with the redacted message.
    """
    if isinstance(exc, _base.InfraError):
        return exc
    mapper = _MAPPERS.get(_library(exc) or "")
    return mapper(exc) if mapper is not None else _from_builtin(exc)


@contextlib.contextmanager
def translate(mapper: Mapper = from_exception) -> Iterator[None]:
    """Re-raise any Exception leaving the block as ``mapper(exc) from None``.

    Works around sync and async code alike. InfraErrors pass unchanged, and so
    do KeyboardInterrupt, SystemExit, GeneratorExit and asyncio.CancelledError:
    they are not errors of the call but the program stopping it. Pass
    `from_qdrant` as `mapper` around qdrant-client's local mode, whose errors
    are plain ValueErrors.
    """
    try:
        yield
    except _base.InfraError:
        raise
    except Exception as exc:  # noqa: BLE001  every error, mapped: that is the point
        raise mapper(exc) from None


def from_httpx(exc: BaseException) -> _base.InfraError:
    """Map an httpx exception.

    HTTPStatusError -> HttpStatusError (with Retry-After), TimeoutException ->
    HttpTimeout, network and dropped-connection errors -> HttpConnectError,
    any other HTTPError -> HttpError. URL and method come from the request.
    """
    if _library(exc) != "httpx":
        return from_exception(exc)
    import httpx

    url, method = None, None
    with contextlib.suppress(RuntimeError):  # `.request` raises when the error has none
        if isinstance(exc, httpx.RequestError | httpx.HTTPStatusError):
            url, method = str(exc.request.url), exc.request.method
    cause = _type_name(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        return _tree.HttpStatusError(
            response.reason_phrase,
            status_code=response.status_code,
            url=url,
            method=method,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            cause=cause,
        )
    if isinstance(exc, httpx.TimeoutException):
        return _tree.HttpTimeout(str(exc), url=url, method=method, cause=cause)
    # A server dropping the connection mid-request is as retryable as refusing it.
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return _tree.HttpConnectError(str(exc), url=url, method=method, cause=cause)
    if isinstance(exc, httpx.HTTPError):
        return _tree.HttpError(str(exc), url=url, method=method, cause=cause)
    return _from_builtin(exc)


def from_transport(exc: BaseException) -> _base.InfraError:
    """Map a transport error: requests (hvac), urllib3 (qdrant-client), aiohttp.

    These reach callers when OpenBao or the API server cannot be reached:
    timeouts -> HttpTimeout, refused or dropped connections -> HttpConnectError
    (both retryable), an aiohttp status error -> HttpStatusError, the rest ->
    HttpError.
    """
    library = _library(exc)
    if library not in {"requests", "urllib3", "aiohttp"}:
        return from_exception(exc)
    # urllib3 wraps the real failure of its last retry in MaxRetryError.reason.
    reason = getattr(exc, "reason", None) if type(exc).__name__ == "MaxRetryError" else None
    failure = reason if isinstance(reason, BaseException) else exc
    kinds = {kind.__name__ for kind in type(failure).__mro__}
    request = getattr(exc, "request", None)  # requests attaches the PreparedRequest
    request_info = getattr(exc, "request_info", None)  # aiohttp attaches RequestInfo
    url = (
        getattr(request, "url", None)
        or getattr(request_info, "url", None)
        or getattr(exc, "url", None)
    )
    fields: dict[str, Any] = {
        "url": None if url is None else str(url),
        "method": getattr(request, "method", None) or getattr(request_info, "method", None),
        "cause": _type_name(exc),
    }
    message = str(failure)
    # urllib3 2.x still derives NewConnectionError from ConnectTimeoutError:
    # a refused connection must not read as a timeout.
    if "NewConnectionError" in kinds:
        return _tree.HttpConnectError(message, **fields)
    if isinstance(failure, TimeoutError) or kinds & {
        "Timeout",
        "TimeoutError",
        "ServerTimeoutError",
    }:
        return _tree.HttpTimeout(message, **fields)
    if "ClientResponseError" in kinds and isinstance(getattr(exc, "status", None), int):
        retry_after = parse_retry_after(_header(getattr(exc, "headers", None), "Retry-After"))
        return _tree.HttpStatusError(
            getattr(exc, "message", "") or message,
            status_code=exc.status,  # type: ignore[attr-defined]  # checked just above
            retry_after=retry_after,
            **fields,
        )
    connection = {"ConnectionError", "NewConnectionError", "ProtocolError", "ClientConnectionError"}
    if isinstance(failure, ConnectionError) or kinds & connection:
        return _tree.HttpConnectError(message, **fields)
    return _tree.HttpError(message, **fields)


def from_nats(exc: BaseException) -> _base.InfraError:
    """Map a nats-py exception.

    Timeouts -> MessageQueueTimeout; JetStream 404 -> MessageQueueNotFound,
    other JetStream 4xx and requests the client refuses -> MessageQueueRejected
    (not retryable); authorization -> InvalidCredentials; the rest (lost
    connection, no responders, JetStream 5xx) -> MessageQueueError, retryable.
    """
    if _library(exc) != "nats":
        return from_exception(exc)
    import nats.errors as nats_errors
    import nats.js.errors as jetstream_errors

    cause = _type_name(exc)
    message = getattr(exc, "description", None) or str(exc)
    if isinstance(exc, nats_errors.TimeoutError):
        return _tree.MessageQueueTimeout(message, cause=cause)
    if isinstance(exc, jetstream_errors.APIError):
        # KV and object-store subclasses set no `code` of their own.
        status_code = getattr(exc, "code", None)
        fields: dict[str, Any] = {
            "destination": getattr(exc, "stream", None),
            "operation": _tree.MqOperation.REQUEST,
            "error_code": getattr(exc, "err_code", None),
            "cause": cause,
        }
        if isinstance(exc, jetstream_errors.NotFoundError):
            return _tree.MessageQueueNotFound(message, status_code=status_code or 404, **fields)
        server_side = (jetstream_errors.ServiceUnavailableError, jetstream_errors.ServerError)
        if isinstance(exc, server_side) or (status_code or 0) >= 500:
            return _tree.MessageQueueError(message, status_code=status_code, **fields)
        return _tree.MessageQueueRejected(message, status_code=status_code, **fields)
    if isinstance(exc, nats_errors.AuthorizationError | nats_errors.InvalidUserCredentialsError):
        return _tree.InvalidCredentials(message, cause=cause)
    refused = (
        nats_errors.BadSubjectError,
        nats_errors.BadHeaderError,
        nats_errors.BadSubscriptionError,
        nats_errors.BadTimeoutError,
        nats_errors.MaxPayloadError,
        nats_errors.MsgAlreadyAckdError,
        nats_errors.NotJSMessageError,
        nats_errors.InvalidCallbackTypeError,
    )
    if isinstance(exc, refused):
        return _tree.MessageQueueRejected(message, cause=cause)
    connection = (
        nats_errors.NoServersError,
        nats_errors.ConnectionClosedError,
        nats_errors.ConnectionDrainingError,
        nats_errors.ConnectionReconnectingError,
        nats_errors.StaleConnectionError,
        nats_errors.OutboundBufferLimitError,
        nats_errors.ProtocolError,
        nats_errors.SecureConnFailedError,
        nats_errors.SecureConnRequiredError,
        nats_errors.SecureConnWantedError,
        nats_errors.ServerNotInPoolError,
    )
    if isinstance(exc, connection):
        return _tree.MessageQueueError(message, operation=_tree.MqOperation.CONNECT, cause=cause)
    if isinstance(exc, nats_errors.NoRespondersError):
        return _tree.MessageQueueError(message, operation=_tree.MqOperation.REQUEST, cause=cause)
    return _tree.MessageQueueError(message, cause=cause)


def from_hvac(exc: BaseException) -> _base.InfraError:
    """Map an hvac exception (OpenBao/Vault) by the status it stands for.

    404 -> NotFound, 401 -> InvalidCredentials, 403 -> InsufficientPermissions,
    429 -> RateLimited, 400 and 5xx -> ExternalServiceError (retryable for 5xx);
    service "openbao", operation "METHOD /v1/path".
    """
    if _library(exc) != "hvac":
        return from_exception(exc)
    status_code = next(
        (_HVAC_STATUS[k.__name__] for k in type(exc).__mro__ if k.__name__ in _HVAC_STATUS), None
    )
    errors = getattr(exc, "errors", None)
    if errors:
        message = ", ".join(str(error) for error in errors)
    else:
        message = str(exc.args[0]) if exc.args and exc.args[0] else ""
    method, url = getattr(exc, "method", None), getattr(exc, "url", None)
    method = method.upper() if isinstance(method, str) else None  # hvac says "get"
    path = urllib.parse.urlsplit(url).path if isinstance(url, str) else None
    operation = " ".join(part for part in (method, path) if isinstance(part, str) and part)
    return _dependency_error(
        "openbao", status_code, message, operation=operation or None, cause=_type_name(exc)
    )


def from_qdrant(exc: BaseException) -> _base.InfraError:
    """Map a qdrant-client exception, including local mode's plain ValueErrors.

    A missing collection -> CollectionNotFound, a wrong vector size ->
    DimensionMismatch, other 401/403/404/409/429/5xx as for any dependency
    (service "qdrant"), other statuses -> VectorError, and
    ResponseHandlingException (no usable answer) -> VectorUnavailable.
    """
    if type(exc) is ValueError:  # local mode reports everything as a plain ValueError
        message = str(exc)
        known = _from_qdrant_message(message, status_code=None, cause="ValueError")
        return known or _tree.VectorError(message, cause="ValueError")
    if _library(exc) != "qdrant_client":
        return from_exception(exc)
    from qdrant_client.http import exceptions as qdrant_errors

    cause = _type_name(exc)
    if isinstance(exc, qdrant_errors.UnexpectedResponse):
        status_code = exc.status_code
        message = _qdrant_error_text(exc.content) or exc.reason_phrase
        if known := _from_qdrant_message(message, status_code=status_code, cause=cause):
            return known
        if status_code is not None and (status_code in _DEPENDENCY_STATUS or status_code >= 500):
            retry_after = parse_retry_after(_header(exc.headers, "Retry-After"))
            return _dependency_error(
                "qdrant", status_code, message, retry_after=retry_after, cause=cause
            )
        return _tree.VectorError(message, cause=cause)  # 400 "Wrong input: ..." and the like
    if isinstance(exc, qdrant_errors.ResponseHandlingException):
        return _tree.VectorUnavailable(str(exc.source), cause=cause)
    return _from_builtin(exc)


def from_kubernetes(exc: BaseException) -> _base.InfraError:
    """Map an exception of lightkube (the client under `llm_infra.kube`) by status.

    An ApiError goes through `from_kubernetes_status`; its transport's (httpx2)
    timeouts -> HttpTimeout and refused or dropped connections ->
    HttpConnectError (both retryable); lightkube's ConfigError -> ConfigError.
    `llm_infra.kube` adds what to fix (the RBAC rule of a 403) on top.
    """
    library = _library(exc)
    if library not in {"lightkube", "httpx2"}:
        return from_exception(exc)
    cause = _type_name(exc)
    kinds = {k.__name__ for k in type(exc).__mro__}
    if "ApiError" in kinds:
        to_dict = getattr(getattr(exc, "status", None), "to_dict", None)
        status = dict(to_dict()) if callable(to_dict) else {}
        response = getattr(exc, "response", None)
        if response is not None:
            status.setdefault("code", getattr(response, "status_code", None))
        retry_after = _header(getattr(response, "headers", None), "Retry-After")
        return from_kubernetes_status(status, retry_after=retry_after, cause=cause)
    if "ConfigError" in kinds:  # no usable kubeconfig
        return _tree.ConfigError(str(exc), cause=cause)
    request = getattr(exc, "_request", None)
    url = str(request.url) if request is not None else None
    if "TimeoutException" in kinds:
        return _tree.HttpTimeout(str(exc), url=url, cause=cause)
    if kinds & {"NetworkError", "RemoteProtocolError", "ConnectError"}:
        return _tree.HttpConnectError(str(exc), url=url, cause=cause)
    if "HTTPError" in kinds:
        return _tree.HttpError(str(exc), url=url, cause=cause)
    return _from_builtin(exc)


def from_kubernetes_status(
    status: Mapping[str, Any],
    *,
    operation: str | None = None,
    retry_after: str | None = None,
    cause: str | None = None,
) -> _base.InfraError:
    """A meta/v1 Status (the API server's error body) as an error of the tree.

    404 -> NotFound, 409 -> Conflict, 401 -> InvalidCredentials, 403 ->
    InsufficientPermissions, 422 -> ValidationError listing every cause of the
    Status, 429 -> RateLimited (with Retry-After), 5xx -> ExternalServiceError
    (retryable), 410 (an expired resourceVersion) -> ExternalServiceError with
    status_code 410; service "kubernetes".
    """
    code = status.get("code")
    status_code = code if isinstance(code, int) and code else None
    message = _text(status.get("message")) or _text(status.get("reason")) or ""
    if status_code == 422:
        details = status.get("details")
        causes = details.get("causes") if isinstance(details, Mapping) else None
        issues = [
            _problem.FieldIssue(
                field=_text(item.get("field")),
                message=_text(item.get("message")) or "",
                reason=_text(item.get("reason")),
            )
            for item in (causes if isinstance(causes, list) else [])
            if isinstance(item, Mapping)
        ]
        field = issues[0].field if issues else None
        return _tree.ValidationError(message, field=field, errors=issues, cause=cause)
    return _dependency_error(
        "kubernetes",
        status_code,
        message,
        operation=operation,
        retry_after=parse_retry_after(retry_after),
        cause=cause,
    )


def _from_builtin(exc: BaseException) -> _base.InfraError:
    cause = _type_name(exc)
    if isinstance(exc, pydantic.ValidationError):
        return _from_pydantic(exc)
    if isinstance(exc, json.JSONDecodeError):
        return _tree.SerializationError(
            exc.msg,
            data_format=_tree.SerializationFormat.JSON,
            location=f"line {exc.lineno} column {exc.colno}",
            cause=cause,
        )
    if isinstance(exc, TimeoutError):
        return _tree.IoTimeout(str(exc), cause=cause)
    if isinstance(exc, OSError):
        filename = exc.filename
        path = os.fsdecode(filename) if isinstance(filename, str | bytes | os.PathLike) else None
        # Reading is what most failed file calls were doing; only "exists" says otherwise.
        operation = (
            _tree.IoOperation.CREATE if isinstance(exc, FileExistsError) else _tree.IoOperation.READ
        )
        return _tree.IoError(exc.strerror or str(exc), operation=operation, path=path, cause=cause)
    return _base.UnexpectedError(str(exc) or cause, cause=cause)


def validation_text(exc: pydantic.ValidationError) -> str:
    """``field.path: message; ...`` for every issue of `exc`, never the input (it may be a secret).

    What a status condition, a log line or a report says of a manifest that
    failed its model: the operator, the feeds and standalone mode all word it so.
    """
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or '(root)'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    )


def _from_pydantic(exc: pydantic.ValidationError) -> _base.InfraError:
    # Never the `input` (it may be the secret that failed validation), nor `ctx`/`url`.
    issues = [
        _problem.FieldIssue(
            field=".".join(str(part) for part in error["loc"]) or None,
            message=error["msg"],
            reason=error["type"],
        )
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    if not issues:
        return _tree.ValidationError(exc.title, cause=_type_name(exc))
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return _tree.ValidationError(
        f"{issues[0].message}{more}", field=issues[0].field, errors=issues, cause=_type_name(exc)
    )


def _from_qdrant_message(
    message: str, *, status_code: int | None, cause: str
) -> _tree.VectorError | None:
    """The specific vector error a Qdrant message describes, if any (status None: local mode)."""
    missing = _QDRANT_MISSING_COLLECTION.search(message)
    if missing and status_code in {None, 404}:
        return _tree.CollectionNotFound(message, collection=missing["name"], cause=cause)
    mismatch = _QDRANT_DIMENSION_MISMATCH.search(message)
    if mismatch and status_code in {None, 400, 422}:
        expected, actual = int(mismatch["expected"]), int(mismatch["actual"])
        return _tree.DimensionMismatch(message, expected=expected, actual=actual, cause=cause)
    return None


def _qdrant_error_text(content: bytes | None) -> str:
    """The `status.error` of a Qdrant error body, else the body itself, shortened."""
    content = content or b""
    body = _json_object(content)
    status = body.get("status")
    error = status.get("error") if isinstance(status, Mapping) else None
    return error if isinstance(error, str) else content[:500].decode("utf-8", "replace")


def _dependency_error(
    service: str,
    status_code: int | None,
    message: str,
    *,
    operation: str | None = None,
    retry_after: float | None = None,
    cause: str | None,
) -> _base.InfraError:
    error_class = _DEPENDENCY_STATUS.get(status_code or 0, _tree.ExternalServiceError)
    if issubclass(error_class, _tree.AuthError):
        # Auth errors carry no service field: name it in the message.
        message = f"{service}: {message or error_class.title}"
        return error_class(message, retry_after=retry_after, cause=cause)
    return error_class(
        message,
        service=service,
        operation=operation,
        status_code=status_code,
        retry_after=retry_after,
        cause=cause,
    )


def _library(exc: BaseException) -> str | None:
    """The mapped library of an exception: top package of the first such class in its MRO."""
    for kind in type(exc).__mro__:
        package = kind.__module__.partition(".")[0]
        if package in _MAPPERS:
            return package
    return None


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _header(headers: object, name: str) -> str | None:
    """A header from any client's header mapping (dict, httpx, urllib3, aiohttp), any case."""
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name.lower():
                return str(value)
    return None


def _json_object(body: object) -> Mapping[str, Any]:
    if isinstance(body, str | bytes):
        with contextlib.suppress(ValueError):
            document = json.loads(body)
            if isinstance(document, Mapping):
                return document
    return {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


_MAPPERS: Mapping[str, Mapper] = {
    "httpx": from_httpx,
    "nats": from_nats,
    "hvac": from_hvac,
    "qdrant_client": from_qdrant,
    "lightkube": from_kubernetes,
    "httpx2": from_kubernetes,
    "requests": from_transport,
    "urllib3": from_transport,
    "aiohttp": from_transport,
}
