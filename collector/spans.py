"""OTLP spans turned into ``otel_traces`` columns, valued as the ClickHouse exporter writes them.

The exporter's conventions, followed here: ids as lowercase hex (empty id as ``''``); SpanKind
``Server``/``Client``/...; StatusCode ``Unset``/``Ok``/``Error``; ServiceName from each
resource's own ``service.name``; every attribute value as one string: integers in full, doubles
in their shortest round-trip form, booleans as ``true``/``false``, bytes as base64, arrays and
maps as compact JSON.

Two deliberate deviations, both to keep the data usable: a span whose end precedes its start is
stored with Duration 0 instead of a wrapped 2^64 ns, and spans with an empty or all-zero trace or
span id are rejected one by one (counted in the partial-success answer) instead of stored.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from storage.schema import TRACE_COLUMNS, TRACES_ARROW_SCHEMA


class InvalidSpans(ValueError):
    """The request holds an id of the wrong length; the whole request is refused."""


_SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_STATUS_CODES = ("Unset", "Ok", "Error")
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_LATEST_TIME_NS = 2**63 - 1  # nanoseconds; DateTime64(9) and Arrow stop here


@dataclass(frozen=True)
class SpanBatch:
    """The rows of one request, the spans refused from it, and a warning for the client about
    the request as a whole (answered as a partial success, even with nothing refused)."""

    rows: pa.Table
    rejected_spans: int
    rejection_reason: str
    warning: str = ""
    # spans per flow that came after the detectors had judged their minute (collector.late_spans)
    late_flows: Mapping[str, int] = field(default_factory=dict)

    @property
    def accepted_spans(self) -> int:
        """Spans that will be stored."""
        return self.rows.num_rows


def format_double(value: float) -> str:
    """A double in its shortest round-trip form, as ECMAScript (and the exporter) print it.

    >>> [format_double(v) for v in (1.0, 0.5, 1e21, 1e-7, 123456789.25, -0.0)]
    ['1', '0.5', '1e+21', '1e-7', '123456789.25', '-0']
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    shortest = repr(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = shortest.partition("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        sign = exponent[0] if exponent[0] in "+-" else "+"
        return f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    text = format(Decimal(shortest), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def any_value_to_string(value: AnyValue) -> str:
    """The one string form the exporter stores for an attribute value."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return format_double(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return _to_json(value)


# Go's encoding/json, which the exporter uses for arrays and maps, escapes these for HTML.
_GO_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def json_string(text: str) -> str:
    """``text`` as a JSON string, escaped as Go's encoding/json escapes it."""
    return json.dumps(text, ensure_ascii=False).translate(_GO_JSON_ESCAPES)


def _to_json(value: AnyValue) -> str:
    """Compact JSON of a value, map keys sorted, as Go's encoding/json writes it."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return json_string(value.string_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        number = value.double_value
        return format_double(number) if math.isfinite(number) else "null"
    if kind == "bytes_value":
        return '"' + base64.b64encode(value.bytes_value).decode("ascii") + '"'
    if kind == "array_value":
        return "[" + ",".join(_to_json(item) for item in value.array_value.values) + "]"
    if kind == "kvlist_value":
        members = (
            json_string(key) + ":" + _to_json(item)
            for key, item in _last_per_key(value.kvlist_value.values)
        )
        return "{" + ",".join(members) + "}"
    return "null"


def _last_per_key(items: Any) -> list[tuple[str, AnyValue]]:
    """Map members sorted by key; a repeated key keeps its last value, as a Go map would."""
    by_key = {item.key: item.value for item in items}
    return sorted(by_key.items(), key=lambda pair: pair[0])


def _attributes(key_values: Any) -> list[tuple[str, str]]:
    # A repeated key keeps its last value, as the exporter's Go map does.
    return list({kv.key: any_value_to_string(kv.value) for kv in key_values}.items())


def _check_id(raw: bytes, size: int, what: str, span_name: str) -> None:
    if raw and len(raw) != size:
        raise InvalidSpans(
            f"Span {span_name!r} has a {what} of {len(raw)} bytes; it must be {size} bytes."
        )


class _Columns:
    """Column lists filled span by span; cheaper than building row objects."""

    def __init__(self) -> None:
        self.data: dict[str, list[Any]] = {name: [] for name in TRACE_COLUMNS}

    def to_table(self) -> pa.Table:
        return pa.table(self.data, schema=TRACES_ARROW_SCHEMA)


def request_to_batch(request: ExportTraceServiceRequest) -> SpanBatch:
    """Flatten a decoded request into ``otel_traces`` rows; raise InvalidSpans if malformed."""
    columns = _Columns()
    rejected = 0
    reasons: set[str] = set()
    for resource_spans in request.resource_spans:
        resource_attributes = _attributes(resource_spans.resource.attributes)
        service_name = dict(resource_attributes).get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                reason = _invalid_ids(span)
                if reason:
                    rejected += 1
                    reasons.add(reason)
                    continue
                _append_span(columns.data, span, resource_attributes, service_name, scope)
    message = "; ".join(sorted(reasons))
    return SpanBatch(columns.to_table(), rejected, message)


def _invalid_ids(span: Any) -> str:
    """Why the span cannot be stored (empty string if it can); wrong lengths raise."""
    _check_id(span.trace_id, 16, "trace id", span.name)
    _check_id(span.span_id, 8, "span id", span.name)
    _check_id(span.parent_span_id, 8, "parent span id", span.name)
    for link in span.links:
        _check_id(link.trace_id, 16, "link trace id", span.name)
        _check_id(link.span_id, 8, "link span id", span.name)
    if not span.trace_id or span.trace_id == _ZERO_TRACE_ID:
        return "spans with an empty or all-zero trace id were rejected"
    if not span.span_id or span.span_id == _ZERO_SPAN_ID:
        return "spans with an empty or all-zero span id were rejected"
    if span.start_time_unix_nano > _LATEST_TIME_NS or any(
        event.time_unix_nano > _LATEST_TIME_NS for event in span.events
    ):
        return "spans with times past 2262-04-11 (the end of DateTime64(9)) were rejected"
    return ""


def _append_span(
    data: dict[str, list[Any]],
    span: Any,
    resource_attributes: list[tuple[str, str]],
    service_name: str,
    scope: Any,
) -> None:
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    kind = span.kind
    code = span.status.code
    data["Timestamp"].append(start)
    data["TraceId"].append(span.trace_id.hex())
    data["SpanId"].append(span.span_id.hex())
    data["ParentSpanId"].append(span.parent_span_id.hex())
    data["TraceState"].append(span.trace_state)
    data["SpanName"].append(span.name)
    data["SpanKind"].append(_SPAN_KINDS[kind] if 0 <= kind < len(_SPAN_KINDS) else "")
    data["ServiceName"].append(service_name)
    data["ResourceAttributes"].append(resource_attributes)
    data["ScopeName"].append(scope.name)
    data["ScopeVersion"].append(scope.version)
    data["SpanAttributes"].append(_attributes(span.attributes))
    data["Duration"].append(end - start if end > start else 0)
    data["StatusCode"].append(_STATUS_CODES[code] if 0 <= code < len(_STATUS_CODES) else "")
    data["StatusMessage"].append(span.status.message)
    data["Events.Timestamp"].append([event.time_unix_nano for event in span.events])
    data["Events.Name"].append([event.name for event in span.events])
    data["Events.Attributes"].append([_attributes(event.attributes) for event in span.events])
    data["Links.TraceId"].append([link.trace_id.hex() for link in span.links])
    data["Links.SpanId"].append([link.span_id.hex() for link in span.links])
    data["Links.TraceState"].append([link.trace_state for link in span.links])
    data["Links.Attributes"].append([_attributes(link.attributes) for link in span.links])
