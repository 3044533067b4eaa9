"""`Informer`: list one kind, then watch it, handing every change to a handler; relist on 410.

The control plane's feeds are informers (`llm_infra_controlplane.feeds`);
anything else that must follow what the API server holds can be one. After the
first list it watches from the list's resourceVersion (bookmarks keep that
version fresh while nothing changes). When the version has expired (410 Gone)
it lists again at once: every current object is handed to `on_apply` again and
each one that vanished meanwhile to `on_delete`, so handlers must be
idempotent. Other failures are logged once and retried with stamina's capped
exponential backoff with jitter (replicas that lost the API server together do
not come back together); a watch that was healthy starts the backoff afresh.
A handler that raises is logged with the object's namespace/name and the feed
goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import stamina

from llm_infra import errors
from llm_infra.kube._client import Kind, Kube, Object, Selector, expired, key_of

Handler = Callable[[Object], Awaitable[None]]
Key = tuple[str, str]  # namespace, name

_log = logging.getLogger(__name__)


class Informer:
    """List then watch `kind` (in `namespace`, matching `labels`) until cancelled."""

    def __init__(
        self,
        kube: Kube,
        kind: Kind,
        *,
        on_apply: Handler,
        on_delete: Handler,
        namespace: str | None = None,
        labels: Selector | None = None,
        name: str | None = None,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.namespace = namespace
        self.labels = dict(labels or {})
        self.name = name or kind.plural
        self.on_apply = on_apply
        self.on_delete = on_delete
        self.known: dict[Key, Object] = {}
        self.resource_version: str | None = None
        """Where the next watch starts; None lists first. Bookmarks move it too."""
        self.synced = asyncio.Event()
        """Set once the first list has been handed over."""
        self.relists = 0
        self.error: str | None = None
        """Why the last attempt failed, until one succeeds (for /readyz)."""
        self._backoff = backoff

    async def run(self) -> None:
        """List and watch until cancelled."""
        while True:
            async for attempt in stamina.retry_context(
                on=self._failed,
                attempts=None,
                timeout=None,
                wait_initial=self._backoff[0],
                wait_max=self._backoff[1],
            ):
                with attempt:
                    await self._cycle()

    def _failed(self, exc: BaseException) -> bool:
        """stamina's hook: retry every failure (RBAC may be fixed, the server come back)."""
        if not isinstance(exc, Exception):
            return False  # cancelled (shutdown): stop, do not retry
        message = exc.message if isinstance(exc, errors.InfraError) else type(exc).__name__
        if self.error != message:  # say it once, not every retry
            # A bug of ours shows its traceback; the feed goes on all the same.
            trace = None if isinstance(exc, errors.InfraError) else exc
            _log.warning("%s: %s (retrying)", self.name, message, exc_info=trace)
        self.error = message
        return True

    async def _cycle(self) -> None:
        """Relist if needed, then watch; return (backoff reset) after a healthy watch or a 410."""
        if self.resource_version is None:
            await self._relist()
        healthy = False
        try:
            assert self.resource_version is not None
            async for event in self.kube.watch(
                self.kind,
                namespace=self.namespace,
                labels=self.labels,
                resource_version=self.resource_version,
            ):
                healthy = True
                self.error = None
                await self._event(event.type, event.object)
        except errors.InfraError as exc:
            if expired(exc):
                _log.info("%s: resourceVersion expired, listing again", self.name)
                self.resource_version = None
                return
            if not healthy:
                raise
            _log.info("%s: watch ended (%s), watching again", self.name, exc.message)

    async def _relist(self) -> None:
        listed = await self.kube.list(self.kind, namespace=self.namespace, labels=self.labels)
        self.relists += 1
        self.error = None
        current = {key_of(obj): obj for obj in listed.items}
        for key, obj in current.items():
            self.known[key] = obj
            await self._handle(self.on_apply, obj)
        for key in [k for k in self.known if k not in current]:
            await self._handle(self.on_delete, self.known.pop(key))
        self.resource_version = listed.resource_version
        self.synced.set()

    async def _event(self, kind: str, obj: Object) -> None:
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        key = key_of(obj)
        if kind == "DELETED":
            self.known.pop(key, None)
            await self._handle(self.on_delete, obj)
        else:
            self.known[key] = obj
            await self._handle(self.on_apply, obj)
        self.resource_version = version or self.resource_version

    async def _handle(self, handler: Handler, obj: Mapping[str, Any]) -> None:
        namespace, name = key_of(obj)
        try:
            await handler(dict(obj))
        except errors.InfraError as exc:
            _log.error("%s %s/%s: %s", self.name, namespace, name, exc)
        except Exception as exc:  # noqa: BLE001  one bad object must not stop the feed
            # The type only: a library's message may quote the object's data.
            _log.error("%s %s/%s: %s (skipped)", self.name, namespace, name, type(exc).__name__)


__all__ = ["Handler", "Informer"]
