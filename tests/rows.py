"""Spans as rows of ``otel_traces``, in the layout the OpenTelemetry ClickHouse exporter writes.

``make_span_rows`` turns short span descriptions into a pyarrow table that
``Store.insert_arrow("otel_traces", ...)`` accepts. A description names only what a test
cares about; every other column gets the exporter's value for an ordinary span.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from storage.schema import TRACE_COLUMNS, TRACES_ARROW_SCHEMA

TRACE_SCHEMA = TRACES_ARROW_SCHEMA

# Ids are unique across every call in a test run, so rows from two calls never look like
# duplicates of each other unless a test copies them on purpose.
_next_id = itertools.count(1)

_SHORTHANDS = {
    "service": "ServiceName",
    "name": "SpanName",
    "kind": "SpanKind",
    "status": "StatusCode",
    "attributes": "SpanAttributes",
    "timestamp": "Timestamp",
}


def make_span_rows(spans: Iterable[Mapping[str, Any]]) -> pa.Table:
    """A table of one row per description in ``spans``.

    A description maps exporter column names (``"ServiceName"``, ``"SpanAttributes"``, ...)
    or the shorthands ``service``, ``name``, ``kind``, ``status``, ``attributes``,
    ``timestamp`` to values, plus ``duration_ms`` for ``Duration`` in milliseconds.
    Timestamps are datetimes (naive ones are UTC); maps are dicts. Missing columns get
    defaults: now, fresh trace and span ids, a root ``Server`` span of service ``svc``
    named ``span``, 1 ms long, status ``Unset``, no events or links.
    """
    rows = [_complete(span) for span in spans]
    columns = {name: [row[name] for row in rows] for name in TRACE_COLUMNS}
    return pa.table(columns, schema=TRACE_SCHEMA)


def _complete(span: Mapping[str, Any]) -> dict[str, Any]:
    given = {_SHORTHANDS.get(key, key): value for key, value in span.items()}
    if "duration_ms" in given:
        given["Duration"] = round(given.pop("duration_ms") * 1_000_000)
    unknown = set(given) - set(TRACE_COLUMNS)
    if unknown:
        raise ValueError(f"make_span_rows got unknown columns {sorted(unknown)!r}.")

    number = next(_next_id)
    row: dict[str, Any] = {
        "Timestamp": datetime.now(UTC),
        "TraceId": f"{number:032x}",
        "SpanId": f"{number:016x}",
        "ParentSpanId": "",
        "TraceState": "",
        "SpanName": "span",
        "SpanKind": "Server",
        "ServiceName": "svc",
        "ResourceAttributes": {},
        "ScopeName": "tests",
        "ScopeVersion": "",
        "SpanAttributes": {},
        "Duration": 1_000_000,
        "StatusCode": "Unset",
        "StatusMessage": "",
    }
    row.update({name: [] for name in TRACE_COLUMNS if "." in name})
    row.update(given)
    row["Timestamp"] = _utc_naive(row["Timestamp"])
    row["Events.Timestamp"] = [_utc_naive(moment) for moment in row["Events.Timestamp"]]
    for name in ("ResourceAttributes", "SpanAttributes"):
        row[name] = list(row[name].items())
    for name in ("Events.Attributes", "Links.Attributes"):
        row[name] = [list(attributes.items()) for attributes in row[name]]
    return row


def _utc_naive(moment: datetime) -> datetime:
    # The column has no time zone; the exporter writes nanoseconds since the epoch.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def invoice_postings(start: datetime, minute: int, count: int, failed: int) -> list[dict]:
    """``count`` invoice postings to the ERP in minute ``minute`` after ``start``, for
    ``make_span_rows``; the first ``failed`` of them fail on an unmapped tax code."""
    return [
        {
            "timestamp": start + timedelta(minutes=minute, seconds=i),
            "status": "Error" if i < failed else "Unset",
            "StatusMessage": "unmapped tax code" if i < failed else "",
            "duration_ms": 200 + 10 * (i % 3),
            "attributes": {
                "integration.flow": "billing.invoice-post",
                "integration.target": "erp",
                "integration.stage": "post",
                "business.object": "Invoice",
                "business.key": f"INV-{minute}-{i}",
                "business.amount": "100.50",
            },
        }
        for i in range(count)
    ]


# Clean postings, then none for longer than the hour the runner's error-rate baseline looks
# back over, then minutes where every posting fails on a missing mapping: the flow's error
# rate and its mapping failures rise in the same minute, with no earlier rate in the hour.
QUIET_RETURN_MINUTE = 90


def failing_after_a_quiet_hour(start: datetime, failing_minutes: int = 5) -> list[dict]:
    """Invoice postings for ``make_span_rows``: twenty clean minutes from ``start``, none until
    ``QUIET_RETURN_MINUTE``, then ``failing_minutes`` where all six of each minute fail on a
    mapping (category ``mapping``)."""
    spans = []
    for minute in range(20):
        spans += invoice_postings(start, minute, 6, 0)
    for minute in range(QUIET_RETURN_MINUTE, QUIET_RETURN_MINUTE + failing_minutes):
        failing = invoice_postings(start, minute, 6, 6)
        for span in failing:
            span["attributes"]["integration.exception.category"] = "mapping"
        spans += failing
    return spans


def otlp_json_request(trace_id: str) -> dict:
    """An OTLP/JSON export request of one server span of trace ``trace_id``."""
    span = {
        "traceId": trace_id,
        "spanId": "00f067aa0ba90801",
        "name": "GET /pay",
        "kind": 2,
        "startTimeUnixNano": "1697982593201336123",
        "endTimeUnixNano": "1697982593201347750",
    }
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
