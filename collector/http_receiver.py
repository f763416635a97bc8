"""The OTLP/HTTP trace receiver: ``POST /v1/traces``, binary protobuf or JSON, gzip or not.

Answers follow the OTLP specification (https://opentelemetry.io/docs/specs/otlp/#otlphttp):
success only once the spans are written for good (in the spool, see ``collector.writer``); a
partial success that counts spans refused one by one; 400 for a body that cannot be decoded;
401 without the configured bearer token; 413 for a body over the limit after decompression, or
at once for a Content-Length over it; 408 when the body stops arriving for the body timeout;
431 for headers over their limit, or 408 when they do not arrive within the header timeout
(both in ``collector.http_protocol``); 415 for an unsupported media type or content
encoding; 405 for another method (on the other paths too, with a JSON ``{"error": ...}``
naming the methods allowed); 429 or 503 with Retry-After when the store cannot take the
spans now. Every error body is a ``google.rpc.Status`` in the request's
encoding. The 413 from Content-Length and the 408 close the connection: the rest of the body
is not worth reading, and may never come.

uvicorn limits neither the size of a request body nor the time it takes to arrive, so both
are enforced here, where the body is read.

Also served: ``GET /health`` (200, or 503 while the store takes no inserts), ``GET /metrics``
(Prometheus text format) and the JSON API under ``/api/``, which asks for the same bearer token
as the receiver when one is configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from datetime import UTC

from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from collector.pipeline import IngestError, IngestPipeline, Refusal, export_response
from collector.spans import SpanBatch
from collector.writer import SpanWriter
from seamwatch.api import ApiGuard, api_not_found, method_not_allowed
from seamwatch.body_limits import BodyLimits
from seamwatch.settings import DEFAULT_BODY_TIMEOUT_SECONDS

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
logger = logging.getLogger(__name__)

_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
DEFAULT_MAX_CONCURRENT_REQUESTS = 16
_BUSY_RETRY_AFTER_SECONDS = 1

_HTTP_STATUS = {
    Refusal.MALFORMED: (400, code_pb2.INVALID_ARGUMENT),
    Refusal.UNAUTHENTICATED: (401, code_pb2.UNAUTHENTICATED),
    Refusal.METHOD: (405, code_pb2.UNIMPLEMENTED),
    Refusal.TOO_LARGE: (413, code_pb2.RESOURCE_EXHAUSTED),
    Refusal.TIMEOUT: (408, code_pb2.DEADLINE_EXCEEDED),
    Refusal.UNSUPPORTED: (415, code_pb2.INVALID_ARGUMENT),
    Refusal.OVERLOADED: (429, code_pb2.RESOURCE_EXHAUSTED),
    Refusal.UNAVAILABLE: (503, code_pb2.UNAVAILABLE),
}


def create_app(
    pipeline: IngestPipeline,
    *,
    max_request_bytes: int,
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
    extra_routes: Sequence[BaseRoute] = (),
    loopback_only: bool = False,
) -> Starlette:
    """The ASGI application of the receiver, plus ``extra_routes`` (the JSON API); with
    ``loopback_only`` (it listens on a loopback address) the API answers requests addressed
    to a loopback name only (:class:`seamwatch.api.ApiGuard`).

    At most ``max_concurrent_requests`` trace requests are read and decoded at once; more get
    429 with Retry-After before their bodies are read, which bounds the memory requests take
    to about that many times ``max_request_bytes``. A request body declared larger than that
    is refused from its Content-Length before it is read; one that stops arriving for
    ``body_timeout_seconds`` gets 408, so a stalled client does not hold a slot for ever; the
    JSON API keeps the same wait, and a smaller size limit of its own (``ApiGuard``).
    """
    in_flight = 0
    limits = BodyLimits(max_request_bytes, body_timeout_seconds, _ReceiverRefusals(pipeline))

    async def traces(request: Request) -> Response:
        nonlocal in_flight
        if in_flight >= max_concurrent_requests:
            error = pipeline.refuse(
                Refusal.OVERLOADED,
                f"{in_flight} requests are being processed (limit {max_concurrent_requests}).",
                _BUSY_RETRY_AFTER_SECONDS,
            )
            return _error_response(error, _response_encoding(request))
        in_flight += 1
        try:
            return await _export(request)
        finally:
            in_flight -= 1

    async def _export(request: Request) -> Response:
        encoding = JSON
        try:
            if request.method != "POST":
                raise pipeline.refuse(Refusal.METHOD, f"{request.method} is not allowed; use POST.")
            encoding = _media_type(request, pipeline)
            pipeline.authenticate(request.headers.get("authorization"))
            limits.check_declared(request.headers)
            try:
                body = await _read_body(request, limits, pipeline)
            except ClientDisconnect:
                # The client went away before its body arrived: nobody reads an answer.
                logger.debug("Client disconnected before sending its whole request")
                return Response(status_code=400)
            batch = await run_in_threadpool(pipeline.decode, body, json=encoding == JSON)
            stored = pipeline.submit(batch)
            await _settled(stored)
            pipeline.outcome(stored, batch, "http")
        except IngestError as error:
            return _error_response(error, encoding)
        return _success_response(batch, encoding)

    async def health(request: Request) -> Response:
        return _health_response(pipeline.writer)

    async def metrics(request: Request) -> Response:
        return Response(pipeline.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return await api_not_found(request, exc)
        message = f"No such path: {request.url.path}. Traces go to POST /v1/traces."
        if _response_encoding(request) == PROTOBUF:
            status = status_pb2.Status(code=code_pb2.NOT_FOUND, message=message)
            return Response(status.SerializeToString(), 404, media_type=PROTOBUF)
        document = {"code": code_pb2.NOT_FOUND, "message": message}
        return Response(json.dumps(document), 404, media_type=JSON)

    return Starlette(
        exception_handlers={404: not_found, 405: method_not_allowed},
        middleware=[
            Middleware(
                ApiGuard,
                token=pipeline.auth_token,
                loopback_only=loopback_only,
                body_timeout_seconds=body_timeout_seconds,
            )
        ],
        routes=[
            Route("/v1/traces", traces, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *extra_routes,
        ],
    )


def _health_response(writer: SpanWriter) -> Response:
    """200 while the store takes inserts, saying so when one hangs; 503 while it takes none,
    so a probe takes notice.

    A slow store keeps its 200: the receiver still keeps what it acknowledges (in the spool),
    and taking it out of a load balancer would not make the store faster.
    """
    queued = writer.stats.queued_spans
    outage = writer.outage
    if outage is not None:
        since = outage.since.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        document = {
            "status": "degraded",
            "store": "unavailable",
            "since": since,
            "queued_spans": queued,
        }
        return JSONResponse(document, 503)
    slow = writer.slow_insert()
    if slow is not None:
        document = {
            "status": "slow",
            "store": "slow",
            "insert_seconds": round(slow.insert_seconds, 1),
            "oldest_queued_seconds": round(slow.oldest_queued_seconds, 1),
            "queued_spans": queued,
        }
        return JSONResponse(document)
    return JSONResponse({"status": "ok", "store": "available", "queued_spans": queued})


async def _settled(stored: Future) -> None:
    """Wait until the write finished, well or not; ``IngestPipeline.outcome`` reads which."""
    waiting = asyncio.wrap_future(stored)
    await asyncio.wait([waiting])
    waiting.exception()  # marks a failure as seen, so asyncio does not log it as lost


def _response_encoding(request: Request) -> str:
    """The encoding to answer in, read leniently (for answers given before validation)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return _MEDIA_TYPES.get(media_type, JSON)


def _media_type(request: Request, pipeline: IngestPipeline) -> str:
    header = request.headers.get("content-type", "")
    media_type = header.split(";", 1)[0].strip().lower()
    if media_type not in _MEDIA_TYPES:
        raise pipeline.refuse(
            Refusal.UNSUPPORTED,
            f"Content-Type {header!r} is not supported; send {PROTOBUF} or {JSON}.",
        )
    return _MEDIA_TYPES[media_type]


class _ReceiverRefusals:
    """The receiver's answers to a body over its limits (:class:`BodyLimits`): a refusal
    counted by the pipeline, answered as a Status document."""

    def __init__(self, pipeline: IngestPipeline) -> None:
        self._pipeline = pipeline

    def declared_too_large(self, declared_bytes: int, limit_bytes: int) -> IngestError:
        """413 from the Content-Length, compressed or not: a gzip body larger than the limit
        would inflate to more than it."""
        return self._pipeline.refuse(
            Refusal.TOO_LARGE,
            f"Request body of {declared_bytes} bytes (its Content-Length) is larger than the "
            f"limit of {limit_bytes} bytes (SEAMWATCH_MAX_REQUEST_BYTES); send smaller batches.",
            closes_connection=True,  # rather than read (and drop) a body this large
        )

    def too_large(self, limit_bytes: int) -> IngestError:
        """413 for a body that grew over the limit, measured after decompression."""
        return self._pipeline.refuse(
            Refusal.TOO_LARGE,
            f"Request body is larger than {limit_bytes} bytes after decompression; "
            "send smaller batches.",
        )

    def stalled(self, message: str) -> IngestError:
        """408 for a body that stopped arriving."""
        # counted in the refused requests; a log line each would let a client flood the log
        logger.debug("Closing a connection whose request body stopped arriving")
        return self._pipeline.refuse(Refusal.TIMEOUT, message, closes_connection=True)


async def _read_body(request: Request, limits: BodyLimits, pipeline: IngestPipeline) -> bytes:
    content_encoding = request.headers.get("content-encoding", "identity").strip().lower()
    chunks = _arriving(request.stream(), limits)
    if content_encoding in ("", "identity"):
        return await _read_plain(chunks, limits)
    if content_encoding == "gzip":
        return await _read_gzip(chunks, limits, pipeline)
    raise pipeline.refuse(
        Refusal.UNSUPPORTED,
        f"Content-Encoding {content_encoding!r} is not supported; send gzip or no encoding.",
    )


async def _arriving(chunks: AsyncIterator[bytes], limits: BodyLimits) -> AsyncIterator[bytes]:
    """The body's chunks, each within the body timeout (:meth:`BodyLimits.next_part`)."""
    while True:
        try:
            chunk = await limits.next_part(anext(chunks))
        except StopAsyncIteration:
            return
        yield chunk


async def _read_plain(chunks: AsyncIterator[bytes], limits: BodyLimits) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        limits.check_size(len(body))
    return bytes(body)


# inflated a piece at a time: a whole limit inflated at once was held twice, the piece and the
# body it joined (a 64 MiB bomb raised the receiver's peak memory by about 190 MiB)
INFLATE_PIECE_BYTES = 1 << 20


async def _read_gzip(
    chunks: AsyncIterator[bytes], limits: BodyLimits, pipeline: IngestPipeline
) -> bytes:
    """Inflate as the body arrives, never holding more than the limit (a gzip bomb stops here)."""
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    body = bytearray()
    received = False
    try:
        async for chunk in chunks:
            received = received or bool(chunk)
            pending = chunk
            while pending:
                room = limits.limit_bytes + 1 - len(body)
                body += inflater.decompress(pending, min(room, INFLATE_PIECE_BYTES))
                limits.check_size(len(body))
                pending = inflater.unconsumed_tail
                if inflater.eof and inflater.unused_data:
                    # Concatenated gzip members form one stream (RFC 1952 §2.2).
                    pending = inflater.unused_data + pending
                    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    except zlib.error as exc:
        raise pipeline.refuse(
            Refusal.MALFORMED, f"Content-Encoding says gzip but the body is not gzip ({exc})."
        ) from exc
    if received and not inflater.eof:
        raise pipeline.refuse(Refusal.MALFORMED, "The gzip body ends before its last block.")
    return bytes(body)


def _success_response(batch: SpanBatch, encoding: str) -> Response:
    answer = export_response(batch)
    if encoding == PROTOBUF:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    # every count written out, the 0 of a warning with nothing refused too
    document = json_format.MessageToDict(answer, always_print_fields_with_no_presence=True)
    return Response(json.dumps(document or {"partialSuccess": {}}), media_type=JSON)


def _error_response(error: IngestError, encoding: str) -> Response:
    status, code = _HTTP_STATUS[error.kind]
    headers = {}
    if error.retry_after_seconds:
        headers["Retry-After"] = str(error.retry_after_seconds)
    if error.kind is Refusal.METHOD:
        headers["Allow"] = "POST"
    if error.kind is Refusal.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = "Bearer"
    if error.closes_connection:
        headers["Connection"] = "close"
    if encoding == PROTOBUF:
        body = status_pb2.Status(code=code, message=error.message).SerializeToString()
        return Response(body, status, headers=headers, media_type=PROTOBUF)
    document = {"code": code, "message": error.message}
    return Response(json.dumps(document), status, headers=headers, media_type=JSON)
