"""The one ingest path behind every protocol: authenticate, decode, redact, store, count.

Protocols differ only in how they carry bytes and how they word an answer. Each failure is an
``IngestError`` with a ``Refusal`` kind; the HTTP and gRPC receivers map the kind to their own
status codes, so a client sees the same decision whichever protocol it speaks.

An OTLP/JSON body of metrics or logs sent to the trace receiver is answered with success (the
specification has unknown fields ignored) and a partial success whose message says what
happened, with a warning in the log at most once a minute. A protobuf body of another signal
cannot be told apart this way: its fields share numbers with the trace request's, so it
decodes as spans of garbled fields rather than as unknown fields.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import timedelta

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.fast_decode import decode_protobuf_batch
from collector.late_spans import LateSpans
from collector.log_throttle import LogThrottle
from collector.metrics import CollectorMetrics
from collector.otlp_json import OTHER_SIGNAL_KEYS, InvalidRequest, decode_json_export
from collector.redaction import RedactionPolicy, redact_rows
from collector.spans import InvalidSpans, SpanBatch, request_to_batch
from collector.writer import Overloaded, SpanWriter, WriterClosed
from seamwatch.api import BEARER_REFUSAL, bearer_matches
from seamwatch.settings import DEFAULT_EVALUATION_DELAY_SECONDS
from storage import StoreUnavailable

logger = logging.getLogger(__name__)

# An exporter pointed at the wrong path sends every few seconds; a line a minute says enough.
_WARNING_LOG_INTERVAL_SECONDS = 60.0


def _decode_json(body: bytes) -> SpanBatch:
    export = decode_json_export(body)
    batch = request_to_batch(export.request)
    if export.other_signal is None:
        return batch
    return replace(batch, warning=_other_signal_warning(export.other_signal))


def _other_signal_warning(signal: str) -> str:
    key = OTHER_SIGNAL_KEYS[signal][0]
    return (
        f"The body holds OTLP {signal} ({key}) and no spans; Seamwatch stores traces only, so "
        f"nothing was stored. The exporter is likely pointed at the wrong path: /v1/traces "
        f"takes traces, not {signal}."
    )


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


def export_response(batch: SpanBatch) -> ExportTraceServiceResponse:
    """The OTLP answer to a stored batch: a partial success when spans were refused or the
    request draws a warning (a message with no span refused is a warning, says OTLP)."""
    answer = ExportTraceServiceResponse()
    if batch.rejected_spans or batch.warning:
        answer.partial_success.rejected_spans = batch.rejected_spans
        reasons = (batch.rejection_reason, batch.warning)
        answer.partial_success.error_message = "; ".join(reason for reason in reasons if reason)
    return answer


class IngestPipeline:
    """Decodes OTLP trace requests and hands their rows to the span writer."""

    def __init__(
        self,
        writer: SpanWriter,
        metrics: CollectorMetrics,
        redaction: RedactionPolicy,
        auth_token: str | None = None,
        evaluation_delay: timedelta = timedelta(seconds=DEFAULT_EVALUATION_DELAY_SECONDS),
        judged_until: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.redaction = redaction
        self.auth_token = auth_token
        self.late_spans = LateSpans(evaluation_delay, metrics.late_spans, judged_until)
        self._warnings_logged = LogThrottle(_WARNING_LOG_INTERVAL_SECONDS)

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
        if batch.warning:
            self._log_warning(batch.warning)
        rows = redact_rows(batch.rows, self.redaction)
        # here, off the receiver's event loop; counted once the spans are acknowledged
        return replace(batch, rows=rows, late_flows=self.late_spans.find(rows))

    def _log_warning(self, warning: str) -> None:
        held_back = self._warnings_logged.admit()
        if held_back is None:
            return
        more = f" ({held_back} more since the last such line)" if held_back else ""
        logger.warning("A trace request was answered with a warning%s: %s", more, warning)

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
        self.late_spans.record(batch.late_flows)

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
