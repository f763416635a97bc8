"""The one ingest path behind every protocol: authenticate, decode, redact, store, count.

Protocols differ only in how they carry bytes and how they word an answer. Each failure is an
``IngestError`` with a ``Refusal`` kind; the HTTP and gRPC receivers map the kind to their own
status codes, so a client sees the same decision whichever protocol it speaks.
"""

from __future__ import annotations

import enum
from concurrent.futures import Future

from google.protobuf.message import DecodeError

from collector.fast_decode import decode_protobuf_batch
from collector.metrics import CollectorMetrics
from collector.otlp_json import InvalidRequest, decode_json_request
from collector.redaction import RedactionPolicy, redact_rows
from collector.spans import InvalidSpans, SpanBatch, request_to_batch
from collector.writer import Overloaded, SpanWriter, WriterClosed
from seamwatch.api import BEARER_REFUSAL, bearer_matches
from storage import StoreUnavailable


def _decode_json(body: bytes) -> SpanBatch:
    return request_to_batch(decode_json_request(body))


def _decode_protobuf(body: bytes) -> SpanBatch:
    return decode_protobuf_batch(body)


class Refusal(enum.Enum):
    """Why a request was refused; each protocol words it with its own status code."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    UNSUPPORTED = "unsupported"
    METHOD = "method"
    UNAUTHENTICATED = "unauthenticated"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "store_unavailable"


class IngestError(Exception):
    """A refused request: the kind, a message for the client, when to retry if ever, and
    whether the connection is to be closed after the answer (the rest of its body unread)."""

    def __init__(
        self,
        kind: Refusal,
        message: str,
        retry_after_seconds: int | None = None,
        *,
        closes_connection: bool = False,
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after_seconds = retry_after_seconds
        self.closes_connection = closes_connection


class IngestPipeline:
    """Decodes OTLP trace requests and hands their rows to the span writer."""

    def __init__(
        self,
        writer: SpanWriter,
        metrics: CollectorMetrics,
        redaction: RedactionPolicy,
        auth_token: str | None = None,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.redaction = redaction
        self.auth_token = auth_token

    def authenticate(self, authorization: str | None) -> None:
        """Raise IngestError unless the Authorization value carries the configured token."""
        if not bearer_matches(authorization, self.auth_token):
            raise self.refuse(Refusal.UNAUTHENTICATED, BEARER_REFUSAL)

    def decode(self, body: bytes, *, json: bool) -> SpanBatch:
        """Decode a request body into rows to store, redacted; raise IngestError if malformed."""
        try:
            batch = (_decode_json if json else _decode_protobuf)(body)
        except DecodeError as exc:
            message = f"Body is not a valid protobuf ExportTraceServiceRequest: {exc}"
            raise self.refuse(Refusal.MALFORMED, message) from exc
        except (InvalidRequest, InvalidSpans) as exc:
            raise self.refuse(Refusal.MALFORMED, str(exc)) from exc
        if batch.rejected_spans:
            self.metrics.rejected_spans.labels("invalid_span").inc(batch.rejected_spans)
        rows = redact_rows(batch.rows, self.redaction)
        return SpanBatch(rows, batch.rejected_spans, batch.rejection_reason)

    def submit(self, batch: SpanBatch) -> Future:
        """Queue the rows; the future resolves once they are spooled. Raises IngestError."""
        try:
            return self.writer.submit(batch.rows)
        except Overloaded as exc:
            raise self.refuse(Refusal.OVERLOADED, str(exc), exc.retry_after_seconds) from exc
        except (StoreUnavailable, WriterClosed) as exc:
            raise self._unavailable(exc) from exc

    def outcome(self, spooled: Future, batch: SpanBatch, protocol: str) -> None:
        """Count a finished write, or raise the IngestError its failure means for the client."""
        try:
            spooled.result()
        except StoreUnavailable as exc:
            raise self._unavailable(exc) from exc
        self.metrics.accepted_spans.labels(protocol).inc(batch.accepted_spans)

    def refuse(
        self,
        kind: Refusal,
        message: str,
        retry_after_seconds: int | None = None,
        *,
        closes_connection: bool = False,
    ) -> IngestError:
        """Count a refused request and build the error that tells the client."""
        self.metrics.refused_requests.labels(kind.value).inc()
        return IngestError(kind, message, retry_after_seconds, closes_connection=closes_connection)

    def _unavailable(self, exc: Exception) -> IngestError:
        retry_after = self.writer.retry_after_seconds
        return self.refuse(
            Refusal.UNAVAILABLE,
            f"The store cannot take spans now ({exc}); retry after {retry_after} s.",
            retry_after,
        )
