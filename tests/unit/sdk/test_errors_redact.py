"""No credential given to an error, directly or inside a library exception, ever comes out."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import httpx2
import hvac.exceptions
import lightkube
import nats.js.errors
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from qdrant_client.http.exceptions import UnexpectedResponse

from llm_infra import errors

SECRET_URL = "https://admin:s3cr3t-pass@vault.internal:8200/v1/secret?token=abc123&version=2"
BEARER = "Authorization: Bearer eyTok3n-Zz9.payload"
TEXT = f"calling {SECRET_URL} with {BEARER} and password=hunter2"
SECRETS = ("admin", "s3cr3t-pass", "abc123", "eyTok3n", "Zz9", "hunter2")


# -- redact ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SECRET_URL, "https://***@vault.internal:8200/v1/secret?token=***&version=2"),
        ("https://user:p@ss@host/a", "https://***@host/a"),
        ("nats://tok3n@nats:4222", "nats://***@nats:4222"),
        (
            "GET /o?X-Amz-Signature=f00&X-Amz-Credential=AKIA%2F1&X-Amz-Date=2024",
            "GET /o?X-Amz-Signature=***&X-Amz-Credential=***&X-Amz-Date=2024",
        ),
        (
            "/cb?code=0auth&state=s1&client_secret=cs&api_key=k&apikey=k2&sig=9&KEY=x",
            "/cb?code=***&state=s1&client_secret=***&api_key=***&apikey=***&sig=***&KEY=***",
        ),
        ("/t?access_token=t&passwd=p&Secret=s", "/t?access_token=***&passwd=***&Secret=***"),
        (BEARER, "Authorization: Bearer ***"),
        ("authorization=sk-raw-key", "authorization=***"),
        ("sent bearer abc.def-123 upstream", "sent bearer *** upstream"),
        ("Basic dXNlcjpwYXNz", "Basic ***"),
        (
            '{"token": "t0k", "password": "p w", "code": 404}',
            '{"token": "***", "password": "***", "code": 404}',
        ),
        ("{'client_secret': 'cs'}", "{'client_secret': '***'}"),
        ("password: hunter2 then", "password: *** then"),
        ("x-api-key: k3y", "x-api-key: ***"),
        ("token hvs.CAESIJlU3mZ2abcdefghijklmnopqrstuv used", "token hvs.*** used"),
        ("legacy s.abcdefghijklmnopqrstuvwx", "legacy s.***"),
        ("id eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl end", "id *** end"),
        ("-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----", "***"),
        # What must survive: hosts, paths, prose and words that merely contain a name.
        ("missing key: llm.api_key", "missing key: llm.api_key"),
        ("HTTP status code: 503", "HTTP status code: 503"),
        (
            "max_tokens=512 tokenizer=bpe status_code=503",
            "max_tokens=512 tokenizer=bpe status_code=503",
        ),
        ("basic checks passed for user@example.com", "basic checks passed for user@example.com"),
        (
            "https://host:8200/v1/sys/health?standbyok=true",
            "https://host:8200/v1/sys/health?standbyok=true",
        ),
        ("config.files.abcdefghijklmnopqrstuvwxyz", "config.files.abcdefghijklmnopqrstuvwxyz"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert errors.redact(text) == expected
    assert errors.redact(expected) == expected  # idempotent


# -- every way into an error and out of it -----------------------------------------------------


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    provider.shutdown()


def everything_shown(
    error: errors.InfraError, exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> str:
    """str, repr, message, args, problem JSON, span status, attributes and events of `error`."""
    provider, memory = exporter
    memory.clear()
    with provider.get_tracer(__name__).start_as_current_span("call") as span:
        try:
            raise error
        except errors.InfraError as raised:
            raised.record_to_span(span)
    (finished,) = memory.get_finished_spans()
    problem = error.to_problem(instance=SECRET_URL).model_dump(exclude_none=True, by_alias=True)
    return "\n".join(
        [
            str(error),
            repr(error),
            error.message,
            repr(error.args),
            repr(error.details()),
            json.dumps(problem),
            str(finished.status.description),
            json.dumps(dict(finished.attributes or {})),
            json.dumps([dict(event.attributes or {}) for event in finished.events]),
        ]
    )


def assert_no_secret(shown: str) -> None:
    leaked = [secret for secret in SECRETS if secret in shown]
    assert not leaked, f"{leaked} in:\n{shown}"


def string_fields(error_class: type[errors.InfraError]) -> list[str]:
    """The keyword-only str context fields of `error_class`, `cause` (every class's) included."""
    hints = typing.get_type_hints(error_class.__init__)
    parameters = inspect.signature(error_class.__init__).parameters.values()
    own = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]
    return [name for name in own if str in typing.get_args(hints[name])] + ["cause"]


@pytest.mark.parametrize("error_class", errors.error_classes(), ids=lambda c: c.code)
def test_no_class_lets_a_secret_through_any_string_field(
    error_class: type[errors.InfraError], exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    fields: dict[str, typing.Any] = dict.fromkeys(string_fields(error_class), TEXT)
    if error_class is errors.ValidationError:
        fields["errors"] = [errors.FieldIssue(field=TEXT, message=TEXT, reason=TEXT)]
    error = error_class(TEXT, **fields)
    assert_no_secret(everything_shown(error, exporter))
    assert "vault.internal:8200/v1/secret" in str(error.to_problem().detail)  # the rest stays


def httpx_status_error() -> BaseException:
    request = httpx.Request("GET", SECRET_URL, headers={"Authorization": "Bearer eyTok3n-Zz9"})
    response = httpx.Response(401, request=request, text=TEXT)
    with pytest.raises(httpx.HTTPStatusError, match="s3cr3t-pass") as caught:
        response.raise_for_status()  # httpx's own message quotes the URL
    return caught.value


def httpx_connect_error() -> BaseException:
    return httpx.ConnectError(TEXT, request=httpx.Request("GET", SECRET_URL))


def _kubernetes(status: int, body: dict[str, object]) -> BaseException:
    request = httpx2.Request("GET", SECRET_URL, headers={"Authorization": "Bearer eyTok3n-Zz9"})
    response = httpx2.Response(status, json=body, request=request)
    return lightkube.ApiError(request=request, response=response)


def kubernetes_error() -> BaseException:
    return _kubernetes(403, {"kind": "Status", "message": TEXT, "code": 403})


def kubernetes_invalid() -> BaseException:
    cause = {"field": "spec.token", "message": f"Invalid value: {TEXT}", "reason": "Invalid"}
    return _kubernetes(422, {"message": TEXT, "details": {"causes": [cause]}, "code": 422})


def hvac_error() -> BaseException:
    return hvac.exceptions.Forbidden(TEXT, method="GET", url=SECRET_URL, text=TEXT)


def nats_error() -> BaseException:
    return nats.js.errors.APIError(code=503, description=TEXT, stream="AUDIT")


def qdrant_error() -> BaseException:
    body = json.dumps({"status": {"error": TEXT}}).encode()
    return UnexpectedResponse(500, "Internal Server Error", body, httpx.Headers())


def unexpected_error() -> BaseException:
    return RuntimeError(TEXT)


def unexpected_os_error() -> BaseException:
    return OSError(5, TEXT, SECRET_URL)


@pytest.mark.parametrize(
    "make",
    [
        httpx_status_error,
        httpx_connect_error,
        kubernetes_error,
        kubernetes_invalid,
        hvac_error,
        nats_error,
        qdrant_error,
        unexpected_error,
        unexpected_os_error,
    ],
)
def test_no_mapping_lets_a_secret_through(
    make: Callable[[], BaseException], exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    original = make()
    error = errors.from_exception(original)
    assert error.__cause__ is None
    assert_no_secret(everything_shown(error, exporter))
    with pytest.raises(errors.InfraError) as caught, errors.translate():
        raise original
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__  # tracebacks and exporters skip the original


def test_from_problem_redacts_what_a_server_sent() -> None:
    error = errors.from_problem(
        {"code": "http.status_error", "detail": TEXT, "url": SECRET_URL, "status_code": 502}
    )
    assert isinstance(error, errors.HttpStatusError)
    assert_no_secret(f"{error} {error!r}")


def test_the_redacted_url_keeps_host_and_path() -> None:
    error = errors.HttpError("denied", url=SECRET_URL)
    assert error.url == "https://***@vault.internal:8200/v1/secret?token=***&version=2"


# -- help texts survive ------------------------------------------------------------------------


def _missing_credentials() -> errors.InfraError:
    from llm_infra.auth._identity import Credentials

    with pytest.raises(errors.MissingCredentials) as caught:
        Credentials.from_headers({})
    return caught.value


def _no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> errors.InfraError:
    from llm_infra.kube import _credentials

    monkeypatch.setattr(_credentials, "DEFAULT_KUBECONFIG", tmp_path / "absent")
    with pytest.raises(errors.ConfigError) as caught:
        _credentials._locate(None, {}, tmp_path / "no-service-account")
    return caught.value


@pytest.mark.parametrize(
    ("make", "advice"),
    [
        (lambda tmp, mp: _missing_credentials(), "send 'Authorization: Bearer <token>' or"),
        (_no_kubeconfig, "run in a pod with a service account, set KUBECONFIG"),
    ],
    ids=["missing-credentials", "no-kubeconfig"],
)
def test_a_help_text_naming_credentials_reaches_the_reader_unmasked(
    make: Callable[..., errors.InfraError],
    advice: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "credentials: <word>" is a key/value shape to the redactor: the word after the colon
    # (the advice) was masked, and a 401 told its reader "no credentials: *** ...".
    message = str(make(tmp_path, monkeypatch))
    assert advice in message
    assert "***" not in message
