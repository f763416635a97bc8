"""Per-flow health read straight from ``otel_traces``: volume, errors and latency.

Each function takes a :class:`storage.Store`, so it runs without Streamlit and against
either backend.

Which spans count
    A span counts for a flow when it carries ``integration.flow``, or when it is where work
    enters a service: a ``Server`` or ``Consumer`` span, or a root span (a batch job, a
    scheduled task). Internal, ``Client`` and ``Producer`` spans without the attribute are
    steps inside, or the caller's view of, a hop that such an entry span already counts;
    counting them too would inflate volume and split one hop into several flows. Volume is a
    number of spans, not of business transactions.

Flow names
    ``integration.flow`` when set; else the service name joined by ``:`` to
    ``messaging.destination.name``, to ``http.route``, or to the span name, in that order.
    Such flows are marked ``derived``.

Duplicates
    Clients resend whole batches after a timeout, so the raw table may hold the same span
    more than once. Every query keeps one row per ``(TraceId, SpanId)`` before aggregating,
    so that span and error counts and latency quantiles all see each span once.

Latency quantiles use ClickHouse's ``quantiles``: exact, with linear interpolation, up to
8192 spans per group, and a sample of that size beyond.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from storage import TRACES_TABLE, Store


@dataclass(frozen=True)
class TimeRange:
    """A look-back window of the live view and the width of its chart buckets."""

    key: str
    label: str
    seconds: int
    bucket_seconds: int

    @property
    def bucket_label(self) -> str:
        """The bucket width in words, as in ``"5 min"`` or ``"1 h"``."""
        minutes = self.bucket_seconds // 60
        return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"

    def bounds(self, end: datetime | None = None) -> tuple[datetime, datetime]:
        """The window ``[start, end)`` up to ``end`` (now when not given; naive means UTC).

        ``start`` is moved back to the start of its bucket, so the first bucket of a chart
        is whole rather than a sliver that looks like a drop in traffic.
        """
        end = end or datetime.now(UTC)
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        start = pd.Timestamp(end - timedelta(seconds=self.seconds))
        return start.floor(timedelta(seconds=self.bucket_seconds)).to_pydatetime(), end


TIME_RANGES: dict[str, TimeRange] = {
    r.key: r
    for r in (
        TimeRange("1h", "Last 1 hour", 60 * 60, 60),
        TimeRange("6h", "Last 6 hours", 6 * 60 * 60, 5 * 60),
        TimeRange("24h", "Last 24 hours", 24 * 60 * 60, 15 * 60),
        TimeRange("7d", "Last 7 days", 7 * 24 * 60 * 60, 60 * 60),
    )
}
DEFAULT_TIME_RANGE_KEY = "1h"

SUMMARY_COLUMNS = [
    "flow",
    "derived",
    "spans",
    "errors",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "last_seen",
]
SERIES_COLUMNS = ["flow", "bucket", "spans", "errors", "error_rate", "p95_ms"]

_FLOW_EXPRESSION = """multiIf(
        SpanAttributes['integration.flow'] != '', SpanAttributes['integration.flow'],
        SpanAttributes['messaging.destination.name'] != '',
            concat(ServiceName, ':', SpanAttributes['messaging.destination.name']),
        SpanAttributes['http.route'] != '',
            concat(ServiceName, ':', SpanAttributes['http.route']),
        concat(ServiceName, ':', SpanName)
    )"""

_COUNTED_SPAN_CONDITION = """(
        SpanAttributes['integration.flow'] != ''
        OR SpanKind IN ('Server', 'Consumer')
        OR ParentSpanId = ''
    )"""

_NANOS_PER_MILLI = 1_000_000


def flow_spans_sql(store: Store) -> str:
    """A subquery of the counted spans in ``[start_ns, end_ns)``, one row per span.

    Columns: ``flow``, ``derived`` (1 when the name was derived), ``Timestamp``,
    ``Duration`` and ``is_error``. Takes the parameters ``start_ns`` and ``end_ns`` (Int64,
    nanoseconds since the epoch), which keeps the window independent of the server's time zone.
    """
    return f"""
    SELECT
        {_FLOW_EXPRESSION} AS flow,
        SpanAttributes['integration.flow'] = '' AS derived,
        Timestamp,
        Duration,
        StatusCode = 'Error' AS is_error
    FROM {store.table(TRACES_TABLE)}
    WHERE Timestamp >= fromUnixTimestamp64Nano({{start_ns:Int64}})
      AND Timestamp < fromUnixTimestamp64Nano({{end_ns:Int64}})
      AND {_COUNTED_SPAN_CONDITION}
    LIMIT 1 BY TraceId, SpanId
    """


def flow_summary(store: Store, time_range: TimeRange, end: datetime | None = None) -> pd.DataFrame:
    """One row per flow over the window, busiest flow first.

    Columns as in ``SUMMARY_COLUMNS``; ``error_rate`` is a fraction, ``last_seen`` a UTC
    timestamp. A flow is ``derived`` only when none of its spans named it.
    """
    sql = f"""
    SELECT
        flow,
        min(derived) AS derived,
        count() AS spans,
        countIf(is_error) AS errors,
        quantiles(0.5, 0.95)(Duration) AS latency_ns,
        toUnixTimestamp64Milli(max(Timestamp)) AS last_seen_ms
    FROM ({flow_spans_sql(store)})
    GROUP BY flow
    ORDER BY spans DESC, flow
    """
    frame = store.query_df(sql, _window_parameters(*time_range.bounds(end)))
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)

    latency = frame["latency_ns"].map(list)
    frame["p50_ms"] = latency.map(lambda q: q[0] / _NANOS_PER_MILLI)
    frame["p95_ms"] = latency.map(lambda q: q[1] / _NANOS_PER_MILLI)
    frame["last_seen"] = pd.to_datetime(frame["last_seen_ms"], unit="ms", utc=True)
    return _finish(frame, SUMMARY_COLUMNS)


def flow_series(store: Store, time_range: TimeRange, end: datetime | None = None) -> pd.DataFrame:
    """Per flow and bucket of ``time_range.bucket_seconds``: spans, errors and p95 latency.

    Buckets without spans are filled in with zero spans and no error rate or latency, so
    charts show a gap in traffic instead of a line drawn across it.
    """
    sql = f"""
    SELECT
        flow,
        toUnixTimestamp(
            toStartOfInterval(Timestamp, INTERVAL {{bucket_seconds:UInt32}} SECOND)
        ) AS bucket_s,
        count() AS spans,
        countIf(is_error) AS errors,
        quantile(0.95)(Duration) / {_NANOS_PER_MILLI} AS p95_ms
    FROM ({flow_spans_sql(store)})
    GROUP BY flow, bucket_s
    ORDER BY flow, bucket_s
    """
    start, end = time_range.bounds(end)
    parameters = _window_parameters(start, end)
    parameters["bucket_seconds"] = time_range.bucket_seconds
    frame = store.query_df(sql, parameters)
    if frame.empty:
        return pd.DataFrame(columns=SERIES_COLUMNS)

    frame["bucket"] = pd.to_datetime(frame["bucket_s"], unit="s", utc=True)
    return _fill_empty_buckets(_finish(frame, SERIES_COLUMNS), start, end, time_range)


def has_spans(store: Store) -> bool:
    """True when ``otel_traces`` holds any span at all, whatever its age."""
    rows = store.query_rows(f"SELECT 1 FROM {store.table(TRACES_TABLE)} LIMIT 1")
    return bool(rows)


def _window_parameters(start: datetime, end: datetime) -> dict[str, int]:
    return {"start_ns": _epoch_nanos(start), "end_ns": _epoch_nanos(end)}


def _epoch_nanos(moment: datetime) -> int:
    return int(pd.Timestamp(moment).value)


def _finish(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame["spans"] = frame["spans"].astype("int64")
    frame["errors"] = frame["errors"].astype("int64")
    frame["error_rate"] = frame["errors"] / frame["spans"]
    if "derived" in frame:
        frame["derived"] = frame["derived"].astype(bool)
    return frame[columns].reset_index(drop=True)


def _fill_empty_buckets(
    frame: pd.DataFrame, start: datetime, end: datetime, time_range: TimeRange
) -> pd.DataFrame:
    buckets = pd.date_range(
        start, end, freq=pd.Timedelta(seconds=time_range.bucket_seconds), inclusive="left"
    )
    grid = pd.MultiIndex.from_product(
        [frame["flow"].unique(), buckets], names=["flow", "bucket"]
    ).to_frame(index=False)
    filled = grid.merge(frame, on=["flow", "bucket"], how="left")
    filled["spans"] = filled["spans"].fillna(0).astype("int64")
    filled["errors"] = filled["errors"].fillna(0).astype("int64")
    return filled[SERIES_COLUMNS]
