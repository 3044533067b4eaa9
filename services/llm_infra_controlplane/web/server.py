"""The HTTP server's connection limits: header size, read timeouts and a bounded connection table.

uvicorn (with httptools, the fast parser) bounds neither the size of a request's
headers nor the time a client may take to send them, and it answers its
`limit_concurrency` only once a request's headers are complete. So one client
sending a 64 MiB header held the event loop (httptools joins header fragments
into one bytes object, quadratic in their number), and 300 half-sent requests
held every file descriptor. `guarded_protocol(limits)` is uvicorn's own
`HttpToolsProtocol` with the checks it lacks, applied before the bytes reach
the parser:

- the request line and headers stop at `max_header_bytes` (431, connection closed);
- they must arrive within `header_timeout` of the request's first byte, the
  body within `body_timeout` of the headers (the connection is closed);
- at most `max_connections` connections are open (never more than the process
  may open files for); when one more arrives, the oldest connection that is
  still sending its headers or idles between requests is closed to make room,
  so a flood of slow clients cannot lock out a well-behaved one. Only when every
  connection is busy with a request is the new one refused (503).

Body size limits and authentication before the body are the application's
(`web.guard`): they depend on the route and the caller.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llm_infra_controlplane.settings import ServerLimits

_log = logging.getLogger(__name__)
# File descriptors the process keeps for itself: logs, NATS, the embedded shards' files.
_RESERVED_FDS = 128


def connection_limit(limits: ServerLimits) -> int:
    """`max_connections`, lowered to what the open-files limit leaves after the reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    return max(1, min(limits.max_connections, soft - _RESERVED_FDS))


def raise_open_files_limit() -> None:
    """Lift the soft open-files limit to the hard one: each connection is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # a hard limit of "infinity" some kernels refuse
            return


def _status(code: int, reason: str, detail: str) -> bytes:
    body = orjson.dumps({"type": "about:blank", "title": reason, "status": code, "detail": detail})
    return (
        f"HTTP/1.1 {code} {reason}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


def guarded_protocol(limits: ServerLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with `limits` enforced (pass it as ``Config(http=...)``)."""
    max_connections = connection_limit(limits)
    too_large = _status(
        431,
        "Request Header Fields Too Large",
        f"the request line and headers exceed {limits.max_header_bytes} bytes"
        " (limits.max_header_bytes)",
    )
    busy = _status(503, "Service Unavailable", "every connection is busy: retry shortly")

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        # Bytes of the current request's line and headers; None once they are complete.
        _head_bytes: int | None = 0
        _timer: asyncio.TimerHandle | None = None
        _opened: float = 0.0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._opened = self.loop.time()
            self._head_bytes = 0
            self._arm(limits.header_timeout)
            if len(self.connections) > max_connections and not self._make_room():
                _log.warning("connection limit (%d) reached: refusing one", max_connections)
                self.transport.write(busy)
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            # Feed the head at most up to the limit, so the parser never holds more.
            while data and self._head_bytes is not None:
                room = limits.max_header_bytes - self._head_bytes
                if room <= 0:
                    self._refuse(too_large)
                    return
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
                super().data_received(piece)
                if self.transport.is_closing():
                    return
            if data:
                super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._head_bytes is None:  # the next request on a kept-alive connection
                self._head_bytes = 0
            self._arm(limits.header_timeout)

        def on_headers_complete(self) -> None:
            self._head_bytes = None
            self._arm(limits.body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            self._head_bytes = 0  # what arrives next is the next request's head
            super().on_message_complete()

        def _idle(self) -> bool:
            """Sending its head, or waiting between requests: nothing of ours in flight."""
            cycle: Any = self.cycle  # None before the first request, whatever uvicorn types
            return self._head_bytes is not None and (cycle is None or cycle.response_complete)

        def _make_room(self) -> bool:
            idle = [c for c in self.connections if c is not self and _idle(c)]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: getattr(c, "_opened", 0.0))
            oldest.transport.close()
            return True

        def _refuse(self, response: bytes) -> None:
            self._disarm()
            self.transport.write(response)
            self.transport.close()

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self) -> None:
            self._timer = None
            if not self.transport.is_closing():
                self.transport.close()

    def _idle(connection: Any) -> bool:
        return isinstance(connection, GuardedHttpToolsProtocol) and connection._idle()

    return GuardedHttpToolsProtocol


__all__ = ["connection_limit", "guarded_protocol", "raise_open_files_limit"]
