"""Flow health and the system-to-system flow map, read from the per-minute rollups.

Windows are whole minutes: ``[start, end)`` is widened to the minutes it touches, because the
rollups keep one row per minute. Spans and errors are distinct ``(TraceId, SpanId)`` counts;
latency quantiles come from t-digest states (approximate, within about 1 %).

Which spans count for flow health is the live-health rule: a span that names its flow, or where
work enters a service (``Server``, ``Consumer`` or a trace root). The flow map draws one edge per
hop that crosses a system boundary: a client calling a peer, a producer writing to a topic, a
consumer reading from one.

Money is kept by currency: each span's ``business.amount`` under its ``business.currency``,
never added across currencies. Rows rolled up before the rollups kept currencies (schema
version 14) count as money of an unknown currency.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from lineage.schema import LATENCY_LEVELS, ROLLUP_TABLE
from seamwatch.money import currency_records, currency_split
from storage import Store

HEALTH_COLUMNS = [
    "flow",
    "derived",
    "spans",
    "errors",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "amount_by_currency",
    "failed_amount_by_currency",
    "last_seen",
]
EDGE_COLUMNS = [
    "caller",
    "callee",
    "business_object",
    "flow",
    "spans",
    "errors",
    "error_rate",
    "p95_ms",
]
_NANOS_PER_MILLI = 1_000_000
_LEVELS = ", ".join(str(level) for level in LATENCY_LEVELS)
_WINDOW = """minute >= toStartOfMinute(fromUnixTimestamp64Nano({start_ns:Int64}))
      AND minute < fromUnixTimestamp64Nano({end_ns:Int64})"""
_COUNTED = "(flow_derived = 0 OR span_kind IN ('Server', 'Consumer') OR is_root = 1)"


def window_parameters(start: datetime, end: datetime) -> dict[str, int]:
    """The ``start_ns`` and ``end_ns`` parameters of a window (naive datetimes are UTC)."""
    return {"start_ns": _epoch_nanos(start), "end_ns": _epoch_nanos(end)}


def _epoch_nanos(moment: datetime) -> int:
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value)


def flow_health(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per flow over the window, busiest first; columns as in ``HEALTH_COLUMNS``."""
    sql = f"""
    SELECT
        flow,
        min(flow_derived) AS derived,
        uniqCombined64Merge(spans) AS spans,
        uniqCombined64Merge(errors) AS errors,
        quantilesTDigestMerge({_LEVELS})(latency) AS latency_ns,
        sum(amount) AS amount,
        sumMap(amount_by_currency) AS amount_split,
        sum(failed_amount) AS failed_amount,
        sumMap(failed_amount_by_currency) AS failed_amount_split,
        toUnixTimestamp64Milli(max(last_seen)) AS last_seen_ms
    FROM {store.table(ROLLUP_TABLE)}
    WHERE {_WINDOW} AND {_COUNTED}
    GROUP BY flow
    ORDER BY spans DESC, flow
    """
    frame = store.query_df(sql, window_parameters(start, end))
    if frame.empty:
        return pd.DataFrame(columns=HEALTH_COLUMNS)
    latency = frame["latency_ns"].map(list)
    frame["p50_ms"] = latency.map(lambda levels: levels[0] / _NANOS_PER_MILLI)
    frame["p95_ms"] = latency.map(lambda levels: levels[1] / _NANOS_PER_MILLI)
    frame["last_seen"] = pd.to_datetime(frame["last_seen_ms"], unit="ms", utc=True)
    frame["derived"] = frame["derived"].astype(bool)
    frame["amount_by_currency"] = _by_currency(frame["amount"], frame["amount_split"])
    frame["failed_amount_by_currency"] = _by_currency(
        frame["failed_amount"], frame["failed_amount_split"]
    )
    return _with_error_rate(frame)[HEALTH_COLUMNS]


def _by_currency(totals: pd.Series, splits: pd.Series) -> list[list[dict[str, object]]]:
    """Each flow's amount as records by currency; what the split does not hold (rows of
    before the split was kept) is of an unknown currency."""
    return [
        currency_records(currency_split(total, dict(split)))
        for total, split in zip(totals, splits, strict=True)
    ]


def flow_map(store: Store, start: datetime, end: datetime, flow: str | None = None) -> pd.DataFrame:
    """One row per edge and business object: caller, callee, volume, error rate and p95.

    Topics appear as nodes named ``topic:<destination>``; ``flow`` limits the map to one flow.
    """
    sql = f"""
    SELECT
        if(span_kind = 'Consumer', peer, service) AS caller,
        if(span_kind = 'Consumer', service, peer) AS callee,
        business_object,
        any(flow) AS edge_flow,
        uniqCombined64Merge(spans) AS spans,
        uniqCombined64Merge(errors) AS errors,
        quantilesTDigestMerge({_LEVELS})(latency) AS latency_ns
    FROM {store.table(ROLLUP_TABLE)}
    WHERE {_WINDOW}
      AND peer != ''
      AND span_kind IN ('Client', 'Producer', 'Consumer')
      AND ({{flow:String}} = '' OR flow = {{flow:String}})
    GROUP BY caller, callee, business_object
    ORDER BY spans DESC, caller, callee, business_object
    """
    parameters: dict[str, object] = {**window_parameters(start, end), "flow": flow or ""}
    frame = store.query_df(sql, parameters)
    if frame.empty:
        return pd.DataFrame(columns=EDGE_COLUMNS)
    frame["p95_ms"] = frame["latency_ns"].map(lambda levels: list(levels)[1] / _NANOS_PER_MILLI)
    frame = frame.rename(columns={"edge_flow": "flow"})
    return _with_error_rate(frame)[EDGE_COLUMNS]


def _with_error_rate(frame: pd.DataFrame) -> pd.DataFrame:
    frame["spans"] = frame["spans"].astype("int64")
    frame["errors"] = frame["errors"].astype("int64")
    frame["error_rate"] = frame["errors"] / frame["spans"]
    return frame.reset_index(drop=True)
