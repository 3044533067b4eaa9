"""llm_infra.fs: the sandbox rules, the whole API on memory://, S3/GCS config without network."""

from __future__ import annotations

import asyncio
import socket

import pytest
from obstore.store import S3Store
from pydantic import SecretStr

from llm_infra import errors, fs
from llm_infra.fs import _watch

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def test_all_is_complete() -> None:
    public = {name for name in dir(fs) if not name.startswith("_")}
    assert set(fs.__all__) == public


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a", "a"),
        ("a/b.txt", "a/b.txt"),
        ("a/./b", "a/b"),
        ("./a", "a"),
        ("a/x/../b", "a/b"),
        ("dir with space/é.txt", "dir with space/é.txt"),
    ],
)
def test_good_paths_normalize(path: str, expected: str) -> None:
    assert fs.normalize_path(path) == expected


@pytest.mark.parametrize(
    "path",
    ["", ".", "a/..", "/etc/passwd", "../x", "a/../../x", "a//b", "a/", "a\\b", "a\x00b", "x#1"],
)
def test_bad_paths_are_rejected_naming_the_path(path: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        fs.normalize_path(path)
    assert caught.value.field == "path"
    assert repr(path) in caught.value.message or not path.isprintable()


@pytest.mark.parametrize(("prefix", "expected"), [("", ""), ("a/", "a"), ("a/./b/", "a/b")])
def test_prefixes_normalize(prefix: str, expected: str) -> None:
    assert fs.normalize_prefix(prefix) == expected


@pytest.mark.parametrize("prefix", ["/", "../", "a//"])
def test_bad_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(errors.ValidationError):
        fs.normalize_prefix(prefix)


# -- the API on memory:// ----------------------------------------------------------------------


@pytest.fixture
def memory() -> fs.FileSystem:
    return fs.open_fs("memory://")


async def test_write_read_roundtrip(memory: fs.FileSystem) -> None:
    await memory.write("a/b.bin", b"\x00\x01")
    await memory.write_text("a/c.txt", "héllo")
    assert await memory.read("a/b.bin") == b"\x00\x01"
    assert await memory.read_text("./a/c.txt") == "héllo"
    await memory.write("a/b.bin", b"new")
    assert await memory.read("a/b.bin") == b"new"


async def test_read_missing_is_not_found(memory: fs.FileSystem) -> None:
    with pytest.raises(errors.NotFound, match="nope"):
        await memory.read("nope")


async def test_read_text_rejects_invalid_utf8(memory: fs.FileSystem) -> None:
    await memory.write("bad", b"\xff\xfe")
    with pytest.raises(errors.IoError):
        await memory.read_text("bad")


async def test_overwrite_false_conflicts_when_present(memory: fs.FileSystem) -> None:
    await memory.write("lock", b"1", overwrite=False)
    with pytest.raises(errors.Conflict, match="already exists"):
        await memory.write("lock", b"2", overwrite=False)
    assert await memory.read("lock") == b"1"


async def test_delete_and_exists(memory: fs.FileSystem) -> None:
    await memory.write("x", b"1")
    assert await memory.exists("x")
    await memory.delete("x")
    assert not await memory.exists("x")
    await memory.delete("x")  # missing: no error


async def test_list_is_recursive_sorted_and_segment_wise(memory: fs.FileSystem) -> None:
    for path in ["b/2", "a/1", "a/sub/3", "ab"]:
        await memory.write(path, b"xyz")
    assert [e.path for e in await memory.list()] == ["a/1", "a/sub/3", "ab", "b/2"]
    entries = await memory.list("a/")
    assert [(e.path, e.size) for e in entries] == [("a/1", 3), ("a/sub/3", 3)]
    assert entries[0].modified.tzinfo is not None


async def test_every_method_sandboxes(memory: fs.FileSystem) -> None:
    with pytest.raises(errors.ValidationError):
        await memory.read("../x")
    with pytest.raises(errors.ValidationError):
        await memory.write("/abs", b"")
    with pytest.raises(errors.ValidationError):
        await memory.delete("a\\b")
    with pytest.raises(errors.ValidationError):
        await memory.exists("")
    with pytest.raises(errors.ValidationError):
        await memory.list("../")


async def _next(changes: fs.Watch) -> fs.Change:
    async with asyncio.timeout(5):
        return await anext(changes)


async def test_watch_memory_reports_add_modify_delete(memory: fs.FileSystem) -> None:
    await memory.write("runs/old", b"0")
    async with memory.watch("runs") as changes:
        await memory.write("other", b"ignored: outside the prefix")
        await memory.write("runs/new", b"1")
        assert await _next(changes) == fs.Change(fs.ChangeKind.ADDED, "runs/new")
        await memory.write("runs/old", b"2")
        assert await _next(changes) == fs.Change(fs.ChangeKind.MODIFIED, "runs/old")
        await memory.delete("runs/new")
        await memory.delete("runs/never")  # unknown: nothing to report
        assert await _next(changes) == fs.Change(fs.ChangeKind.DELETED, "runs/new")
    assert [c async for c in changes] == []


async def test_polling_source_diffs_listings(memory: fs.FileSystem) -> None:
    await memory.write("p/keep", b"0")
    await memory.write("p/gone", b"0")
    source = _watch.PollingSource(memory._snapshot, "p", interval=0.01)
    async with _watch.Watch(source, "p", memory._snapshot) as changes:
        await memory.write("p/keep", b"longer")
        await memory.write("p/new", b"1")
        await memory.delete("p/gone")
        seen = {await _next(changes) for _ in range(3)}
    assert seen == {
        fs.Change(fs.ChangeKind.MODIFIED, "p/keep"),
        fs.Change(fs.ChangeKind.ADDED, "p/new"),
        fs.Change(fs.ChangeKind.DELETED, "p/gone"),
    }


def test_classify_coalesces_against_known() -> None:
    known = {"a"}
    changes = _watch.classify({"a": True, "b": True, "c": False}, known)
    assert changes == [
        fs.Change(fs.ChangeKind.MODIFIED, "a"),
        fs.Change(fs.ChangeKind.ADDED, "b"),
    ]
    assert known == {"a", "b"}


def test_watch_rejects_non_positive_interval(memory: fs.FileSystem) -> None:
    with pytest.raises(errors.ValidationError):
        memory.watch(interval=0)


# -- open_fs: URLs and object-store options (no network) ---------------------------------------


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("ftp://host/x", "url"),
        ("s3://", "url"),
        ("s3://key:secret@bucket/p", "url"),
        ("s3://bucket/../up", "prefix"),
    ],
)
def test_open_fs_rejects_bad_urls(url: str, field: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        fs.open_fs(url)
    assert caught.value.field == field
    assert "secret" not in str(caught.value)


def test_open_fs_rejects_remote_options_for_memory() -> None:
    with pytest.raises(errors.ValidationError, match="region"):
        fs.open_fs("memory://", region="eu-west-1")


def test_open_fs_s3_builds_config_without_secrets_in_repr() -> None:
    files = fs.open_fs(
        "s3://bucket/some/prefix/",
        endpoint="http://127.0.0.1:9000",
        region="eu-west-1",
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SecretStr(SECRET),
        allow_http=True,
        timeout=3,
    )
    assert files.backend == "s3"
    assert files.url == "s3://bucket/some/prefix"
    store = files._store
    assert isinstance(store, S3Store)
    assert store.prefix == "some/prefix"
    config = store.config
    assert config["endpoint"] == "http://127.0.0.1:9000"
    assert config["region"] == "eu-west-1"
    assert config["secret_access_key"] == SECRET
    assert store.client_options is not None
    assert str(store.client_options["allow_http"]).lower() == "true"
    for text in (repr(files), str(files), repr(store)):
        assert SECRET not in text


def test_open_fs_gs_builds_and_hides_a_bad_key() -> None:
    files = fs.open_fs("gs://bucket/pre")
    assert (files.backend, files.url) == ("gs", "gs://bucket/pre")
    with pytest.raises(errors.ConfigError) as caught:
        fs.open_fs("gs://bucket/pre", service_account_key=SecretStr(f'{{"k": "{SECRET}"'))
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


async def test_s3_connection_failure_is_retryable_and_scrubbed() -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        files = fs.open_fs(
            "s3://bucket/p",
            endpoint=f"http://127.0.0.1:{port}",
            region="us-east-1",
            access_key_id="AKIAEXAMPLE",
            secret_access_key=SECRET,
            allow_http=True,
            timeout=2,
            max_retries=0,
        )
        with pytest.raises(errors.InfraError) as caught:
            await files.read("k")
    assert caught.value.is_retryable()
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert SECRET not in str(caught.value.to_problem())


def test_map_error_table() -> None:
    def mapped(exc: BaseException) -> errors.InfraError:
        return fs.map_error(exc, operation=errors.IoOperation.READ, path="p", service="fs:x")

    assert isinstance(mapped(FileNotFoundError("x")), errors.NotFound)
    assert isinstance(mapped(FileExistsError("x")), errors.Conflict)
    assert isinstance(mapped(PermissionError("x")), errors.InsufficientPermissions)
    assert isinstance(mapped(TimeoutError("x")), errors.IoTimeout)
    assert mapped(TimeoutError("x")).is_retryable()
    other = mapped(OSError("disk on fire\nsecond line"))
    assert isinstance(other, errors.IoError)
    assert other.message == "disk on fire"
