"""uvicorn's httptools protocol with a limit on the size of a request's head.

The request line and headers are held in memory until they are complete, and neither uvicorn's
httptools protocol nor the parser limits them: a client could send a header of any size.
A request line plus headers larger than ``MAX_HEAD_BYTES`` gets 431 (Request Header Fields Too
Large) and the connection is closed. The head is measured as the parser hands over its parts
(the URL in pieces, each header once complete); reads that leave the head unfinished are
counted too, so one giant header is refused before it is complete, within one read of the
limit.

The 431 is written here, before the application sees the request, in the shape the application
gives every other error: a ``google.rpc.Status`` in the request's encoding (as far as its
Content-Type header arrived), or the JSON API's ``{"error": ...}`` for a path under ``/api/``.
"""

from __future__ import annotations

import json
import logging

from google.rpc import code_pb2, status_pb2
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

# The OpenTelemetry SDKs send a few hundred bytes of headers; proxies allow 8 to 64 KiB.
MAX_HEAD_BYTES = 64 * 1024
# What a header line adds to its name and value: ": " and the line end.
_HEADER_LINE_OVERHEAD = 4

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: %s\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
_PROTOBUF_TYPES = (b"application/x-protobuf", b"application/protobuf")


class BoundedHeadProtocol(HttpToolsProtocol):
    """Refuses a request whose line and headers exceed ``MAX_HEAD_BYTES``."""

    _in_head = True
    _head_bytes = 0  # parts the parser handed over
    _unfinished_reads = 0  # bytes of reads that ended inside the head
    _refused = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._unfinished_reads = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + _HEADER_LINE_OVERHEAD)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if not self._refused:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self._refused and not self.transport.is_closing():
            # The whole read went into a head that is still incomplete.
            self._unfinished_reads += len(data)
            if self._unfinished_reads > MAX_HEAD_BYTES:
                self._refuse_head()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES and not self._refused:
            self._refuse_head()

    def _refuse_head(self) -> None:
        self._refused = True
        message = (
            f"The request line and headers exceed {MAX_HEAD_BYTES} bytes; send fewer or "
            "smaller headers."
        )
        logger.warning("Refused a request whose headers exceed %d bytes", MAX_HEAD_BYTES)
        # the head may be refused before the parser began a message (and set these)
        url, headers = getattr(self, "url", b""), self.headers or []
        media_type, body = refusal_body(url, headers, message)
        self.transport.write(_REFUSAL % (media_type, len(body), body))
        self.transport.close()


def refusal_body(
    url: bytes, headers: list[tuple[bytes, bytes]], message: str
) -> tuple[bytes, bytes]:
    """The media type and body of an error answer, shaped as the application shapes its own."""
    if url.startswith(b"/api/"):
        return b"application/json", json.dumps({"error": message}).encode()
    media_type = dict(headers).get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if media_type in _PROTOBUF_TYPES:
        status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message)
        return b"application/x-protobuf", status.SerializeToString()
    document = {"code": code_pb2.RESOURCE_EXHAUSTED, "message": message}
    return b"application/json", json.dumps(document).encode()
