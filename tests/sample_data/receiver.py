"""A throwaway OTLP/HTTP traces receiver on 127.0.0.1 that records what it is sent."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class RecordingReceiver:
    """Accepts OTLP protobuf trace exports; can answer 503 to the first requests, and answer
    the n-th request (from 0) only after ``delays[n]`` seconds.

    Use as a context manager: it binds ``port`` on 127.0.0.1 (an ephemeral one by default)
    and stops on exit.
    """

    def __init__(
        self,
        reject_first: int = 0,
        keep_requests: bool = True,
        port: int = 0,
        delays: Sequence[float] = (),
    ) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.span_count = 0
        self.rejected = 0
        self._reject_first = reject_first
        self._delays = list(delays)
        self._received = 0
        self._keep = keep_requests
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> RecordingReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def spans(self) -> list[tuple[str, object]]:
        """(service name, span) for every span received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                )
                for scope_spans in resource_spans.scope_spans:
                    found.extend((service, span) for span in scope_spans.spans)
        return found

    def _delay(self) -> float:
        with self._lock:
            number, self._received = self._received, self._received + 1
        return self._delays[number] if number < len(self._delays) else 0.0

    def _record(self, body: bytes) -> bool:
        request = ExportTraceServiceRequest.FromString(body)
        count = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
        with self._lock:
            if self.rejected < self._reject_first:
                self.rejected += 1
                return False
            self.span_count += count
            if self._keep:
                self.requests.append(request)
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver._delay())
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if not receiver._record(body):
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
