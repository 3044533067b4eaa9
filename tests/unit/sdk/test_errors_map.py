"""Library exceptions onto the error tree, with the libraries' real exception objects."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import httpx2
import hvac.exceptions
import lightkube
import nats.errors
import nats.js.errors
import pydantic
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from llm_infra import errors

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        ("Tue, 14 Nov 2023 22:13:50 -0000", 30.0),
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past: now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert errors.parse_retry_after(header, now=NOW) == seconds


# -- httpx -------------------------------------------------------------------------------------


def status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://api.internal/v1/items")
    response = httpx.Response(status, request=request, headers=headers)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        response.raise_for_status()
    return caught.value


def test_httpx_status_error_keeps_status_method_url_and_retry_after() -> None:
    error = errors.from_httpx(status_error(503, {"Retry-After": "7"}))
    assert isinstance(error, errors.HttpStatusError)
    assert (error.status_code, error.method, error.url) == (
        503,
        "POST",
        "https://api.internal/v1/items",
    )
    assert (error.is_retryable(), error.retry_after()) == (True, 7.0)
    assert error.cause == "httpx.HTTPStatusError"
    assert str(error) == "HTTP 503 error for https://api.internal/v1/items: Service Unavailable"


def test_httpx_429_without_header_waits_the_default() -> None:
    error = errors.from_httpx(status_error(429))
    assert error.retry_after() == errors.HTTP_429_RETRY_AFTER


def test_httpx_404_is_not_retryable() -> None:
    error = errors.from_httpx(status_error(404))
    assert isinstance(error, errors.HttpStatusError)
    assert not error.is_retryable()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("timed out"), errors.HttpTimeout),
        (httpx.ReadTimeout("timed out"), errors.HttpTimeout),
        (httpx.ConnectError("[Errno 111] Connection refused"), errors.HttpConnectError),
        (httpx.ReadError("reset by peer"), errors.HttpConnectError),
        (httpx.RemoteProtocolError("Server disconnected"), errors.HttpConnectError),
        (httpx.DecodingError("bad gzip"), errors.HttpError),
        (httpx.TooManyRedirects("loop"), errors.HttpError),
        (httpx.InvalidURL("no scheme"), errors.UnexpectedError),
    ],
    ids=lambda value: type(value).__name__,
)
def test_httpx_transport_errors(exc: Exception, expected: type[errors.InfraError]) -> None:
    if isinstance(exc, httpx.RequestError):
        exc.request = httpx.Request("GET", "https://api.internal/health")
    error = errors.from_httpx(exc)
    assert type(error) is expected
    if isinstance(exc, httpx.RequestError):
        assert isinstance(error, errors.HttpError)
        assert (error.url, error.method) == ("https://api.internal/health", "GET")
    assert error.is_retryable() is (expected in {errors.HttpTimeout, errors.HttpConnectError})


def test_httpx_error_without_a_request_still_maps() -> None:
    error = errors.from_httpx(httpx.ConnectError("refused"))
    assert isinstance(error, errors.HttpConnectError)
    assert error.url is None


# -- nats --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected", "retryable"),
    [
        (nats.errors.TimeoutError(), errors.MessageQueueTimeout, True),
        (nats.errors.FlushTimeoutError(), errors.MessageQueueTimeout, True),
        (nats.js.errors.FetchTimeoutError(), errors.MessageQueueTimeout, True),
        (nats.errors.NoServersError(), errors.MessageQueueError, True),
        (nats.errors.ConnectionClosedError(), errors.MessageQueueError, True),
        (nats.errors.UnexpectedEOF(), errors.MessageQueueError, True),
        (nats.errors.NoRespondersError(), errors.MessageQueueError, True),
        (nats.js.errors.ServiceUnavailableError(), errors.MessageQueueError, True),
        (nats.js.errors.APIError(code=500, description="raft"), errors.MessageQueueError, True),
        (nats.js.errors.NoStreamResponseError(), errors.MessageQueueError, True),
        (
            nats.js.errors.BadRequestError(code=400, err_code=10058, description="in use"),
            errors.MessageQueueRejected,
            False,
        ),
        (nats.js.errors.KeyWrongLastSequenceError("wrong"), errors.MessageQueueRejected, False),
        (nats.js.errors.KeyNotFoundError(), errors.MessageQueueNotFound, False),
        (nats.errors.MaxPayloadError(), errors.MessageQueueRejected, False),
        (nats.errors.BadSubjectError(), errors.MessageQueueRejected, False),
        (nats.errors.AuthorizationError(), errors.InvalidCredentials, False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_nats_errors(exc: Exception, expected: type[errors.InfraError], retryable: bool) -> None:
    error = errors.from_nats(exc)
    assert type(error) is expected
    assert error.is_retryable() is retryable
    assert error.cause == f"{type(exc).__module__}.{type(exc).__qualname__}"


def test_nats_connection_errors_say_connect() -> None:
    error = errors.from_nats(nats.errors.NoServersError())
    assert isinstance(error, errors.MessageQueueError)
    assert error.operation is errors.MqOperation.CONNECT
    assert error.message == "nats: no servers available for connection"


def test_jetstream_stream_not_found_keeps_stream_and_codes() -> None:
    exc = nats.js.errors.NotFoundError(
        code=404, err_code=10059, description="stream not found", stream="AUDIT"
    )
    error = errors.from_nats(exc)
    assert isinstance(error, errors.MessageQueueNotFound)
    assert (error.destination, error.status_code, error.error_code) == ("AUDIT", 404, 10059)
    assert str(error) == "Message queue request error on 'AUDIT': stream not found"
    assert error.to_problem().status == 404


# -- hvac (OpenBao) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [
        (400, errors.ExternalServiceError, False),
        (401, errors.InvalidCredentials, False),
        (403, errors.InsufficientPermissions, False),
        (404, errors.NotFound, False),
        (429, errors.RateLimited, True),
        (500, errors.ExternalServiceError, True),
        (501, errors.ExternalServiceError, True),
        (502, errors.ExternalServiceError, True),
        (503, errors.ExternalServiceError, True),
        (418, errors.ExternalServiceError, False),  # hvac's UnexpectedError
    ],
)
def test_hvac_errors_by_status(
    status: int, expected: type[errors.InfraError], retryable: bool
) -> None:
    exc = hvac.exceptions.VaultError.from_status(
        status,
        errors=["1 error occurred:\n\t* permission denied\n\n"],
        method="get",
        url="http://bao.internal:8200/v1/secret/data/llm/openai",
    )
    error = errors.from_hvac(exc)
    assert type(error) is expected
    assert error.is_retryable() is retryable
    assert "1 error occurred: * permission denied" in error.message
    if isinstance(error, errors.ExternalServiceError):
        assert error.service == "openbao"
        assert error.operation == "GET /v1/secret/data/llm/openai"  # hvac says "get"
        assert error.status_code == (None if status == 418 else status)
    else:
        assert error.message.startswith("openbao: ")


def test_hvac_rate_limit_waits_the_default() -> None:
    error = errors.from_hvac(hvac.exceptions.RateLimitExceeded("slow down"))
    assert error.retry_after() == errors.RATE_LIMITED_RETRY_AFTER


# -- qdrant ------------------------------------------------------------------------------------


def qdrant_response(
    status: int, error_text: str, headers: dict[str, str] | None = None
) -> UnexpectedResponse:
    body = json.dumps({"status": {"error": error_text}, "time": 0.001}).encode()
    return UnexpectedResponse(
        status, httpx.codes.get_reason_phrase(status), body, httpx.Headers(headers)
    )


def test_qdrant_missing_collection() -> None:
    error = errors.from_qdrant(qdrant_response(404, "Not found: Collection `docs` doesn't exist!"))
    assert isinstance(error, errors.CollectionNotFound)
    assert error.collection == "docs"
    assert error.message == "Not found: Collection `docs` doesn't exist!"


def test_qdrant_other_404_is_a_plain_not_found() -> None:
    error = errors.from_qdrant(qdrant_response(404, "Not found: No point with id 7 found"))
    assert type(error) is errors.NotFound
    assert (error.service, error.status_code) == ("qdrant", 404)


def test_qdrant_dimension_mismatch() -> None:
    text = "Wrong input: Vector dimension error: expected dim: 4, got 3"
    error = errors.from_qdrant(qdrant_response(400, text))
    assert isinstance(error, errors.DimensionMismatch)
    assert (error.expected, error.actual, error.dimensions) == (4, 3, 4)


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (429, {"retry-after": "3"}, errors.RateLimited, 3.0),
        (503, {}, errors.ExternalServiceError, None),
        (500, {}, errors.ExternalServiceError, None),
        (401, {}, errors.InvalidCredentials, None),
        (403, {}, errors.InsufficientPermissions, None),
        (409, {}, errors.Conflict, None),
    ],
)
def test_qdrant_dependency_statuses(
    status: int,
    headers: dict[str, str],
    expected: type[errors.InfraError],
    retry_after: float | None,
) -> None:
    error = errors.from_qdrant(qdrant_response(status, "nope", headers))
    assert type(error) is expected
    assert error.is_retryable() is (status >= 500 or status == 429)
    assert error.retry_after() == retry_after


def test_qdrant_bad_input_is_a_vector_error() -> None:
    error = errors.from_qdrant(qdrant_response(400, "Wrong input: Not existing vector name"))
    assert type(error) is errors.VectorError
    assert not error.is_retryable()


def test_qdrant_non_json_body_is_quoted_shortened() -> None:
    exc = UnexpectedResponse(502, "Bad Gateway", b"<html>" + b"x" * 1000, httpx.Headers())
    error = errors.from_qdrant(exc)
    assert isinstance(error, errors.ExternalServiceError)
    assert error.message.startswith("<html>")
    assert len(error.message) == 500


def test_qdrant_unreachable_is_retryable() -> None:
    error = errors.from_qdrant(ResponseHandlingException(httpx.ConnectError("refused")))
    assert isinstance(error, errors.VectorUnavailable)
    assert error.is_retryable()
    assert error.message == "refused"


@pytest.fixture(scope="module")
def local_qdrant() -> Iterator[QdrantClient]:
    client = QdrantClient(location=":memory:")
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    yield client
    client.close()


def test_qdrant_local_mode_missing_collection(local_qdrant: QdrantClient) -> None:
    with pytest.raises(errors.CollectionNotFound) as caught, errors.translate(errors.from_qdrant):
        local_qdrant.get_collection("missing")
    assert caught.value.collection == "missing"


def test_qdrant_local_mode_dimension_mismatch(local_qdrant: QdrantClient) -> None:
    point = models.PointStruct(id=1, vector=[0.1, 0.2, 0.3])
    with pytest.raises(errors.DimensionMismatch) as caught, errors.translate(errors.from_qdrant):
        local_qdrant.upsert("docs", points=[point])
    assert (caught.value.expected, caught.value.actual) == (4, 3)


def test_qdrant_local_mode_other_value_errors_are_vector_errors() -> None:
    error = errors.from_qdrant(ValueError("limit value 0 is invalid. Must be 1 or larger."))
    assert type(error) is errors.VectorError


# -- kubernetes --------------------------------------------------------------------------------


def kube_status(code: int, reason: str, message: str, **details: object) -> str:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": code,
        }
    )


def api_error(status: int, body: str, headers: dict[str, str] | None = None) -> lightkube.ApiError:
    """What lightkube (under llm_infra.kube) raises: ApiError over the API server's answer."""
    request = httpx2.Request("GET", "https://k8s.example:6443/api/v1/namespaces/team/configmaps")
    response = httpx2.Response(status, content=body.encode(), headers=headers, request=request)
    return lightkube.ApiError(request=request, response=response)


@pytest.mark.parametrize(
    ("status", "reason", "expected", "retryable"),
    [
        (404, "NotFound", errors.NotFound, False),
        (409, "AlreadyExists", errors.Conflict, False),
        (401, "Unauthorized", errors.InvalidCredentials, False),
        (403, "Forbidden", errors.InsufficientPermissions, False),
        (500, "InternalError", errors.ExternalServiceError, True),
        (503, "ServiceUnavailable", errors.ExternalServiceError, True),
        (410, "Expired", errors.ExternalServiceError, False),
    ],
)
def test_kubernetes_errors_by_status(
    status: int, reason: str, expected: type[errors.InfraError], retryable: bool
) -> None:
    message = f'vectorcollections.llm.example.io "docs" {reason}'
    error = errors.from_kubernetes(api_error(status, kube_status(status, reason, message)))
    assert type(error) is expected
    assert error.is_retryable() is retryable
    assert message in error.message
    if isinstance(error, errors.ExternalServiceError):
        assert (error.service, error.status_code) == ("kubernetes", status)


def test_kubernetes_429_honours_retry_after_in_any_case() -> None:
    body = kube_status(429, "TooManyRequests", "too many requests")
    error = errors.from_kubernetes(api_error(429, body, {"RETRY-AFTER": "2"}))
    assert isinstance(error, errors.RateLimited)
    assert error.retry_after() == 2.0


def test_kubernetes_422_lists_every_cause() -> None:
    causes = [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 0: spec.dimensions in body should be >= 1",
            "field": "spec.dimensions",
        },
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.distance"},
    ]
    body = kube_status(422, "Invalid", 'VectorCollection "docs" is invalid', causes=causes)
    error = errors.from_kubernetes(api_error(422, body))
    assert isinstance(error, errors.ValidationError)
    assert error.field == "spec.dimensions"
    problem = error.to_problem().model_dump(exclude_none=True, by_alias=True)
    assert problem["errors"] == [
        {"field": c["field"], "message": c["message"], "reason": c["reason"]} for c in causes
    ]
    assert problem["field"] == "spec.dimensions"


def test_kubernetes_status_without_a_message_uses_the_reason() -> None:
    error = errors.from_kubernetes_status({"code": 502, "reason": "BadGateway"})
    assert isinstance(error, errors.ExternalServiceError)
    assert (error.message, error.is_retryable()) == ("BadGateway", True)


def test_kubernetes_transport_and_config_errors() -> None:
    request = httpx2.Request("GET", "https://k8s.example:6443/version")
    refused = errors.from_kubernetes(httpx2.ConnectError("refused", request=request))
    assert isinstance(refused, errors.HttpConnectError)
    assert refused.is_retryable()
    slow = errors.from_kubernetes(httpx2.ReadTimeout("timed out", request=request))
    assert isinstance(slow, errors.HttpTimeout)
    config = errors.from_kubernetes(lightkube.ConfigError("Configuration file x not found"))
    assert isinstance(config, errors.ConfigError)


# -- from_exception: dispatch and builtins -------------------------------------------------


def test_from_exception_dispatches_on_the_library() -> None:
    assert isinstance(errors.from_exception(status_error(502)), errors.HttpStatusError)
    assert isinstance(errors.from_exception(nats.errors.TimeoutError()), errors.MessageQueueTimeout)
    assert isinstance(errors.from_exception(hvac.exceptions.InvalidPath()), errors.NotFound)
    assert isinstance(
        errors.from_exception(qdrant_response(404, "Collection `a` doesn't exist!")),
        errors.CollectionNotFound,
    )
    conflict = api_error(409, kube_status(409, "AlreadyExists", "exists"))
    assert isinstance(errors.from_exception(conflict), errors.Conflict)


def test_a_mapper_hands_other_libraries_on() -> None:
    assert isinstance(errors.from_hvac(httpx.ConnectError("refused")), errors.HttpConnectError)
    assert isinstance(errors.from_qdrant(nats.errors.TimeoutError()), errors.MessageQueueTimeout)
    assert isinstance(errors.from_nats(TimeoutError()), errors.IoTimeout)


def test_an_infra_error_is_returned_as_is() -> None:
    error = errors.TokenExpired()
    assert errors.from_exception(error) is error


@pytest.mark.parametrize(
    ("exc", "expected", "operation"),
    [
        (
            FileNotFoundError(2, "No such file or directory", "/etc/llm/a.yaml"),
            errors.IoError,
            errors.IoOperation.READ,
        ),
        (PermissionError(13, "Permission denied", "/etc/llm/a.yaml"), errors.IoError, "read"),
        (FileExistsError(17, "File exists", "/etc/llm/a.yaml"), errors.IoError, "create"),
    ],
)
def test_os_errors_keep_the_path(
    exc: OSError, expected: type[errors.InfraError], operation: str
) -> None:
    error = errors.from_exception(exc)
    assert type(error) is expected
    assert isinstance(error, errors.IoError)
    assert (error.path, error.operation, error.message) == (
        "/etc/llm/a.yaml",
        operation,
        exc.strerror,
    )
    assert error.cause == type(exc).__name__


def test_timeout_error_is_a_retryable_io_timeout() -> None:
    error = errors.from_exception(TimeoutError())
    assert isinstance(error, errors.IoTimeout)
    assert error.is_retryable()


def test_json_decode_error_has_a_location() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads('{"a": 1,\n  oops}')
    error = errors.from_exception(caught.value)
    assert isinstance(error, errors.SerializationError)
    assert error.data_format is errors.SerializationFormat.JSON
    assert error.location == "line 2 column 3"
    assert str(error) == (
        "JSON serialization error at line 2 column 3: "
        "Expecting property name enclosed in double quotes"
    )


class _Settings(pydantic.BaseModel):
    class Qdrant(pydantic.BaseModel):
        api_key: int
        port: int

    qdrant: Qdrant
    replicas: list[int]


def test_pydantic_validation_error_lists_fields_but_never_the_input() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        _Settings.model_validate(
            {"qdrant": {"api_key": "sk-live-0123456789", "port": "x"}, "replicas": [1, "two"]}
        )
    error = errors.from_exception(caught.value)
    assert isinstance(error, errors.ValidationError)
    assert error.field == "qdrant.api_key"
    assert [(issue.field, issue.reason) for issue in error.errors] == [
        ("qdrant.api_key", "int_parsing"),
        ("qdrant.port", "int_parsing"),
        ("replicas.1", "int_parsing"),
    ]
    assert error.message.endswith("(and 2 more)")
    dumped = json.dumps(error.to_problem().model_dump(exclude_none=True, by_alias=True))
    for shown in (dumped, str(error), repr(error)):
        assert "sk-live-0123456789" not in shown
        assert "two" not in shown


def test_anything_else_is_unexpected_with_its_type() -> None:
    error = errors.from_exception(RuntimeError("event loop is closed"))
    assert type(error) is errors.UnexpectedError
    assert (error.code, error.message, error.cause) == (
        "infra.unexpected",
        "event loop is closed",
        "RuntimeError",
    )
    assert errors.from_exception(KeyError()).message == "KeyError"


# --- transports: requests (hvac), urllib3 (qdrant-client), aiohttp


def _requests_errors() -> list[tuple[BaseException, type[errors.InfraError]]]:
    import requests

    prepared = requests.Request("GET", "https://vault.internal:8200/v1/sys/health").prepare()
    return [
        (requests.exceptions.ConnectTimeout("timed out", request=prepared), errors.HttpTimeout),
        (requests.exceptions.ConnectionError("refused", request=prepared), errors.HttpConnectError),
        (requests.exceptions.TooManyRedirects("loop", request=prepared), errors.HttpError),
    ]


def _urllib3_errors() -> list[tuple[BaseException, type[errors.InfraError]]]:
    from urllib3 import exceptions as u3

    refused = u3.NewConnectionError(None, "Failed to establish a new connection: refused")  # type: ignore[arg-type]
    timeout = u3.ReadTimeoutError(None, "/api/v1/namespaces", "Read timed out")  # type: ignore[arg-type]
    return [
        (u3.MaxRetryError(None, "/api/v1/namespaces", reason=refused), errors.HttpConnectError),  # type: ignore[arg-type]
        (u3.MaxRetryError(None, "/api/v1/namespaces", reason=timeout), errors.HttpTimeout),  # type: ignore[arg-type]
        (u3.ProtocolError("Connection aborted."), errors.HttpConnectError),
    ]


def _aiohttp_errors() -> list[tuple[BaseException, type[errors.InfraError]]]:
    import aiohttp

    return [
        (aiohttp.ServerDisconnectedError(), errors.HttpConnectError),
        (aiohttp.ServerTimeoutError("read timeout"), errors.HttpTimeout),
        (aiohttp.ClientPayloadError("truncated"), errors.HttpError),
    ]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [*_requests_errors(), *_urllib3_errors(), *_aiohttp_errors()],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value.__name__,
)
def test_transport_errors(exc: BaseException, expected: type[errors.InfraError]) -> None:
    error = errors.from_exception(exc)
    assert type(error) is expected
    assert error.is_retryable() is (expected in (errors.HttpTimeout, errors.HttpConnectError))
    assert error.cause is not None
    assert error.cause.endswith(type(exc).__name__)


def test_requests_error_carries_the_request() -> None:
    import requests

    prepared = requests.Request("POST", "https://u:pw-123@vault.internal/v1/x?token=t0k").prepare()
    error = errors.from_transport(requests.exceptions.ConnectionError("refused", request=prepared))
    assert isinstance(error, errors.HttpConnectError)
    assert error.method == "POST"
    assert error.url is not None
    assert "vault.internal/v1/x" in error.url
    assert "pw-123" not in repr(error)
    assert "t0k" not in repr(error)


def test_aiohttp_status_error_keeps_status_and_retry_after() -> None:
    import aiohttp
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    url = URL("https://127.0.0.1:6443/api/v1/namespaces")
    headers = CIMultiDictProxy(CIMultiDict({"Retry-After": "7"}))
    info = aiohttp.RequestInfo(url, "GET", headers, url)
    exc = aiohttp.ClientResponseError(
        info, (), status=503, message="Service Unavailable", headers=headers
    )
    error = errors.from_exception(exc)
    assert isinstance(error, errors.HttpStatusError)
    assert (error.status_code, error.method, error.retry_after()) == (503, "GET", 7.0)


def test_from_transport_hands_other_libraries_on() -> None:
    assert isinstance(errors.from_transport(TimeoutError("slow disk")), errors.IoTimeout)
