"""The served configs' building blocks: `ConfigStore`, the SSE encoding and event stream.

The API itself runs in the real app, whose lifespan needs NATS: it is tested
in tests/integration/test_cp_configs.py, over ASGI and over a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from llm_infra import config, jsondoc
from llm_infra.client import ConfigVersion, ServedConfigSource
from llm_infra_controlplane.configs import routes as configs
from llm_infra_controlplane.configs.store import ConfigStore

DEADLINE = 2.0
URL = "/v1/namespaces/team-a/configs"


def _publish(store: ConfigStore, document: dict[str, object], name: str = "app") -> ConfigVersion:
    return store.publish("team-a", name, document, config.content_hash(document))


# -- the store ---------------------------------------------------------------------------------


def test_publish_counts_content_changes_only() -> None:
    store = ConfigStore()
    first = _publish(store, {"model": "small"})
    assert (first.version, first.namespace, first.name) == (1, "team-a", "app")
    assert first.content_hash == config.content_hash({"model": "small"})
    assert _publish(store, {"model": "small"}) is first
    second = _publish(store, {"model": "large"})
    assert second.version == 2
    assert second.updated_at >= first.updated_at
    assert store.get("team-a", "app") is second
    assert store.get("team-a", "other") is None


def test_published_document_is_the_stores_own_copy() -> None:
    store = ConfigStore()
    document: dict[str, object] = {"limits": {"rps": 5}}
    _publish(store, document)
    document["limits"] = {"rps": 500}
    served = store.get("team-a", "app")
    assert served is not None
    assert served.document == {"limits": {"rps": 5}}


def test_names_and_remove() -> None:
    store = ConfigStore()
    _publish(store, {"a": 1}, name="b-app")
    _publish(store, {"a": 1}, name="a-app")
    store.publish("team-b", "app", {}, config.content_hash({}))
    assert store.names() == [("team-a", "a-app"), ("team-a", "b-app"), ("team-b", "app")]
    store.remove("team-a", "a-app")
    store.remove("team-a", "a-app")  # idempotent
    assert store.names() == [("team-a", "b-app"), ("team-b", "app")]


def test_a_config_applied_again_goes_on_counting() -> None:
    store = ConfigStore()
    _publish(store, {"v": 1})
    _publish(store, {"v": 2})
    store.remove("team-a", "app")
    # A watcher that saw version 2 must not be shown a smaller number for newer content.
    assert _publish(store, {"v": 3}).version == 3


async def _next(versions: AsyncIterator[ConfigVersion]) -> ConfigVersion:
    async with asyncio.timeout(DEADLINE):
        return await anext(versions)


async def _ends(versions: AsyncIterator[ConfigVersion]) -> None:
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(StopAsyncIteration):
            await anext(versions)


async def test_watch_yields_the_current_then_each_new_version() -> None:
    store = ConfigStore()
    first = _publish(store, {"v": 1})
    versions = store.watch("team-a", "app")
    assert await _next(versions) is first
    waiting = asyncio.ensure_future(_next(versions))
    await asyncio.sleep(0)  # let it wait for the next change
    assert not waiting.done()
    second = _publish(store, {"v": 2})
    assert await waiting is second
    await versions.aclose()


async def test_watch_after_the_current_hash_waits_for_a_new_one() -> None:
    store = ConfigStore()
    first = _publish(store, {"v": 1})
    versions = store.watch("team-a", "app", after_hash=first.content_hash)
    waiting = asyncio.ensure_future(_next(versions))
    await asyncio.sleep(0)
    assert not waiting.done()
    _publish(store, {"v": 1})  # same content: nobody is woken with it
    await asyncio.sleep(0)
    assert not waiting.done()
    _publish(store, {"v": 2})
    assert (await waiting).version == 2
    await versions.aclose()


async def test_an_unknown_hash_yields_the_current_version() -> None:
    store = ConfigStore()
    first = _publish(store, {"v": 1})
    versions = store.watch("team-a", "app", after_hash="not-a-hash-we-served")
    assert await _next(versions) is first
    await versions.aclose()


async def test_a_slow_watcher_gets_the_latest_and_never_holds_up_publish() -> None:
    store = ConfigStore()
    _publish(store, {"v": 0})
    slow = store.watch("team-a", "app")
    fast = store.watch("team-a", "app")
    await _next(slow)
    await _next(fast)
    # Publishing is synchronous: it cannot wait for anyone.
    for value in range(1, 100):
        _publish(store, {"v": value})
    latest = store.get("team-a", "app")
    assert latest is not None
    assert (await _next(slow)) is latest
    assert (await _next(fast)) is latest
    await slow.aclose()
    await fast.aclose()


async def test_watches_end_on_remove_and_on_close() -> None:
    store = ConfigStore()
    _publish(store, {"v": 1}, name="removed")
    _publish(store, {"v": 1}, name="kept")
    await _ends(store.watch("team-a", "missing"))
    removed = store.watch("team-a", "removed")
    kept = store.watch("team-a", "kept")
    await _next(removed)
    await _next(kept)
    store.remove("team-a", "removed")
    # Applied again at once: the old watch still ends; its config went away in between.
    _publish(store, {"v": 2}, name="removed")
    await _ends(removed)
    store.close()
    await _ends(kept)
    await _ends(store.watch("team-a", "kept"))


# -- the event stream --------------------------------------------------------------------------


def test_an_encoded_event_decodes_to_the_same_version() -> None:
    version = _publish(ConfigStore(), {"text": "two\nlines", "nested": {"x": [1, 2]}})
    (event,) = jsondoc.SseDecoder().feed(configs.event(version).encode())
    assert (event.event, event.id) == ("config", version.content_hash)
    assert ConfigVersion.model_validate_json(event.data) == version


async def test_the_events_follow_the_watch_and_end_with_it() -> None:
    store = ConfigStore()
    first = _publish(store, {"v": 1})
    events = configs._events(store.watch("team-a", "app"))
    async with asyncio.timeout(DEADLINE):
        assert (await anext(events)).encode() == configs.event(first).encode()
        second = _publish(store, {"v": 2})
        assert (await anext(events)).encode() == configs.event(second).encode()
        store.remove("team-a", "app")
        assert [e async for e in events] == []


async def test_closing_the_events_mid_wait_ends_the_watch() -> None:
    store = ConfigStore()
    _publish(store, {"v": 1})
    watch = store.watch("team-a", "app")
    events = configs._events(watch)
    async with asyncio.timeout(DEADLINE):
        await anext(events)
        waiting = asyncio.ensure_future(anext(events))  # now waiting for a version
        await asyncio.sleep(0)
        waiting.cancel()  # what sse-starlette does when the client goes away
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await events.aclose()
        await _ends(watch)  # over, not left waiting on the store


# -- the SDK's source --------------------------------------------------------------------------


def test_a_served_source_names_its_origin_and_hides_its_token() -> None:
    source = ServedConfigSource("http://cp:8080", "team-a", "app", token="s3cr3t-t0ken")
    assert source.origin("db.pool") == "config team-a/app served by http://cp:8080"
    assert "s3cr3t" not in repr(source)
    assert source.headers == {"Authorization": "Bearer s3cr3t-t0ken"}
    assert isinstance(source, config.Source)
