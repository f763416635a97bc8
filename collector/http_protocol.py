"""uvicorn's httptools protocol with a limit on the size of a request's head.

The request line and headers are held in memory until they are complete, and neither uvicorn's
httptools protocol nor the parser limits them: a client could send a header of any size.
A request line plus headers larger than ``MAX_HEAD_BYTES`` gets 431 (Request Header Fields Too
Large) and the connection is closed. The head is measured as the parser hands over its parts
(the URL in pieces, each header once complete); reads that leave the head unfinished are
counted too, so one giant header is refused before it is complete, within one read of the
limit.
"""

from __future__ import annotations

import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

# The OpenTelemetry SDKs send a few hundred bytes of headers; proxies allow 8 to 64 KiB.
MAX_HEAD_BYTES = 64 * 1024
# What a header line adds to its name and value: ": " and the line end.
_HEADER_LINE_OVERHEAD = 4

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


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
        ).encode()
        logger.warning("Refused a request whose headers exceed %d bytes", MAX_HEAD_BYTES)
        self.transport.write(_REFUSAL % (len(message), message))
        self.transport.close()
