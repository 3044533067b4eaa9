"""An OTLP/HTTP receiver on loopback: what a collector would be sent, decoded with the OTLP protos.

The OpenTelemetry Collector itself is a Go build of a few hundred modules (minutes
on two cores, for every cold CI run); the exporters under test speak OTLP/HTTP
with protobuf bodies, which this receiver takes and `opentelemetry-proto` (the
same definitions the Collector uses) decodes. Every export is answered 200.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as Span


class Receiver(ThreadingHTTPServer):
    """Answers every OTLP export with 200 and keeps (path, headers, body); a context manager."""

    name = "otlp-receiver"

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self, path: str) -> list[bytes]:
        return [body for p, _, body in self.received if p == path]

    def spans(self) -> list[tuple[dict[str, object], Span]]:
        """(resource attributes, span) of every span exported so far."""
        found: list[tuple[dict[str, object], Span]] = []
        for body in self.bodies("/v1/traces"):
            for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
                resource = attributes(list(resource_spans.resource.attributes))
                for scope_spans in resource_spans.scope_spans:
                    found.extend((resource, span) for span in scope_spans.spans)
        return found

    def log_tail(self) -> str:
        return "\n".join(f"{path} {len(body)} bytes" for path, _, body in self.received[-20:])

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append((self.path, headers, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def attributes(items: list[KeyValue]) -> dict[str, object]:
    return {item.key: _value(item.value) for item in items}


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None
