"""llm_infra.fs on a real directory: atomic writes, symlink sandbox, watchfiles, list sizes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from llm_infra import errors, fs


@pytest.fixture
def local(tmp_path: Path) -> fs.FileSystem:
    return fs.open_fs(str(tmp_path / "root"), create=True)


async def test_api_roundtrip_and_list_sizes(local: fs.FileSystem, tmp_path: Path) -> None:
    await local.write("a/one", b"1")
    await local.write("a/deep/two", b"22")
    await local.write("b", b"333")
    assert (tmp_path / "root" / "a" / "deep" / "two").read_bytes() == b"22"
    listed = await local.list()
    assert [(e.path, e.size) for e in listed] == [("a/deep/two", 2), ("a/one", 1), ("b", 3)]
    assert [e.path for e in await local.list("a")] == ["a/deep/two", "a/one"]
    with pytest.raises(errors.Conflict):
        await local.write("b", b"x", overwrite=False)
    await local.delete("b")
    await local.delete("b")
    assert not await local.exists("b")
    with pytest.raises(errors.NotFound):
        await local.read("b")


async def test_file_url_and_plain_path_agree(tmp_path: Path) -> None:
    by_url = fs.open_fs(tmp_path.as_uri())
    await by_url.write("f", b"x")
    assert await fs.open_fs(str(tmp_path)).read("f") == b"x"
    with pytest.raises(errors.ConfigError):
        fs.open_fs(str(tmp_path / "missing"))


async def test_write_is_atomic_for_a_concurrent_reader(local: fs.FileSystem) -> None:
    old, new = b"a" * 8_000_000, b"b" * 8_000_000
    await local.write("big", old)
    seen: set[bytes] = set()
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set():
            data = await local.read("big")
            seen.add(data[:1] + data[-1:] + len(data).to_bytes(8))
            await asyncio.sleep(0)

    reader = asyncio.create_task(poll())
    for _ in range(5):
        await local.write("big", new)
        await local.write("big", old)
    done.set()
    await reader
    whole = {b"aa" + len(old).to_bytes(8), b"bb" + len(new).to_bytes(8)}
    assert seen <= whole
    # The staging file never carries the final name, and none is left behind.
    assert [e.path for e in await local.list()] == ["big"]


async def test_symlink_escape_is_rejected(local: fs.FileSystem, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"top secret")
    root = tmp_path / "root"
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file-link").symlink_to(outside / "secret.txt")
    for path in ["link/secret.txt", "file-link"]:
        with pytest.raises(errors.ValidationError, match="symlink"):
            await local.read(path)
    with pytest.raises(errors.ValidationError):
        await local.write("link/planted", b"x")
    assert not (outside / "planted").exists()
    assert all(not e.path.startswith(("link", "file-link")) for e in await local.list())


async def test_symlink_inside_root_is_fine(local: fs.FileSystem, tmp_path: Path) -> None:
    await local.write("real/f", b"ok")
    (tmp_path / "root" / "alias").symlink_to(tmp_path / "root" / "real")
    assert await local.read("alias/f") == b"ok"


async def _next(changes: fs.Watch) -> fs.Change:
    async with asyncio.timeout(15):
        return await anext(changes)


async def test_watch_sees_create_modify_delete(local: fs.FileSystem, tmp_path: Path) -> None:
    # The directory exists first: a file made at once inside a brand-new directory can
    # beat the OS watcher to it (inotify watches new directories as it learns of them).
    (tmp_path / "root" / "w").mkdir()
    async with local.watch("w", interval=0.1) as changes:
        await local.write("elsewhere", b"not under the prefix")
        await local.write("w/f.txt", b"1")
        assert await _next(changes) == fs.Change(fs.ChangeKind.ADDED, "w/f.txt")
        await local.write("w/f.txt", b"22")
        assert await _next(changes) == fs.Change(fs.ChangeKind.MODIFIED, "w/f.txt")
        os.remove(tmp_path / "root" / "w" / "f.txt")
        assert await _next(changes) == fs.Change(fs.ChangeKind.DELETED, "w/f.txt")
