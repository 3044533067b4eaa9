"""llm_infra.ids: the shared test vectors, generators, Snowflake clock handling, prefixed ids."""

from __future__ import annotations

import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pydantic
import pytest
from ulid import ULID

from llm_infra import errors, ids

VECTORS = json.loads(
    (Path(__file__).parents[3] / "sdk" / "testvectors" / "ids.json").read_text("utf-8")
)
EPOCH = ids.SNOWFLAKE_EPOCH_MS
NOW_MS = 1_704_067_200_000


class RequestId(ids.PrefixedId, prefix="req"):
    """A request id, declared as a class so mypy accepts it as an annotation."""


class Request(pydantic.BaseModel):
    id: RequestId


class FakeClock:
    """A Unix-nanosecond clock that moves only when told to, or when slept on."""

    def __init__(self, ms: int = NOW_MS) -> None:
        self.ns = ms * 1_000_000
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.ns

    def set_ms(self, ms: int) -> None:
        self.ns = ms * 1_000_000

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.ns += round(seconds * 1_000_000_000)


def _snowflake(clock: FakeClock, worker: int = 3, **kwargs: Any) -> ids.Snowflake:
    return ids.Snowflake(worker, clock=clock, sleep=clock.sleep, **kwargs)


def _comment(case: dict[str, Any]) -> str:
    return str(case.get("comment") or case.get("reason"))


def test_all_is_complete() -> None:
    public = {name for name in vars(ids) if not name.startswith("_")}
    assert set(ids.__all__) == public - {"annotations"}


def test_vectors_are_described() -> None:
    sections = set(VECTORS) - {"description"}
    assert sections == set(VECTORS["description"])


# -- vectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["snowflake"], ids=_comment)
def test_snowflake_vectors(case: dict[str, Any]) -> None:
    composed = ids.Snowflake.compose(
        case["timestamp_ms"], case["worker"], case["sequence"], epoch_ms=case["epoch_ms"]
    )
    assert str(composed) == case["id"]
    expected = (case["timestamp_ms"], case["worker"], case["sequence"])
    assert ids.Snowflake.parse(case["id"], epoch_ms=case["epoch_ms"]) == expected
    assert ids.Snowflake.parse(int(case["id"]), epoch_ms=case["epoch_ms"]) == expected


@pytest.mark.parametrize("case", VECTORS["snowflake_compose_invalid"], ids=_comment)
def test_snowflake_compose_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        ids.Snowflake.compose(
            case["timestamp_ms"], case["worker"], case["sequence"], epoch_ms=case["epoch_ms"]
        )
    assert caught.value.field == case["field"]


@pytest.mark.parametrize("case", VECTORS["snowflake_parse_invalid"], ids=_comment)
def test_snowflake_parse_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(errors.ValidationError, match="not a snowflake id"):
        ids.Snowflake.parse(case["id"])


@pytest.mark.parametrize("case", VECTORS["ulid"], ids=_comment)
def test_ulid_vectors(case: dict[str, Any]) -> None:
    assert ids.ulid_timestamp_ms(case["ulid"]) == case["timestamp_ms"]


@pytest.mark.parametrize("case", VECTORS["ulid_invalid"], ids=_comment)
def test_ulid_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(errors.ValidationError, match="not a canonical ULID"):
        ids.ulid_timestamp_ms(case["ulid"])


@pytest.mark.parametrize("case", VECTORS["uuid7"], ids=_comment)
def test_uuid7_vectors(case: dict[str, Any]) -> None:
    assert ids.uuid7_timestamp_ms(case["uuid"]) == case["timestamp_ms"]
    assert ids.uuid7_timestamp_ms(uuid.UUID(case["uuid"])) == case["timestamp_ms"]


@pytest.mark.parametrize("case", VECTORS["uuid7_invalid"], ids=_comment)
def test_uuid7_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        ids.uuid7_timestamp_ms(case["uuid"])
    assert caught.value.field == "uuid"


@pytest.mark.parametrize("case", VECTORS["prefixed_valid"], ids=_comment)
def test_prefixed_valid_vectors(case: dict[str, Any]) -> None:
    parsed = ids.id_type(case["prefix"]).parse(case["id"])
    assert str(parsed) == case["id"]
    assert parsed.timestamp_ms == case["timestamp_ms"]


@pytest.mark.parametrize("case", VECTORS["prefixed_invalid"], ids=_comment)
def test_prefixed_invalid_vectors(case: dict[str, Any]) -> None:
    kind = ids.id_type(case["prefix"])
    with pytest.raises(errors.ValidationError) as caught:
        kind.parse(case["id"])
    assert caught.value.field == case["prefix"]
    assert caught.value.expected is not None
    assert caught.value.expected.startswith(f"{case['prefix']}_")
    assert f"'{case['prefix']}_" in caught.value.message


@pytest.mark.parametrize("case", VECTORS["prefix_invalid"], ids=_comment)
def test_prefix_invalid_vectors(case: dict[str, Any]) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        ids.id_type(case["prefix"])
    assert caught.value.field == "prefix"


# -- UUIDv7, ULID, nanoid ---------------------------------------------------------------------


def test_uuid7_is_version_7_and_time_ordered() -> None:
    made = [ids.uuid7() for _ in range(10_000)]
    assert all(type(value) is uuid.UUID for value in made)
    assert {value.version for value in made} == {7}
    assert {value.variant for value in made} == {uuid.RFC_4122}
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    stamps = [ids.uuid7_timestamp_ms(value) for value in made]
    assert stamps == sorted(stamps)


def test_ulid_format_and_order() -> None:
    made = [ids.ulid() for _ in range(1_000)]
    for value in made:
        assert len(value) == 26
        assert set(value) <= set(ids.CROCKFORD_BASE32)
        assert str(ids.parse_ulid(value)) == value
    stamps = [ids.ulid_timestamp_ms(value) for value in made]
    assert stamps == sorted(stamps)
    assert len(set(made)) == len(made)


def test_nanoid_defaults() -> None:
    made = [ids.nanoid() for _ in range(1_000)]
    assert {len(value) for value in made} == {21}
    assert set("".join(made)) <= set(ids.NANOID_ALPHABET)
    assert len(set(made)) == len(made)


def test_nanoid_custom_alphabet_and_size() -> None:
    value = ids.nanoid(size=64, alphabet="ab")
    assert len(value) == 64
    assert set(value) <= {"a", "b"}
    assert len(ids.nanoid(1)) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": -3}, "size"),
        ({"size": ids.NANOID_MAX_SIZE + 1}, "size"),
        ({"size": True}, "size"),
        ({"size": 2.5}, "size"),
        ({"alphabet": ""}, "alphabet"),
        ({"alphabet": "a"}, "alphabet"),
        ({"alphabet": "aab"}, "alphabet"),
        ({"alphabet": "éa"}, "alphabet"),
        ({"alphabet": "a\nb"}, "alphabet"),
        ({"alphabet": "x" * 257}, "alphabet"),
        ({"alphabet": b"ab"}, "alphabet"),
    ],
)
def test_nanoid_rejects_bad_arguments(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        ids.nanoid(**kwargs)
    assert caught.value.field == field
    with pytest.raises(errors.ValidationError):
        ids.NanoidGenerator(**kwargs)


def test_generators_follow_the_protocol() -> None:
    generators: list[ids.IdGenerator] = [
        ids.Uuid7Generator(),
        ids.UlidGenerator(),
        ids.NanoidGenerator(size=10),
        ids.Snowflake(1),
        RequestId,
    ]
    for generator in generators:
        assert isinstance(generator, ids.IdGenerator)
        first, second = generator.new(), generator.new()
        assert isinstance(first, str)
        assert first != second
    assert uuid.UUID(generators[0].new()).version == 7
    assert len(generators[2].new()) == 10


# -- Snowflake --------------------------------------------------------------------------------


def test_snowflake_is_monotonic_within_a_millisecond() -> None:
    clock = FakeClock()
    generator = _snowflake(clock, worker=7)
    made = [generator.next_int() for _ in range(100)]
    assert made == sorted(made)
    assert [ids.Snowflake.parse(value) for value in made] == [
        (NOW_MS, 7, sequence) for sequence in range(100)
    ]
    assert clock.sleeps == []


def test_snowflake_sequence_restarts_each_millisecond() -> None:
    clock = FakeClock()
    generator = _snowflake(clock)
    generator.next_int()
    generator.next_int()
    clock.set_ms(NOW_MS + 5)
    assert ids.Snowflake.parse(generator.new()) == (NOW_MS + 5, 3, 0)


def test_snowflake_sequence_overflow_waits_for_the_next_millisecond() -> None:
    clock = FakeClock()
    generator = _snowflake(clock)
    made = [generator.next_int() for _ in range(ids.MAX_SEQUENCE + 2)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert ids.Snowflake.parse(made[ids.MAX_SEQUENCE]) == (NOW_MS, 3, ids.MAX_SEQUENCE)
    assert ids.Snowflake.parse(made[-1]) == (NOW_MS + 1, 3, 0)
    assert clock.sleeps == [pytest.approx(0.001)]


def test_snowflake_waits_out_a_small_clock_rollback() -> None:
    clock = FakeClock()
    generator = _snowflake(clock, max_rollback_ms=5)
    before = generator.next_int()
    clock.set_ms(NOW_MS - 5)
    after = generator.next_int()
    assert after > before
    assert ids.Snowflake.parse(after) == (NOW_MS, 3, 1)
    assert sum(clock.sleeps) == pytest.approx(0.005)


def test_snowflake_refuses_a_big_clock_rollback() -> None:
    clock = FakeClock()
    generator = _snowflake(clock, max_rollback_ms=5)
    generator.next_int()
    clock.set_ms(NOW_MS - 6)
    with pytest.raises(errors.ConfigError, match=r"clock moved back 6 ms") as caught:
        generator.next_int()
    assert caught.value.key == "clock"
    assert clock.sleeps == []
    clock.set_ms(NOW_MS + 1)
    assert ids.Snowflake.parse(generator.next_int()) == (NOW_MS + 1, 3, 0)


def test_snowflake_refuses_a_clock_outside_its_range() -> None:
    clock = FakeClock(EPOCH - 1)
    with pytest.raises(errors.ConfigError) as caught:
        _snowflake(clock).next_int()
    assert caught.value.key == "clock"


def test_snowflake_uses_its_epoch() -> None:
    clock = FakeClock()
    generator = _snowflake(clock, epoch_ms=NOW_MS - 10)
    assert ids.Snowflake.parse(generator.next_int(), epoch_ms=NOW_MS - 10) == (NOW_MS, 3, 0)
    assert generator.next_int() == (10 << 22) | (3 << 12) | 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"worker_id": -1}, "worker_id"),
        ({"worker_id": ids.MAX_WORKER + 1}, "worker_id"),
        ({"worker_id": True}, "worker_id"),
        ({"worker_id": 1, "epoch_ms": -1}, "epoch_ms"),
        ({"worker_id": 1, "max_rollback_ms": -1}, "max_rollback_ms"),
    ],
)
def test_snowflake_rejects_bad_configuration(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        ids.Snowflake(**kwargs)
    assert caught.value.field == field


def test_snowflake_is_unique_across_threads() -> None:
    generator = ids.Snowflake(9)
    results: list[list[int]] = [[] for _ in range(4)]

    def work(out: list[int]) -> None:
        out.extend(generator.next_int() for _ in range(2_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [value for out in results for value in out]
    assert len(set(made)) == len(made)
    for out in results:
        assert out == sorted(out)


def test_snowflake_uses_the_real_clock_by_default() -> None:
    value = ids.Snowflake(0).next_int()
    assert 0 < value <= ids.MAX_SNOWFLAKE


# -- prefixed ids -----------------------------------------------------------------------------


def test_prefixed_id_new_parse_and_str() -> None:
    made = RequestId.new()
    assert isinstance(made, RequestId)
    assert made.startswith("req_")
    assert len(made) == len("req_") + 26
    assert str(made) == made
    assert type(str(made)) is str
    assert RequestId.parse(str(made)) == made
    assert RequestId(str(made)) == made
    assert repr(made) == f"RequestId('{made}')"
    assert made.body == made[4:]
    assert made.created_at.tzinfo is not None
    assert abs(made.created_at.timestamp() * 1000 - made.timestamp_ms) < 1


def test_prefixed_ids_sort_by_time() -> None:
    older = RequestId.from_ulid(ULID.from_timestamp(1_700_000_000))
    newer = RequestId.from_ulid(ULID.from_timestamp(1_700_000_001))
    assert older < newer
    made = [RequestId.new() for _ in range(500)]
    stamps = [value.timestamp_ms for value in made]
    assert [value.timestamp_ms for value in sorted(made)] == sorted(stamps)


def test_prefixed_id_rejects_another_kind() -> None:
    run_id = ids.id_type("run").new()
    with pytest.raises(errors.ValidationError, match=r"must start with 'req_'") as caught:
        RequestId.parse(str(run_id))
    assert caught.value.field == "req"
    assert caught.value.actual == str(run_id)


def test_prefixed_id_rejects_non_strings() -> None:
    with pytest.raises(errors.ValidationError, match="must be a string"):
        RequestId.parse(42)  # type: ignore[arg-type]


def test_id_type_returns_one_class_per_prefix() -> None:
    job_id = ids.id_type("job")
    assert ids.id_type("job") is job_id
    assert job_id.__name__ == "JobId"
    assert job_id.prefix == "job"
    assert ids.id_type("tnt", name="TenantId").__name__ == "TenantId"
    assert issubclass(job_id, ids.PrefixedId)


def test_prefixed_id_base_needs_a_prefix() -> None:
    with pytest.raises(TypeError):
        ids.PrefixedId("req_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(TypeError, match="needs a prefix"):
        type("Bare", (ids.PrefixedId,), {})
    with pytest.raises(errors.ValidationError):
        type("Bad", (ids.PrefixedId,), {}, prefix="Bad")


def test_prefixed_id_as_pydantic_field() -> None:
    made = RequestId.new()
    model = Request.model_validate({"id": str(made)})
    assert type(model.id) is RequestId
    assert model.id == made
    assert model.model_dump() == {"id": str(made)}
    assert json.loads(model.model_dump_json()) == {"id": str(made)}
    assert Request(id=made).id == made
    assert Request.model_validate_json(model.model_dump_json()) == model


def test_pydantic_reports_a_bad_id_on_its_field() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Request.model_validate({"id": "run_01ARZ3NDEKTSV4RRFFQ69G5FAV"})
    (issue,) = caught.value.errors()
    assert issue["loc"] == ("id",)
    assert issue["type"] == "prefixed_id"
    assert "'req_'" in issue["msg"]
    with pytest.raises(pydantic.ValidationError):
        Request.model_validate({"id": 5})


def test_pydantic_json_schema_has_the_pattern() -> None:
    schema = Request.model_json_schema()["properties"]["id"]
    assert schema["type"] == "string"
    assert schema["pattern"].startswith("^req_")
    pattern = schema["pattern"]
    assert re.fullmatch(pattern, str(RequestId.new()))
    assert not re.fullmatch(pattern, "req_01arz3ndektsv4rrffq69g5fav")
