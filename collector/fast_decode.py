"""OTLP/HTTP protobuf trace bodies decoded straight into ``otel_traces`` Arrow columns.

``decode_protobuf_batch`` gives exactly what ``request_to_batch`` gives for the parsed request
(same table, same rejected count and reason, same exceptions), several times faster: the C
extension ``collector._fastotlp`` reads the protobuf wire format itself and fills column
buffers, which become Arrow arrays here without a Python object per value. Without the
extension (no compiler at install time) the reference path is used.
"""

from __future__ import annotations

import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.spans import (
    TRACES_ARROW_SCHEMA,
    InvalidSpans,
    SpanBatch,
    any_value_to_string,
    request_to_batch,
)

try:
    from collector import _fastotlp
except ImportError:  # built without a C compiler: the reference path only
    _fastotlp = None

FAST_DECODER_AVAILABLE: bool = _fastotlp is not None

# Bits of the extension's rejection reasons, with the reference's wording.
_REASONS = (
    (1, "spans with an empty or all-zero trace id were rejected"),
    (2, "spans with an empty or all-zero span id were rejected"),
)

_STRING_MAP = pa.map_(pa.string(), pa.string())
_TIMESTAMP = pa.timestamp("ns")


def decode_protobuf_batch(body: bytes) -> SpanBatch:
    """Decode an ExportTraceServiceRequest body into ``otel_traces`` rows.

    Raises ``DecodeError`` for a body protobuf refuses (including invalid UTF-8 in a string
    field) and ``InvalidSpans`` for an id of the wrong length, as the reference does.
    """
    if _fastotlp is not None:
        decoded = _fastotlp.decode(body, _format_any_value, DecodeError, InvalidSpans)
        if decoded is not None:
            rows, rejected, reason_bits, buffers = decoded
            reason = "; ".join(sorted(text for bit, text in _REASONS if reason_bits & bit))
            return SpanBatch(_table(rows, buffers), rejected, reason)
        # None: a request only the reference answers exactly (e.g. times past int64).
    return request_to_batch(ExportTraceServiceRequest.FromString(body))


def _format_any_value(raw: bytes) -> str:
    """The string form of an array or map attribute value, from its serialized AnyValue."""
    return any_value_to_string(AnyValue.FromString(raw))


class _Reader:
    """Takes the extension's buffers in order and wraps them as Arrow arrays."""

    def __init__(self, buffers: tuple) -> None:
        self._buffers = iter(buffers)

    def _next(self) -> pa.Buffer:
        return pa.py_buffer(next(self._buffers))

    def offsets(self) -> tuple[pa.Buffer, int]:
        """An int32 offsets buffer and the number of items it delimits."""
        buffer = self._next()
        return buffer, buffer.size // 4 - 1

    def fixed(self, type_: pa.DataType) -> pa.Array:
        buffer = self._next()
        return pa.Array.from_buffers(type_, buffer.size // 8, [None, buffer])

    def strings(self) -> pa.Array:
        offsets, count = self.offsets()
        return pa.StringArray.from_buffers(count, offsets, self._next())

    def maps(self) -> pa.Array:
        offsets, count = self.offsets()
        keys = self.strings()
        values = self.strings()
        entries = pa.StructArray.from_arrays(
            [keys, values], fields=[_STRING_MAP.key_field, _STRING_MAP.item_field]
        )
        return pa.Array.from_buffers(_STRING_MAP, count, [None, offsets], children=[entries])


def _list(offsets: tuple[pa.Buffer, int], values: pa.Array) -> pa.Array:
    buffer, count = offsets
    return pa.Array.from_buffers(pa.list_(values.type), count, [None, buffer], children=[values])


def _table(rows: int, buffers: tuple) -> pa.Table:
    """The ``otel_traces`` table from the extension's buffers (order as in _fastotlp.c)."""
    read = _Reader(buffers)
    columns = [
        read.fixed(_TIMESTAMP),  # Timestamp
        read.strings(),  # TraceId
        read.strings(),  # SpanId
        read.strings(),  # ParentSpanId
        read.strings(),  # TraceState
        read.strings(),  # SpanName
        read.strings(),  # SpanKind
        read.strings(),  # ServiceName
        read.maps(),  # ResourceAttributes
        read.strings(),  # ScopeName
        read.strings(),  # ScopeVersion
        read.maps(),  # SpanAttributes
        read.fixed(pa.uint64()),  # Duration
        read.strings(),  # StatusCode
        read.strings(),  # StatusMessage
    ]
    events = read.offsets()
    columns += [
        _list(events, read.fixed(_TIMESTAMP)),  # Events.Timestamp
        _list(events, read.strings()),  # Events.Name
        _list(events, read.maps()),  # Events.Attributes
    ]
    links = read.offsets()
    columns += [
        _list(links, read.strings()),  # Links.TraceId
        _list(links, read.strings()),  # Links.SpanId
        _list(links, read.strings()),  # Links.TraceState
        _list(links, read.maps()),  # Links.Attributes
    ]
    assert all(len(column) == rows for column in columns)
    return pa.Table.from_arrays(columns, schema=TRACES_ARROW_SCHEMA)
