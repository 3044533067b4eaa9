"""What every reconciler shares: settings, the Kubernetes client, and lazily opened backends.

One NATS connection, one control-plane client and one Qdrant client per
server for the whole process, opened on first use (an operator that manages
no AuditSink never dials NATS) and closed at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from llm_infra import kube, vector
from llm_infra_operator.settings import OperatorSettings

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.js import JetStreamContext
    from qdrant_client import AsyncQdrantClient

    from llm_infra.client import ControlPlaneClient


_log = logging.getLogger(__name__)


async def _connection_error(exc: Exception) -> None:
    # nats-py logs a traceback per reconnect attempt without a callback; conditions say the rest.
    _log.warning("NATS connection: %s", type(exc).__name__)


class Context:
    def __init__(self, settings: OperatorSettings, client: kube.Kube) -> None:
        self.settings = settings
        self.kube = client
        self._nats: NatsClient | None = None
        self._control_plane: ControlPlaneClient | None = None
        self._qdrant: dict[tuple[str | None, str | None], AsyncQdrantClient] = {}
        self._lock = asyncio.Lock()
        self.shared: dict[str, Any] = {}
        """Per-kind caches that live as long as the process (e.g. HTTP ETags)."""

    async def nats(self) -> NatsClient:
        """The shared NATS connection (core publishes: ConfigSource change events)."""
        import nats  # here: only AuditSinks and config events need NATS

        from llm_infra import errors

        async with self._lock:
            if self._nats is None or self._nats.is_closed:
                with errors.translate(errors.from_nats):
                    # Bounded: nats-py retries a refused first connect forever otherwise.
                    self._nats = await asyncio.wait_for(
                        nats.connect(
                            self.settings.nats_url,
                            token=(
                                self.settings.nats_token.get_secret_value()
                                if self.settings.nats_token
                                else None
                            ),
                            allow_reconnect=True,
                            max_reconnect_attempts=-1,
                            connect_timeout=2,
                            error_cb=_connection_error,
                        ),
                        timeout=5,
                    )
            return self._nats

    async def jetstream(self) -> JetStreamContext:
        return (await self.nats()).jetstream()

    def control_plane(self) -> ControlPlaneClient:
        from llm_infra.client import NO_RETRY, ControlPlaneClient

        if self._control_plane is None:
            token = self.settings.control_plane_token
            # One attempt per call: a failed reconcile is retried by the engine's own backoff.
            self._control_plane = ControlPlaneClient(
                self.settings.control_plane_url,
                token=token.get_secret_value() if token else None,
                retry=NO_RETRY,
            )
        return self._control_plane

    def qdrant(self, url: str | None, api_key: str | None) -> AsyncQdrantClient:
        """A client for the Qdrant server at `url` (local mode when qdrant_location is set)."""
        location = self.settings.qdrant_location
        key = (None, location) if location else (url, api_key)
        if key not in self._qdrant:
            self._qdrant[key] = vector.qdrant_client(url, api_key=api_key, location=location)
        return self._qdrant[key]

    async def aclose(self) -> None:
        if self._nats is not None and not self._nats.is_closed:
            await self._nats.close()
        if self._control_plane is not None:
            await self._control_plane.aclose()
        for client in self._qdrant.values():
            await client.close()
        for cached in self.shared.values():  # e.g. the ConfigSource HTTP client
            if callable(closer := getattr(cached, "aclose", None)):
                await closer()
        await self.kube.aclose()
