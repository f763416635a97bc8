"""uvicorn's httptools protocol with limits on the size of a request's head and the time it
takes to arrive.

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

uvicorn bounds the wait for the next request on a kept-alive connection only
(``timeout_keep_alive``, armed when a response is complete); a connection that sends nothing
after connecting, or a head that never ends (slowloris), was held for ever. So the head must be
complete within ``head_timeout_seconds`` of the moment the connection waits for it: when it
opens, or when data arrives on a kept-alive one after uvicorn's keep-alive wait began. The
deadline is for the whole head, not between its parts: a client that trickles a byte every few
seconds is exactly the one to cut. A head begun and unfinished gets 408 (Request Timeout); a
connection that sent no head at all is closed without an answer, as there is no request to
answer. Once the head is complete the body has its own wait (``seamwatch.body_limits``).

Bytes the parser refuses (a malformed chunk, two Content-Length headers, a TLS handshake on
this plain port) get 400 in the same shapes, rather than uvicorn's text/plain line.

A client that shuts down its sending side once its request is whole (an HTTP/1.0 POST, ``nc
-N``) gets its answer before the connection is closed; uvicorn closed it at the client's end
of data, after the request was served but before the answer was written.
"""

from __future__ import annotations

import asyncio
import json
import logging

from google.rpc import code_pb2, status_pb2
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collector.log_throttle import LogThrottle
from seamwatch.settings import DEFAULT_HEADER_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

# The OpenTelemetry SDKs send a few hundred bytes of headers; proxies allow 8 to 64 KiB.
MAX_HEAD_BYTES = 64 * 1024
# What a header line adds to its name and value: ": " and the line end.
_HEADER_LINE_OVERHEAD = 4

_REFUSAL = b"HTTP/1.1 %s\r\ncontent-type: %s\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
_TOO_LARGE = b"431 Request Header Fields Too Large"
_TIMEOUT = b"408 Request Timeout"
_BAD_REQUEST = b"400 Bad Request"
_NOT_IMPLEMENTED = b"501 Not Implemented"
_PROTOBUF_TYPES = (b"application/x-protobuf", b"application/protobuf")
# uvicorn's warnings of requests its parser refuses, and how often one reaches the log
_UVICORN_LOGGER = "uvicorn.error"
_PARSER_WARNINGS = frozenset({"Invalid HTTP request received."})
# what such a request may be, said in its 400 and in the log
_NOT_HTTP = "a malformed request line, header or chunked body, or TLS sent to a plain HTTP port"
PARSER_WARNING_INTERVAL_SECONDS = 60.0


class BoundedHeadProtocol(HttpToolsProtocol):
    """Refuses a request whose line and headers exceed ``MAX_HEAD_BYTES``, or do not arrive
    within ``head_timeout_seconds``; :func:`bounded_head_protocol` sets the latter."""

    head_timeout_seconds = DEFAULT_HEADER_TIMEOUT_SECONDS
    _in_head = True
    _head_bytes = 0  # parts the parser handed over
    _unfinished_reads = 0  # bytes of reads that ended inside the head
    _refused = False
    _head_timer: asyncio.TimerHandle | None = None
    _head_begun = False  # the parser began a request whose head is not complete yet

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_begun = True
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
        self._head_begun = False
        self._disarm_head_timer()
        if not self._refused:
            self._refuse_unknown_transfer_coding()
        if not self._refused:
            super().on_headers_complete()

    def _refuse_unknown_transfer_coding(self) -> None:
        """501 for a transfer coding other than ``chunked`` (RFC 9112 §6.1): the parser
        would take ``gzip, chunked`` as chunked alone and hand on a body still compressed."""
        codings = [
            coding.strip().lower()
            for name, value in self.headers
            if name == b"transfer-encoding"
            for coding in value.split(b",")
        ]
        unknown = [coding for coding in codings if coding not in (b"chunked", b"")]
        if unknown:
            named = b", ".join(unknown).decode("latin-1")
            message = (
                f"Transfer-Encoding {named} is not supported; send the body chunked or with a "
                "Content-Length, compressed with Content-Encoding: gzip if at all."
            )
            self._refuse(_NOT_IMPLEMENTED, code_pb2.UNIMPLEMENTED, message)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def eof_received(self) -> bool | None:
        """The client shut down its side after sending (an HTTP/1.0 POST, ``nc -N``): keep the
        connection open for the answer to a request that arrived whole, then close it.

        uvicorn's protocols (httptools and h11 alike) return None here, which tells asyncio to
        close the transport at once: the request was served and its spans stored, but the
        answer went nowhere. No uvicorn setting changes that. A request still arriving, or
        none, is closed as before: its rest can no longer come."""
        cycle = self.cycle
        if self._refused or cycle is None or cycle.more_body or cycle.response_complete:
            return None
        cycle.keep_alive = False  # nothing more can come on this connection: close after it
        return True

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.cycle is None or self.cycle.response_complete:
            # No request in progress: these bytes begin the next head (or are the rest of a
            # body answered without being read, cut the same way). uvicorn's data handling
            # ends its keep-alive wait here, so the head's deadline takes over from it.
            self._arm_head_timer()
        super().data_received(data)
        if self._in_head and not self._refused and not self.transport.is_closing():
            # The whole read went into a head that is still incomplete.
            self._unfinished_reads += len(data)
            if self._unfinished_reads > MAX_HEAD_BYTES:
                self._refuse_head()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes its parser refuses (a malformed chunk, two Content-Length
        headers, TLS sent to this plain port): the 400 every other refusal gets, in the
        request's shape, instead of uvicorn's text/plain line."""
        message = f"The request is not valid HTTP/1.1 ({_NOT_HTTP}); send a well-formed request."
        self._refuse(_BAD_REQUEST, code_pb2.INVALID_ARGUMENT, message)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES and not self._refused:
            self._refuse_head()

    def _refuse_head(self) -> None:
        message = (
            f"The request line and headers exceed {MAX_HEAD_BYTES} bytes; send fewer or "
            "smaller headers."
        )
        logger.warning("Refused a request whose headers exceed %d bytes", MAX_HEAD_BYTES)
        self._refuse(_TOO_LARGE, code_pb2.RESOURCE_EXHAUSTED, message)

    def _arm_head_timer(self) -> None:
        """Start the head's deadline, unless it runs already (more of the same head)."""
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_late)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        """The head's deadline passed: answer 408 if a request began, and close."""
        self._head_timer = None
        if self._refused or self.transport.is_closing():
            return
        # counted nowhere and logged at debug level: a log line each would let a client
        # flood the log
        logger.debug("Closing a connection whose request head did not arrive in time")
        if not self._head_begun:
            self._refused = True
            self.transport.close()
            return
        message = (
            f"The request line and headers did not arrive within {self.head_timeout_seconds:g} s "
            "(SEAMWATCH_HEADER_TIMEOUT_SECONDS), so the connection is closed; send the whole "
            "request head at once."
        )
        self._refuse(_TIMEOUT, code_pb2.DEADLINE_EXCEEDED, message)

    def _refuse(self, status_line: bytes, code: int, message: str) -> None:
        """Answer before the application saw the request, then close the connection."""
        self._refused = True
        # the head may be refused before the parser began a message (and set these)
        url, headers = getattr(self, "url", b""), self.headers or []
        media_type, body = refusal_body(url, headers, message, code)
        self.transport.write(_REFUSAL % (status_line, media_type, len(body), body))
        self.transport.close()


def bounded_head_protocol(head_timeout_seconds: float) -> type[BoundedHeadProtocol]:
    """The protocol class to give uvicorn (``http=``), waiting ``head_timeout_seconds`` for a
    request's head; uvicorn's warning of each request its parser refuses is logged once a
    minute, as the receiver's (:class:`RepeatedParserWarnings`)."""
    RepeatedParserWarnings.install()
    attributes = {"head_timeout_seconds": head_timeout_seconds}
    return type(BoundedHeadProtocol.__name__, (BoundedHeadProtocol,), attributes)


class RepeatedParserWarnings(logging.Filter):
    """uvicorn logs a warning for every request its HTTP parser refuses: a client sending
    garbage in a loop would fill the log. This logs one a minute in the receiver's own words
    and format, saying how many were held back since the last; uvicorn's own line (its
    format, not the receiver's) is dropped."""

    _installed: RepeatedParserWarnings | None = None

    def __init__(self) -> None:
        super().__init__()
        self._throttle = LogThrottle(PARSER_WARNING_INTERVAL_SECONDS)

    @classmethod
    def install(cls) -> None:
        """Filter uvicorn's error logger, once per process."""
        if cls._installed is None:
            cls._installed = cls()
            logging.getLogger(_UVICORN_LOGGER).addFilter(cls._installed)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() not in _PARSER_WARNINGS:
            return True
        held_back = self._throttle.admit()
        if held_back is not None:
            more = f" ({held_back:,} more since the last such line)" if held_back else ""
            logger.warning("Refused a request that is not valid HTTP/1.1%s: %s", more, _NOT_HTTP)
        return False


def refusal_body(
    url: bytes,
    headers: list[tuple[bytes, bytes]],
    message: str,
    code: int = code_pb2.RESOURCE_EXHAUSTED,
) -> tuple[bytes, bytes]:
    """The media type and body of an error answer, shaped as the application shapes its own;
    ``code`` is the ``google.rpc.Code`` of a trace request's Status."""
    if url.startswith(b"/api/"):
        return b"application/json", json.dumps({"error": message}).encode()
    media_type = dict(headers).get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if media_type in _PROTOBUF_TYPES:
        status = status_pb2.Status(code=code, message=message)
        return b"application/x-protobuf", status.SerializeToString()
    document = {"code": code, "message": message}
    return b"application/json", json.dumps(document).encode()
