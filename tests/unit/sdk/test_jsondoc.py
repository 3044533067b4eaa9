"""llm_infra.jsondoc: the shared test vectors, error mapping, streams, SSE and immutability."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llm_infra import errors, jsondoc

VECTORS = json.loads(
    (Path(__file__).parents[3] / "sdk" / "testvectors" / "jsondoc.json").read_text("utf-8")
)


def _ids(section: str) -> list[str]:
    return [str(case.get("comment", index)) for index, case in enumerate(VECTORS[section])]


def test_all_is_complete() -> None:
    public = {name for name in vars(jsondoc) if not name.startswith("_")}
    assert set(jsondoc.__all__) == public - {"annotations"}


# -- vectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["merge_patch"], ids=_ids("merge_patch"))
def test_merge_patch_vectors(case: dict[str, Any]) -> None:
    before = copy.deepcopy(case)
    assert jsondoc.merge_patch(case["target"], case["patch"]) == case["expected"]
    assert case == before


@pytest.mark.parametrize("case", VECTORS["patch"], ids=_ids("patch"))
def test_patch_vectors(case: dict[str, Any]) -> None:
    before = copy.deepcopy(case)
    if case.get("error"):
        with pytest.raises(errors.ValidationError, match=r"patch op \d+"):
            jsondoc.apply_patch(case["doc"], case["patch"])
    else:
        assert jsondoc.apply_patch(case["doc"], case["patch"]) == case["expected"]
    assert case == before


@pytest.mark.parametrize("case", VECTORS["diff"], ids=_ids("diff"))
def test_diff_vectors(case: dict[str, Any]) -> None:
    before = copy.deepcopy(case)
    patch = jsondoc.diff(case["a"], case["b"])
    result = jsondoc.apply_patch(case["a"], patch)
    assert jsondoc.json_equal(result, case["b"])
    assert case == before
    if jsondoc.json_equal(case["a"], case["b"]):
        assert patch == []


@pytest.mark.parametrize("case", VECTORS["diff"], ids=_ids("diff"))
def test_merge_patch_diff_round_trips(case: dict[str, Any]) -> None:
    try:
        patch = jsondoc.merge_patch_diff(case["a"], case["b"])
    except errors.ValidationError:
        pytest.skip("b holds a null member: not expressible as a merge patch")
    assert jsondoc.merge_patch(case["a"], patch) == case["b"]


@pytest.mark.parametrize("case", VECTORS["pointer"], ids=_ids("pointer"))
def test_pointer_vectors(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(errors.ValidationError) as caught:
            jsondoc.pointer_get(case["doc"], case["pointer"])
        assert caught.value.field == case["pointer"]
    else:
        assert jsondoc.pointer_get(case["doc"], case["pointer"]) == case["expected"]


@pytest.mark.parametrize("case", VECTORS["jsonpath"], ids=_ids("jsonpath"))
def test_jsonpath_vectors(case: dict[str, Any]) -> None:
    assert jsondoc.query_all(case["doc"], case["path"]) == case["expected_all"]
    first = case["expected_all"][0] if case["expected_all"] else None
    assert jsondoc.query(case["doc"], case["path"]) == first


@pytest.mark.parametrize("case", VECTORS["canonical"], ids=_ids("canonical"))
def test_canonical_vectors(case: dict[str, Any]) -> None:
    assert jsondoc.canonical(case["input"]) == case["expected"].encode()


def test_vector_file_is_stably_formatted() -> None:
    path = Path(__file__).parents[3] / "sdk" / "testvectors" / "jsondoc.json"
    expected = json.dumps(VECTORS, indent=2, ensure_ascii=False) + "\n"
    assert path.read_text("utf-8") == expected
    assert set(VECTORS["description"]) == set(VECTORS) - {"description"}


# -- codec ------------------------------------------------------------------------------------


def test_dumps_loads_round_trip() -> None:
    value = {"b": [1, 2.5, None, True], "a": "é"}
    assert jsondoc.loads(jsondoc.dumps(value)) == value
    assert jsondoc.dumps(value, sort_keys=True).startswith(b'{"a"')
    assert b"\n  " in jsondoc.dumps(value, indent=True)


def test_malformed_json_names_line_and_column() -> None:
    with pytest.raises(errors.SerializationError) as caught:
        jsondoc.loads(b'{\n  "a": 1,\n  "b": }')
    assert caught.value.location == "line 3, column 8"
    assert "line 3" in str(caught.value)
    assert caught.value.data_format is errors.SerializationFormat.JSON


def test_unencodable_values_raise_serialization_error() -> None:
    with pytest.raises(errors.SerializationError):
        jsondoc.dumps({"a": object()})
    with pytest.raises(errors.SerializationError):
        jsondoc.canonical({"a": float("nan")})


def test_canonical_sha256_ignores_key_order_and_formatting() -> None:
    a = jsondoc.canonical_sha256({"a": 1, "b": [1.0, "x"]})
    b = jsondoc.canonical_sha256(jsondoc.loads(b'{ "b": [1, "x"], "a": 1.0 }'))
    assert a == b
    assert len(a) == 64


# -- JSONPath and pointers --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["$[?@.a==]", "$..", "store.book", "$.a[", "$[01]"])
def test_invalid_jsonpath_names_the_path(path: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        jsondoc.query_all({"a": 1}, path)
    assert caught.value.field == path


def test_string_documents_are_not_parsed_as_json() -> None:
    assert jsondoc.query_all('{"a": 1}', "$.a") == []
    assert jsondoc.query('{"a": 1}', "$") == '{"a": 1}'
    assert jsondoc.query({"a": None}, "$.a") is None


def test_pointer_set_and_remove_return_new_documents() -> None:
    doc = {"a": {"b": [1, 2]}}
    before = copy.deepcopy(doc)
    assert jsondoc.pointer_set(doc, "/a/b/0", 9) == {"a": {"b": [9, 2]}}
    assert jsondoc.pointer_set(doc, "/a/b/-", 3) == {"a": {"b": [1, 2, 3]}}
    assert jsondoc.pointer_set(doc, "/a/c", {"d": 1}) == {"a": {"b": [1, 2], "c": {"d": 1}}}
    assert jsondoc.pointer_set(doc, "", [1]) == [1]
    assert jsondoc.pointer_remove(doc, "/a/b/1") == {"a": {"b": [1]}}
    assert doc == before


@pytest.mark.parametrize(
    ("call", "pointer"),
    [
        (lambda d: jsondoc.pointer_set(d, "a/b", 1), "a/b"),
        (lambda d: jsondoc.pointer_set(d, "/x/y", 1), "/x/y"),
        (lambda d: jsondoc.pointer_set(d, "/~2", 1), "/~2"),
        (lambda d: jsondoc.pointer_remove(d, "/nope"), "/nope"),
        (lambda d: jsondoc.pointer_remove(d, ""), ""),
    ],
)
def test_invalid_pointer_writes(call: Any, pointer: str) -> None:
    with pytest.raises(errors.ValidationError, match=r"(?i)pointer"):
        call({"a": 1})


def test_patch_failure_names_the_op_index() -> None:
    patch = [
        {"op": "add", "path": "/b", "value": 2},
        {"op": "replace", "path": "/a", "value": 3},
        {"op": "test", "path": "/a", "value": 1},
    ]
    doc = {"a": 1}
    with pytest.raises(errors.ValidationError) as caught:
        jsondoc.apply_patch(doc, patch)
    assert caught.value.field == "patch op 2"
    assert "patch op 2" in str(caught.value)
    assert doc == {"a": 1}


def test_results_never_alias_inputs() -> None:
    value = {"deep": [1]}
    patched = jsondoc.apply_patch({}, [{"op": "add", "path": "/v", "value": value}])
    patched["v"]["deep"].append(2)
    assert value == {"deep": [1]}
    target = {"keep": {"x": [1]}, "m": {"y": 1}}
    merged = jsondoc.merge_patch(target, {"m": {"z": 2}})
    merged["keep"]["x"].append(2)
    merged["m"]["y"] = 5
    assert target == {"keep": {"x": [1]}, "m": {"y": 1}}
    b = {"n": [{"k": 1}]}
    ops = jsondoc.diff({}, b)
    ops[0]["value"][0]["k"] = 2
    assert b == {"n": [{"k": 1}]}


def test_patch_must_be_an_array() -> None:
    with pytest.raises(errors.ValidationError):
        jsondoc.apply_patch({}, {"op": "add"})  # type: ignore[arg-type]  # the wrong type is the test


# -- streams ----------------------------------------------------------------------------------

STREAM = b'{"a": [1, "x\\u00e9"]} 12\n"s p"{"b":{}}[true,null]\n-3.5e2 false'
STREAM_VALUES = [{"a": [1, "xé"]}, 12, "s p", {"b": {}}, [True, None], -350.0, False]


def _splits(data: bytes) -> list[list[bytes]]:
    """Every way to cut `data` into two chunks, and one-byte chunks."""
    cuts = [[data[:i], data[i:]] for i in range(len(data) + 1)]
    return [*cuts, [data[i : i + 1] for i in range(len(data))]]


def test_iter_json_values_across_every_chunk_boundary() -> None:
    for chunks in _splits(STREAM):
        assert list(jsondoc.iter_json_values(chunks)) == STREAM_VALUES, chunks


def test_iter_json_values_across_every_pair_of_boundaries() -> None:
    data = b'{"k":[10,20]}\n7 "ab"'
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            chunks = [data[:i], data[i:j], data[j:]]
            assert list(jsondoc.iter_json_values(chunks)) == [{"k": [10, 20]}, 7, "ab"]


@pytest.mark.parametrize("data", [b'{"a": 1} {"b": ', b'{"a" 1}', b"[1,]"])
def test_malformed_streams_raise(data: bytes) -> None:
    with pytest.raises(errors.SerializationError):
        list(jsondoc.iter_json_values([data]))


async def _agen(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def test_aiter_json_values() -> None:
    async def collect(chunks: list[bytes]) -> list[Any]:
        return [value async for value in jsondoc.aiter_json_values(_agen(chunks))]

    for chunks in _splits(STREAM)[::7]:
        assert asyncio.run(collect(chunks)) == STREAM_VALUES


# -- SSE --------------------------------------------------------------------------------------


def _decode(chunks: list[bytes]) -> list[jsondoc.SseEvent]:
    decoder = jsondoc.SseDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_sse_spec_examples() -> None:
    # WHATWG HTML 9.2.6 examples: stock ticker, comments and ids, two events, field forms.
    ticker = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert _decode([ticker]) == [jsondoc.SseEvent(data="YHOO\n+2\n10")]
    ids = (
        b": test stream\n\ndata: first event\nid: 1\n\n"
        b"data:second event\nid\n\ndata:  third event\n\n"
    )
    assert _decode([ids]) == [
        jsondoc.SseEvent(data="first event", id="1"),
        jsondoc.SseEvent(data="second event", id=""),
        jsondoc.SseEvent(data=" third event", id=""),
    ]
    empty = b"data\n\ndata\ndata\n\ndata:"
    assert [e.data for e in _decode([empty])] == ["", "\n"]  # the unterminated block is dropped
    same = b"data:test\n\ndata: test\n\n"
    assert [e.data for e in _decode([same])] == ["test", "test"]


def test_sse_line_endings_event_retry_and_bom() -> None:
    data = (
        b"\xef\xbb\xbfevent: add\r\ndata: a\r\nretry: 1500\r\nretry: x\rid: 7\r\r\n: c\ndata: b\n\n"
    )
    expected = [
        jsondoc.SseEvent(event="add", data="a", id="7", retry=1500),
        jsondoc.SseEvent(data="b", id="7", retry=1500),
    ]
    for chunks in _splits(data):
        assert _decode(chunks) == expected, chunks


def test_sse_block_without_data_dispatches_nothing() -> None:
    decoder = jsondoc.SseDecoder()
    assert decoder.feed(b"event: x\nretry: 10\nid: 3\n\n") == []
    assert (decoder.retry, decoder.last_event_id) == (10, "3")
    assert decoder.feed(b"data: d\n\n") == [jsondoc.SseEvent(data="d", id="3", retry=10)]


def test_llm_deltas_stop_at_done() -> None:
    body = (
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        b": keep-alive\n\n"
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\r\n\r\n'
        b"data: [DONE]\n\n"
        b'data: {"after": "done"}\n\n'
    )
    events = _decode([body[i : i + 5] for i in range(0, len(body), 5)])
    deltas = list(jsondoc.iter_llm_deltas(events))
    assert [d["choices"][0]["delta"]["content"] for d in deltas] == ["Hel", "lo"]

    async def collect() -> list[dict[str, Any]]:
        async def source() -> AsyncIterator[jsondoc.SseEvent]:
            for event in events:
                yield event

        return [delta async for delta in jsondoc.aiter_llm_deltas(source())]

    assert asyncio.run(collect()) == deltas


def test_llm_delta_that_is_not_an_object_raises() -> None:
    with pytest.raises(errors.SerializationError):
        list(jsondoc.iter_llm_deltas([jsondoc.SseEvent(data="[1]")]))
    with pytest.raises(errors.SerializationError):
        list(jsondoc.iter_llm_deltas([jsondoc.SseEvent(data="{oops")]))
