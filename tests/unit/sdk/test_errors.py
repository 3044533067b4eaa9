"""The error tree: codes, messages, retry policy, problem documents, spans, the catalogue."""

from __future__ import annotations

import asyncio
import inspect
import json
import pickle
import re
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from llm_infra import errors
from llm_infra.errors import _base, _catalogue, _map, _problem, _redact, _tree

DOCS_ERRORS_MD = Path(__file__).parents[3] / "docs" / "errors.md"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def recorded(
    spans: tuple[TracerProvider, InMemorySpanExporter], error: errors.InfraError
) -> ReadableSpan:
    provider, exporter = spans
    with provider.get_tracer(__name__).start_as_current_span("call") as span:
        error.record_to_span(span)
    (finished,) = exporter.get_finished_spans()
    return finished


# -- the tree --------------------------------------------------------------------------------


def test_codes_are_unique_well_formed_and_prefixed_by_their_category() -> None:
    classes = errors.error_classes()
    codes = [error_class.code for error_class in classes]
    assert len(codes) == len(set(codes)) == len({id(c) for c in classes})
    for error_class in classes:
        assert re.fullmatch(r"[a-z_]+\.[a-z_]+", error_class.code), error_class
        prefix = error_class.code.split(".")[0]
        if error_class.category is None:
            # The one exception: the root and UnexpectedError belong to no category.
            assert prefix == "infra", error_class
        else:
            assert prefix == error_class.category.value, error_class


def test_every_error_class_of_the_module_is_registered() -> None:
    public_classes = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.InfraError)
    }
    assert public_classes == set(errors.error_classes())
    assert len(public_classes) >= 35


def test_each_category_has_its_base_class() -> None:
    assert [c.value for c in errors.Category] == [
        "config",
        "http",
        "vector",
        "auth",
        "crypto",
        "io",
        "serialization",
        "validation",
        "external",
        "message_queue",
        "schema",
    ]
    for category in errors.Category:
        base = errors.from_problem({"code": f"{category}.error"}).__class__
        assert base.category is category
        assert base.__bases__ == (errors.InfraError,)
    roots = {c for c in errors.error_classes() if c.__bases__ == (errors.InfraError,)}
    assert len(roots) == len(errors.Category) + 1  # and UnexpectedError


def test_a_duplicate_or_missing_code_is_refused_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"'vector\.error' of .*Again is VectorError's"):

        class Again(errors.VectorError):
            code = "vector.error"

    with pytest.raises(TypeError, match="must set its own code"):

        class Inherits(errors.VectorError):
            pass

    with pytest.raises(TypeError, match="must set its own code"):

        class Malformed(errors.VectorError):
            code = "Vector-Oops"

    assert errors.from_problem({"code": "vector.error"}).__class__ is errors.VectorError


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for module in (_base, _tree, _map, _problem, _redact, _catalogue)
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }
    assert public <= set(errors.__all__), public - set(errors.__all__)
    assert all(hasattr(errors, name) for name in errors.__all__)


@pytest.mark.parametrize("module", [errors, _base, _tree, _map, _problem, _redact, _catalogue])
def test_importing_the_package_loads_no_client_library(module: types.ModuleType) -> None:
    # Top-level imports only: the mappers import their library once they hold its exception.
    source = inspect.getsource(module).split('"""', 2)[2]  # past the module docstring
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    for library in ("httpx", "nats", "hvac", "qdrant_client", "kubernetes", "opentelemetry"):
        assert not any(f" {library}" in line for line in top_level), (library, top_level)


# -- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            errors.HttpStatusError("upstream down", status_code=503, url="https://host/x"),
            "HTTP 503 error for https://host/x: upstream down",
        ),
        (errors.HttpError("boom"), "HTTP error: boom"),
        (
            errors.HttpTimeout(url="https://host/x"),
            "HTTP error for https://host/x: Upstream HTTP request timed out",
        ),
        (
            errors.ConfigMissing("not set", key="qdrant.url"),
            "Configuration error for 'qdrant.url': not set",
        ),
        (errors.ConfigError("bad"), "Configuration error: bad"),
        (
            errors.VectorError("slow", operation=errors.VectorOperation.SEARCH),
            "Vector search error: slow",
        ),
        (
            errors.CollectionNotFound(collection="docs"),
            "Vector error in collection 'docs': Vector collection not found",
        ),
        (
            errors.DimensionMismatch(expected=4, actual=3),
            "Vector error: expected 4 dimensions, got 3",
        ),
        (
            errors.InvalidToken("signature mismatch"),
            "Authentication error (invalid_token): signature mismatch",
        ),
        (errors.DecryptionFailed("tag mismatch"), "Crypto decrypt error: tag mismatch"),
        (
            errors.IoError("No such file", operation=errors.IoOperation.READ, path="/etc/x"),
            "I/O read error for /etc/x: No such file",
        ),
        (
            errors.SerializationError(
                "Expecting value",
                data_format=errors.SerializationFormat.JSON,
                location="line 1 column 5",
            ),
            "JSON serialization error at line 1 column 5: Expecting value",
        ),
        (
            errors.ValidationError("must be >= 1", field="spec.dimensions"),
            "Validation error for 'spec.dimensions': must be >= 1",
        ),
        (
            errors.ExternalServiceError(
                "sealed", service="openbao", operation="GET /v1/sys/health", status_code=503
            ),
            "External service 'openbao' error during GET /v1/sys/health (HTTP 503): sealed",
        ),
        (
            errors.MessageQueueTimeout(
                "no ack", destination="audit.events", operation=errors.MqOperation.PUBLISH
            ),
            "Message queue publish error on 'audit.events': no ack",
        ),
        (
            errors.SchemaViolation("required", schema_id="config/v1", path="/llm/model"),
            "Schema error in 'config/v1' at /llm/model: required",
        ),
        (errors.UnexpectedError("boom"), "Unexpected error: boom"),
        (errors.InfraError("boom"), "Infrastructure error: boom"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, errors.InfraError) else "",
)
def test_str_is_a_readable_one_liner(error: errors.InfraError, expected: str) -> None:
    assert str(error) == expected
    assert error.args == (error.message,)


def test_the_message_is_one_line() -> None:
    error = errors.ExternalServiceError("1 error occurred:\n\t* permission denied\n\n")
    assert error.message == "1 error occurred: * permission denied"
    assert errors.NotFound("").message == "Not found"  # no message: the title


def test_repr_names_the_class_and_the_context_set() -> None:
    error = errors.ConfigMissing("not set", key="qdrant.url", cause="KeyError")
    assert repr(error) == "ConfigMissing('not set', key='qdrant.url', cause='KeyError')"


def test_an_error_survives_pickling() -> None:
    error = errors.DimensionMismatch(expected=4, actual=3, collection="docs", retry_after=1.0)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301  our own bytes
    assert (type(copy), copy.details(), str(copy)) == (type(error), error.details(), str(error))


# -- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retryable", "retry_after"),
    [
        (errors.HttpStatusError(status_code=503), True, None),
        (errors.HttpStatusError(status_code=500), True, None),
        (errors.HttpStatusError(status_code=429), True, errors.HTTP_429_RETRY_AFTER),
        (errors.HttpStatusError(status_code=429, retry_after=7), True, 7.0),
        (errors.HttpStatusError(status_code=404), False, None),
        (errors.HttpStatusError(status_code=404, retry_after=5), False, None),
        (errors.HttpError(), False, None),
        (errors.HttpTimeout(), True, None),
        (errors.HttpConnectError(), True, None),
        (errors.ExternalServiceError(service="bao"), False, None),
        (errors.ExternalServiceError(service="bao", retry_after=12), True, 12.0),
        (errors.ExternalServiceError(status_code=502), True, None),
        (errors.ExternalServiceError(status_code=429), True, 30.0),
        (errors.ExternalServiceError(status_code=400), False, None),
        (errors.NotFound(status_code=404), False, None),
        (errors.Conflict(status_code=409), False, None),
        (errors.RateLimited(), True, errors.RATE_LIMITED_RETRY_AFTER),
        (errors.RateLimited(retry_after=2.5), True, 2.5),
        (errors.AuthError(kind=errors.AuthErrorKind.RATE_LIMITED), True, 60.0),
        (errors.InvalidCredentials(), False, None),
        (errors.InsufficientPermissions(), False, None),
        (errors.IoTimeout(), True, None),
        (errors.IoError(), False, None),
        (errors.MessageQueueError(), True, None),
        (errors.MessageQueueTimeout(), True, None),
        (errors.MessageQueueRejected(status_code=400), False, None),
        (errors.MessageQueueNotFound(), False, None),
        (errors.VectorUnavailable(), True, None),
        (errors.DimensionMismatch(expected=4, actual=3), False, None),
        (errors.ValidationError(), False, None),
        (errors.DecryptionFailed(), False, None),
        (errors.UnexpectedError(), False, None),
    ],
    ids=repr,
)
def test_retry_policy(error: errors.InfraError, retryable: bool, retry_after: float | None) -> None:
    assert error.is_retryable() is retryable
    assert error.retry_after() == retry_after
    assert error.to_problem().retryable is retryable


def test_the_catalogue_flags_what_is_retryable_by_default() -> None:
    by_code = {entry.code: entry for entry in errors.catalogue()}
    for code, entry in by_code.items():
        assert entry.retryable is entry.error_class().is_retryable(), code
    assert [entry.code for entry in errors.catalogue()] == sorted(by_code)


# -- problem documents ---------------------------------------------------------------------


def test_problem_document_carries_rfc9457_members_and_context() -> None:
    error = errors.DimensionMismatch(
        expected=4, actual=3, collection="docs", operation=errors.VectorOperation.INSERT
    )
    body = error.to_problem(instance="/v1/collections/docs/points").model_dump(
        exclude_none=True, by_alias=True
    )
    assert body == {
        "type": "tag:llmdevops.io,2026:problem:vector.dimension_mismatch",
        "title": "Vector dimension mismatch",
        "status": 422,
        "detail": "expected 4 dimensions, got 3",
        "instance": "/v1/collections/docs/points",
        "code": "vector.dimension_mismatch",
        "category": "vector",
        "retryable": False,
        "expected": 4,
        "actual": 3,
        "operation": "insert",
        "collection": "docs",
    }
    assert json.loads(json.dumps(body)) == body


def test_problem_document_of_a_rate_limit_says_when_to_come_back() -> None:
    body = errors.RateLimited("slow down", identity="svc-a", retry_after=3).to_problem()
    assert body.status == 429
    assert body.model_dump(exclude_none=True, by_alias=True)["retry_after"] == 3.0
    assert body.model_extra == {"kind": "rate_limited", "identity": "svc-a"}


def test_validation_problem_lists_every_field() -> None:
    issues = [
        errors.FieldIssue(field="spec.dimensions", message="must be >= 1", reason="too_small"),
        errors.FieldIssue(field="spec.name", message="required"),
    ]
    error = errors.ValidationError("2 invalid fields", field="spec.dimensions", errors=issues)
    body = error.to_problem().model_dump(exclude_none=True, by_alias=True)
    assert body["errors"] == [
        {"field": "spec.dimensions", "message": "must be >= 1", "reason": "too_small"},
        {"field": "spec.name", "message": "required"},
    ]
    assert "errors" not in errors.ValidationError("x").to_problem().model_dump(exclude_none=True)
    rebuilt = errors.from_problem(body)
    assert isinstance(rebuilt, errors.ValidationError)
    assert rebuilt.errors == tuple(issues)


@pytest.mark.parametrize("error_class", errors.error_classes(), ids=lambda c: c.code)
def test_every_class_round_trips_through_its_problem_document(
    error_class: type[errors.InfraError],
) -> None:
    error = error_class("it broke", cause="SomeLibraryError", retry_after=4)
    body = json.loads(json.dumps(error.to_problem().model_dump(exclude_none=True, by_alias=True)))
    assert body["type"] == errors.problem_type(error_class.code)
    assert body["status"] == error_class.status
    rebuilt = errors.from_problem(body)
    assert type(rebuilt) is error_class
    assert rebuilt.message == "it broke"
    assert rebuilt.details() == error.details()
    assert rebuilt.retry_after() == error.retry_after()


def test_rich_context_round_trips_with_its_types() -> None:
    error = errors.MessageQueueRejected(
        "stream name already in use",
        destination="AUDIT",
        operation=errors.MqOperation.REQUEST,
        status_code=400,
        error_code=10058,
    )
    rebuilt = errors.from_problem(error.to_problem().model_dump(by_alias=True))
    assert isinstance(rebuilt, errors.MessageQueueRejected)
    assert rebuilt.operation is errors.MqOperation.REQUEST
    assert (rebuilt.destination, rebuilt.status_code, rebuilt.error_code) == ("AUDIT", 400, 10058)
    assert str(rebuilt) == str(error)


def test_from_problem_falls_back_to_the_category_then_the_root() -> None:
    newer = errors.from_problem(
        {
            "code": "vector.quota_exceeded",
            "category": "vector",
            "detail": "too many",
            "collection": "docs",
        }
    )
    assert type(newer) is errors.VectorError
    assert (newer.message, newer.collection) == ("too many", "docs")
    assert type(errors.from_problem({"type": "about:blank", "status": 500})) is errors.InfraError
    assert type(errors.from_problem({"code": "x.y", "category": "weather"})) is errors.InfraError


def test_from_problem_drops_members_that_do_not_fit() -> None:
    rebuilt = errors.from_problem(
        {"code": "vector.dimension_mismatch", "expected": "four", "actual": 3, "operation": "fly"}
    )
    assert isinstance(rebuilt, errors.DimensionMismatch)
    assert (rebuilt.expected, rebuilt.actual, rebuilt.operation) == (None, 3, None)
    invalid = errors.from_problem({"code": "validation.error", "errors": [{"field": 1}]})
    assert isinstance(invalid, errors.ValidationError)
    assert invalid.errors == ()


# -- spans -------------------------------------------------------------------------------------


def test_record_to_span_sets_status_semconv_attributes_and_the_exception_event(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    error = errors.HttpStatusError(
        "upstream down", status_code=503, url="https://host/x", method="POST"
    )
    span = recorded(spans, error)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "HTTP 503 error for https://host/x: upstream down"
    assert dict(span.attributes or {}) == {
        "error.type": "http.status_error",
        "llm_infra.error.category": "http",
        "llm_infra.error.retryable": True,
        "http.response.status_code": 503,
        "url.full": "https://host/x",
        "http.request.method": "POST",
    }
    (event,) = span.events
    assert event.name == "exception"
    attributes = dict(event.attributes or {})
    assert attributes["exception.type"] == "llm_infra.errors._tree.HttpStatusError"
    assert attributes["exception.message"] == str(error)
    assert "HttpStatusError" in str(attributes["exception.stacktrace"])


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.TokenExpired(), {"llm_infra.auth.kind": "token_expired"}),
        (
            errors.NotFound(service="openbao", status_code=404),
            {"llm_infra.external.service": "openbao", "http.response.status_code": 404},
        ),
        (errors.ExternalServiceError(service="qdrant"), {"llm_infra.external.service": "qdrant"}),
        (
            errors.MessageQueueTimeout(destination="audit.events"),
            {"messaging.destination.name": "audit.events"},
        ),
        (errors.CollectionNotFound(collection="docs"), {"db.collection.name": "docs"}),
        (errors.VectorError(), {}),
        (errors.UnexpectedError(), {}),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, errors.InfraError) else "",
)
def test_record_to_span_adds_the_attributes_of_each_category(
    spans: tuple[TracerProvider, InMemorySpanExporter],
    error: errors.InfraError,
    expected: dict[str, object],
) -> None:
    attributes = dict(recorded(spans, error).attributes or {})
    common = {"error.type", "llm_infra.error.retryable", "llm_infra.error.category"}
    assert {k: v for k, v in attributes.items() if k not in common} == expected
    assert attributes["error.type"] == error.code
    assert ("llm_infra.error.category" in attributes) is (error.category is not None)


def test_the_recorded_stack_trace_leaves_the_mapped_exception_out(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    try:
        try:
            raise KeyError("db-password-hunter2")
        except KeyError as exc:  # chained implicitly: a caller forgot `from None`
            raise errors.ConfigMissing("not set", key="db.password", cause="KeyError") from exc
    except errors.ConfigMissing as error:
        span = recorded(spans, error)
    stacktrace = str(dict(span.events[0].attributes or {})["exception.stacktrace"])
    assert "ConfigMissing" in stacktrace
    assert "hunter2" not in stacktrace


# -- translate ---------------------------------------------------------------------------------


def test_translate_maps_an_exception_and_drops_the_original() -> None:
    with pytest.raises(errors.IoTimeout) as caught, errors.translate():
        raise TimeoutError("read timed out")
    assert caught.value.cause == "TimeoutError"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_translate_lets_infra_errors_through_unchanged() -> None:
    original = errors.NotFound("gone", service="openbao")
    with pytest.raises(errors.NotFound) as caught, errors.translate():
        raise original
    assert caught.value is original


@pytest.mark.parametrize(
    "stop", [KeyboardInterrupt(), SystemExit(3), GeneratorExit(), asyncio.CancelledError()]
)
def test_translate_lets_the_program_stop(stop: BaseException) -> None:
    with pytest.raises(type(stop)) as caught, errors.translate():
        raise stop
    assert caught.value is stop


async def test_translate_works_around_awaits() -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise FileNotFoundError(2, "No such file or directory", "/etc/llm/config.yaml")

    with pytest.raises(errors.IoError) as caught, errors.translate():
        await fail()
    assert caught.value.path == "/etc/llm/config.yaml"


def test_translate_takes_a_mapper() -> None:
    with pytest.raises(errors.CollectionNotFound), errors.translate(errors.from_qdrant):
        raise ValueError("Collection docs not found")


# -- the catalogue -------------------------------------------------------------------------


def test_docs_errors_md_is_fresh() -> None:
    rendered = errors.render_catalogue_markdown()
    assert rendered.splitlines()[0] == (
        "<!-- GENERATED by hack/generate.py from llm_infra.errors — do not edit -->"
    )
    assert DOCS_ERRORS_MD.read_text(encoding="utf-8") == rendered, (
        "docs/errors.md is stale: run `make generate`"
    )


def test_the_catalogue_lists_every_class_once() -> None:
    entries = errors.catalogue()
    assert [entry.error_class for entry in entries] == errors.error_classes()
    markdown = errors.render_catalogue_markdown()
    for entry in entries:
        assert f"| `{entry.code}` | `{entry.error_class.__name__}` |" in markdown
    dimension = next(e for e in entries if e.code == "vector.dimension_mismatch")
    assert dimension == (
        "vector.dimension_mismatch",
        errors.Category.VECTOR,
        422,
        False,
        "Vector dimension mismatch",
        errors.DimensionMismatch,
    )
