"""uvicorn's httptools protocol with a limit on the size of a request's head.

The request line and headers are held in memory until they are complete, and neither uvicorn's
httptools protocol nor the parser limits them: a client could send a header of any size.
A head larger than ``MAX_HEAD_BYTES`` gets 431 (Request Header Fields Too Large) and the
connection is closed, so a request head never takes more than the limit plus one read.
"""

from __future__ import annotations

import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

# The OpenTelemetry SDKs send a few hundred bytes of headers; proxies allow 8 to 64 KiB.
MAX_HEAD_BYTES = 64 * 1024

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


class BoundedHeadProtocol(HttpToolsProtocol):
    """Refuses a request whose line and headers exceed ``MAX_HEAD_BYTES``."""

    _in_head = True
    _head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        # The whole read went into a head that is still incomplete.
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse_head()

    def _refuse_head(self) -> None:
        message = (
            f"The request line and headers exceed {MAX_HEAD_BYTES} bytes; send fewer or "
            "smaller headers."
        ).encode()
        logger.warning("Refused a request whose headers exceed %d bytes", MAX_HEAD_BYTES)
        self.transport.write(_REFUSAL % (len(message), message))
        self.transport.close()
