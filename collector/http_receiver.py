"""The OTLP/HTTP trace receiver: ``POST /v1/traces``, binary protobuf or JSON, gzip or not.

Answers follow the OTLP specification (https://opentelemetry.io/docs/specs/otlp/#otlphttp):
success only after the spans are stored; a partial success that counts spans refused one by
one; 400 for a body that cannot be decoded; 413 for a body over the limit after decompression;
415 for an unsupported media type or content encoding; 405 for another method; 429 or 503
with Retry-After when the store cannot take the spans now. Every error body is a
``google.rpc.Status`` in the request's encoding.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collector.otlp_json import InvalidRequest, decode_json_request
from collector.spans import InvalidSpans, SpanBatch, request_to_batch
from collector.writer import Overloaded, SpanWriter, WriterClosed
from storage import QueryError, StoreUnavailable

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}

# google.rpc.Code values used in Status bodies.
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_UNIMPLEMENTED = 12
_INTERNAL = 13
_UNAVAILABLE = 14


class _HttpError(Exception):
    def __init__(self, status: int, code: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


@dataclass
class ReceiverStats:
    """Counts of what the receiver answered, for logs and metrics."""

    accepted_spans: int = 0
    rejected_spans: int = 0
    refused_requests: int = 0


def create_app(writer: SpanWriter, *, max_request_bytes: int) -> Starlette:
    """The ASGI application of the receiver, writing through ``writer``."""
    stats = ReceiverStats()

    async def traces(request: Request) -> Response:
        encoding = JSON
        try:
            if request.method != "POST":
                raise _HttpError(405, _UNIMPLEMENTED, f"{request.method} is not allowed; use POST.")
            encoding = _media_type(request)
            body = await _read_body(request, max_request_bytes)
            batch = await run_in_threadpool(_decode, body, encoding)
            await _store(writer, batch)
        except _HttpError as error:
            stats.refused_requests += 1
            return _error_response(error, encoding)
        stats.accepted_spans += batch.accepted_spans
        stats.rejected_spans += batch.rejected_spans
        return _success_response(batch, encoding)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "queued_spans": writer.stats.queued_spans})

    app = Starlette(
        routes=[
            Route("/v1/traces", traces, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.state.receiver_stats = stats
    return app


def _media_type(request: Request) -> str:
    header = request.headers.get("content-type", "")
    media_type = header.split(";", 1)[0].strip().lower()
    if media_type not in _MEDIA_TYPES:
        raise _HttpError(
            415,
            _INVALID_ARGUMENT,
            f"Content-Type {header!r} is not supported; send {PROTOBUF} or {JSON}.",
        )
    return _MEDIA_TYPES[media_type]


async def _read_body(request: Request, limit_bytes: int) -> bytes:
    content_encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if content_encoding in ("", "identity"):
        return await _read_plain(request.stream(), limit_bytes)
    if content_encoding == "gzip":
        return await _read_gzip(request.stream(), limit_bytes)
    raise _HttpError(
        415,
        _INVALID_ARGUMENT,
        f"Content-Encoding {content_encoding!r} is not supported; send gzip or no encoding.",
    )


def _too_large(limit_bytes: int) -> _HttpError:
    return _HttpError(
        413,
        _RESOURCE_EXHAUSTED,
        f"Request body is larger than {limit_bytes} bytes after decompression; "
        "send smaller batches.",
    )


async def _read_plain(chunks: AsyncIterator[bytes], limit_bytes: int) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit_bytes:
            raise _too_large(limit_bytes)
    return bytes(body)


async def _read_gzip(chunks: AsyncIterator[bytes], limit_bytes: int) -> bytes:
    """Inflate as the body arrives, never holding more than the limit (a gzip bomb stops here)."""
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    body = bytearray()
    received = False
    try:
        async for chunk in chunks:
            received = received or bool(chunk)
            pending = chunk
            while pending:
                body += inflater.decompress(pending, limit_bytes + 1 - len(body))
                if len(body) > limit_bytes:
                    raise _too_large(limit_bytes)
                pending = inflater.unconsumed_tail
                if inflater.eof and inflater.unused_data:
                    # Concatenated gzip members form one stream (RFC 1952 §2.2).
                    pending = inflater.unused_data + pending
                    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    except zlib.error as exc:
        raise _HttpError(
            400,
            _INVALID_ARGUMENT,
            f"Content-Encoding says gzip but the body is not gzip ({exc}).",
        ) from exc
    if received and not inflater.eof:
        raise _HttpError(400, _INVALID_ARGUMENT, "The gzip body ends before its last block.")
    return bytes(body)


def _decode(body: bytes, encoding: str) -> SpanBatch:
    try:
        if encoding == PROTOBUF:
            request = ExportTraceServiceRequest.FromString(body)
        else:
            request = decode_json_request(body)
        return request_to_batch(request)
    except DecodeError as exc:
        raise _HttpError(
            400, _INVALID_ARGUMENT, f"Body is not a valid protobuf ExportTraceServiceRequest: {exc}"
        ) from exc
    except (InvalidRequest, InvalidSpans) as exc:
        raise _HttpError(400, _INVALID_ARGUMENT, str(exc)) from exc


async def _store(writer: SpanWriter, batch: SpanBatch) -> None:
    retry_after = writer.retry_after_seconds
    try:
        await asyncio.wrap_future(writer.submit(batch.rows))
    except Overloaded as exc:
        raise _HttpError(429, _RESOURCE_EXHAUSTED, str(exc), exc.retry_after_seconds) from exc
    except (StoreUnavailable, WriterClosed) as exc:
        message = f"The store cannot take spans now ({exc}); retry later."
        raise _HttpError(503, _UNAVAILABLE, message, retry_after) from exc
    except QueryError as exc:
        logger.error("Store refused %d spans: %s", batch.accepted_spans, exc)
        raise _HttpError(
            500, _INTERNAL, "The store refused the spans; see the collector log."
        ) from exc


def _success_response(batch: SpanBatch, encoding: str) -> Response:
    answer = ExportTraceServiceResponse()
    if batch.rejected_spans:
        answer.partial_success.rejected_spans = batch.rejected_spans
        answer.partial_success.error_message = batch.rejection_reason
    if encoding == PROTOBUF:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    document = json_format.MessageToDict(answer) or {"partialSuccess": {}}
    return Response(json.dumps(document), media_type=JSON)


def _error_response(error: _HttpError, encoding: str) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
    if error.status == 405:
        headers["Allow"] = "POST"
    if encoding == PROTOBUF:
        status = status_pb2.Status(code=error.code, message=error.message)
        return Response(
            status.SerializeToString(), error.status, headers=headers, media_type=PROTOBUF
        )
    document = {"code": error.code, "message": error.message}
    return Response(json.dumps(document), error.status, headers=headers, media_type=JSON)
