"""The served configs: the current version of each ConfigSource's document, and its watchers.

In memory. The standalone applier (and, in a cluster, a watcher of the
operator's ConfigMaps) `publish`es each resolved document with its content
hash; `routes/configs.py` answers GET and the SSE watch stream from here.
Watchers never hold up a publish: each waits on its config's change event and
reads only the latest version when it wakes, so a slow watcher skips the
versions it was too slow for instead of queueing them.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime
from typing import Any

from llm_infra.client import ConfigVersion

_log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class _Slot:
    """One config's current version and the event its watchers wait on."""

    version: ConfigVersion
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    removed: bool = False

    def notify(self) -> None:
        # Waiters hold the event they saw; a fresh one catches the next change.
        self.changed.set()
        self.changed = asyncio.Event()


class ConfigStore:
    """The current version of every served config, keyed by (namespace, name)."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], _Slot] = {}
        # Kept across remove: a config applied again goes on counting, so a version
        # number never goes backwards for a client that saw the earlier ones.
        self._numbers: dict[tuple[str, str], int] = {}
        self._closed = False

    def publish(
        self, namespace: str, name: str, document: Mapping[str, Any], content_hash: str
    ) -> ConfigVersion:
        """Serve `document` (hashed by `llm_infra.config.content_hash`) as config `namespace/name`.

        A new version only when the hash differs from the current one's;
        otherwise the current version is returned unchanged and nobody is woken.
        """
        key = (namespace, name)
        slot = self._slots.get(key)
        if slot is not None and slot.version.content_hash == content_hash:
            return slot.version
        number = self._numbers.get(key, 0) + 1
        self._numbers[key] = number
        version = ConfigVersion(
            namespace=namespace,
            name=name,
            version=number,
            content_hash=content_hash,
            # Our own copy: the caller may go on changing its document.
            document=copy.deepcopy(dict(document)),
            updated_at=datetime.now(UTC),
        )
        if slot is None:
            self._slots[key] = _Slot(version)
        else:
            slot.version = version
            slot.notify()
        _log.info("config %s/%s: version %d (%s)", namespace, name, number, content_hash[:12])
        return version

    def get(self, namespace: str, name: str) -> ConfigVersion | None:
        slot = self._slots.get((namespace, name))
        return None if slot is None else slot.version

    def remove(self, namespace: str, name: str) -> None:
        """Stop serving the config (idempotent); its watchers end."""
        slot = self._slots.pop((namespace, name), None)
        if slot is not None:
            slot.removed = True
            slot.notify()
            _log.info("config %s/%s: removed", namespace, name)

    def names(self) -> list[tuple[str, str]]:
        """(namespace, name) of every served config, sorted."""
        return sorted(self._slots)

    async def watch(
        self, namespace: str, name: str, *, after_hash: str | None = None
    ) -> AsyncGenerator[ConfigVersion, None]:
        """The current version (unless its hash is `after_hash`), then each new one.

        Ends at once if there is no such config; later, when it is removed or
        the store closes. A consumer slower than the publisher gets the latest
        version when it asks again, not every one in between.
        """
        slot = self._slots.get((namespace, name))
        if slot is None:
            return
        seen = slot.version.version if slot.version.content_hash == after_hash else None
        while not (slot.removed or self._closed):
            if slot.version.version != seen:
                seen = slot.version.version
                yield slot.version
                continue  # a publish may have come while the consumer held the version
            await slot.changed.wait()

    def close(self) -> None:
        """End every watch (shutdown): open watch streams finish instead of holding it up."""
        self._closed = True
        for slot in self._slots.values():
            slot.notify()
