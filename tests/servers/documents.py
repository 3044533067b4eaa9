"""A local HTTP server of documents, for the HTTP config layers and sources.

Serves `documents[path]` with an ETag (a SHA-256 prefix of the body), answers
304 to a matching If-None-Match and 404 to an unknown path, and keeps the
headers of every request in `seen`. `redirects[path]` answers 302 to that
location; `streams[path]` (a function giving chunks) is sent without a length,
chunk by chunk, and `sent[path]` counts the bytes the client took. A thread of
the test process, on a free loopback port, stopped when the `with` block ends.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self


class DocumentServer:
    def __init__(self, content_type: str = "application/json") -> None:
        self.documents: dict[str, bytes] = {}
        self.seen: list[dict[str, str]] = []
        self.redirects: dict[str, str] = {}
        self.streams: dict[str, Callable[[], Iterator[bytes]]] = {}
        self.sent: dict[str, int] = {}
        self.content_type = content_type
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @staticmethod
    def etag(body: bytes) -> str:
        return f'"{hashlib.sha256(body).hexdigest()[:16]}"'

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.seen.append(dict(self.headers.items()))
                if self.path in server.redirects:
                    self._answer(302, b"", {"Location": server.redirects[self.path]})
                    return
                if self.path in server.streams:
                    self._stream(server.streams[self.path]())
                    return
                body = server.documents.get(self.path)
                if body is None:
                    self._answer(404, b"", {})
                    return
                etag = server.etag(body)
                if self.headers.get("If-None-Match") == etag:
                    self._answer(304, None, {"ETag": etag})
                    return
                self._answer(200, body, {"ETag": etag, "Content-Type": server.content_type})

            def _answer(self, status: int, body: bytes | None, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if body is not None:  # a 304 carries no body, not even its length
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def _stream(self, chunks: Iterator[bytes]) -> None:
                # HTTP/1.0 without Content-Length: the body ends when the connection closes.
                self.send_response(200)
                self.send_header("Content-Type", server.content_type)
                self.end_headers()
                server.sent[self.path] = 0
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        server.sent[self.path] += len(chunk)
                except OSError:  # the client hung up: what it stopped reading is the point
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass  # pytest shows what the test asserts; the access log is noise

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
