"""Per-minute series of every flow and target system, the detectors' only input.

One query builds them, so switching to the per-minute flow rollups changes this module only.
Until then the minutes come straight from ``otel_traces``: the flow and target are the span
attributes ``integration.flow`` and ``integration.target``, a failure is a span with status
``Error``. Latency is the duration of the spans of the posting stage (``integration.stage`` =
``post``, the hop into the target system); spans without a stage count as posting, so flows
that carry no stage attribute are judged on all their spans. A minute with fewer than
``MIN_LATENCY_SPANS`` posting spans has no latency (a gap), so one slow call of a quiet flow
at night is not a drift. Clients resend batches, so each (TraceId, SpanId) is
counted once. Transactions are distinct ``business.key`` values (the trace id where a span
carries none); the money at risk of a minute is the ``business.amount`` of each failed
transaction, counted once however many of its spans failed. The minute's top error is the most
frequent message of its failed posting spans, where the target system says what it refused;
only a minute without one quotes the other failed spans (a caller's "posting failed").

Two columns feed the count-aware detectors: ``post_durations_ms``, the duration of every posting
call of the minute (the caller's client span of the posting stage; every posting span of flows
without stages), and ``failed_categories``, the distinct (exception category, transaction)
pairs of the minute's failed spans, each as ``category + "\\x1f" + transaction`` (an array of
tuples does not convert to a data frame reliably). ``category_errors`` holds a few distinct
``category + "\\x1f" + message`` pairs, so an alert on one category quotes an error of that
category rather than the minute's most frequent one. ``failed_amounts`` holds each failed
transaction with its amount, ``transaction + "\\x1f" + amount``, so an alert counts a
transaction that fails again in a later minute once; ``failed_currencies`` holds the
``business.currency`` of those that name one, ``transaction + "\\x1f" + currency``, so an alert
can say which currency its money is in. The part before the separator is written
with ``%`` and the separator percent-encoded, so a name holding ``\\x1f`` itself (span
attributes are free text) still splits at the right place; :func:`split_pair` reads an item
back.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote

import pandas as pd

from storage import Store

# Fewer posting spans than this in a minute say too little about its latency: a gap.
MIN_LATENCY_SPANS = 3
# Separates the two parts of an item of ``failed_categories`` (ASCII unit separator).
PAIR_SEPARATOR = "\x1f"

SERIES_COLUMNS = (
    "minute",
    "flow",
    "target",
    "business_object",
    "calls",
    "errors",
    "posting_calls",
    "p50_ms",
    "p95_ms",
    "transactions",
    "failed",
    "money_at_risk",
    "top_error",
    "post_durations_ms",
    "failed_categories",
    "category_errors",
    "failed_amounts",
    "failed_currencies",
)
# Distinct (category, message) pairs kept per minute for the alerts' top error.
CATEGORY_ERRORS_KEPT = 20

_MINUTES_SQL = """
SELECT
    toStartOfMinute(Timestamp) AS minute,
    flow,
    target,
    anyHeavy(business_object) AS business_object,
    count() AS calls,
    countIf(is_error) AS errors,
    countIf(is_posting) AS posting_calls,
    quantileExactIf(0.5)(Duration, is_posting) / 1e6 AS p50_ms,
    quantileExactIf(0.95)(Duration, is_posting) / 1e6 AS p95_ms,
    uniqExact(transaction) AS transactions,
    uniqExactIf(transaction, is_error) AS failed,
    arraySum(pair -> pair.2, groupUniqArrayIf((transaction, amount), is_error)) AS money_at_risk,
    if(
        countIf(is_posting_error) > 0,
        arrayStringConcat(topKIf(1)(StatusMessage, is_posting_error), ''),
        arrayStringConcat(topKIf(1)(StatusMessage, is_error), '')
    ) AS top_error,
    groupArrayIf(Duration / 1e6, is_posting_call) AS post_durations_ms,
    groupUniqArrayIf(concat({category}, char(31), transaction), category != '')
        AS failed_categories,
    groupUniqArrayIf({errors_kept})(
        concat({category}, char(31), StatusMessage), category != '' AND StatusMessage != ''
    ) AS category_errors,
    groupUniqArrayIf(concat({transaction}, char(31), toString(amount)), is_error)
        AS failed_amounts,
    groupUniqArrayIf(concat({transaction}, char(31), currency), is_error AND currency != '')
        AS failed_currencies
FROM (
    SELECT
        Timestamp,
        Duration,
        StatusMessage,
        SpanAttributes['integration.flow'] AS flow,
        SpanAttributes['integration.target'] AS target,
        SpanAttributes['business.object'] AS business_object,
        if(SpanAttributes['business.key'] != '', SpanAttributes['business.key'], TraceId)
            AS transaction,
        StatusCode = 'Error' AS is_error,
        SpanAttributes['integration.stage'] IN ('post', '') AS is_posting,
        is_error AND is_posting AND StatusMessage != '' AS is_posting_error,
        is_posting AND (SpanKind = 'Client' OR SpanAttributes['integration.stage'] = '')
            AS is_posting_call,
        SpanAttributes['integration.exception.category'] AS category,
        toFloat64OrZero(SpanAttributes['business.amount']) AS amount,
        SpanAttributes['business.currency'] AS currency
    FROM {traces}
    WHERE Timestamp >= {start:DateTime64(9)}
        AND Timestamp < {end:DateTime64(9)}
        AND SpanAttributes['integration.flow'] != ''
    LIMIT 1 BY TraceId, SpanId
)
GROUP BY minute, flow, target
ORDER BY minute, flow, target
"""

_BOUNDS_SQL = """
SELECT min(Timestamp), max(Timestamp), count()
FROM {traces}
WHERE SpanAttributes['integration.flow'] != ''
"""


def read_minutes(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """Per-minute rows of every (flow, target) with spans in ``[start, end)`` (UTC).

    ``minute`` is a naive UTC timestamp; minutes without spans have no row.
    """
    sql = (
        _MINUTES_SQL.replace("{traces}", store.table("otel_traces"))
        .replace("{errors_kept}", str(CATEGORY_ERRORS_KEPT))
        .replace("{category}", _written("category"))
        .replace("{transaction}", _written("transaction"))
    )
    frame = store.query_df(sql, {"start": _naive(start), "end": _naive(end)})
    if frame.empty:
        return pd.DataFrame({name: [] for name in SERIES_COLUMNS})
    frame["minute"] = pd.to_datetime(frame["minute"]).dt.tz_localize(None)
    too_few = frame["posting_calls"] < MIN_LATENCY_SPANS
    frame.loc[too_few, ["p50_ms", "p95_ms"]] = float("nan")
    return frame


def split_pair(item: str) -> tuple[str, str]:
    """A ``failed_categories``, ``category_errors`` or ``failed_amounts`` item as its two
    parts; the first is decoded, the second taken as it is."""
    first, _, rest = item.partition(PAIR_SEPARATOR)
    return unquote(first), rest


def _written(column: str) -> str:
    """SQL of ``column`` as written before the separator: ``%`` and the separator encoded."""
    return f"replaceAll(replaceAll({column}, '%', '%25'), char(31), '%1F')"


def data_bounds(store: Store) -> tuple[datetime, datetime] | None:
    """First and last span time (naive UTC) of spans that name a flow; None when there are none."""
    sql = _BOUNDS_SQL.replace("{traces}", store.table("otel_traces"))
    first, last, count = store.query_rows(sql)[0]
    if not count:
        return None
    return _whole_micros(first), _whole_micros(last)


def _whole_micros(value: object) -> datetime:
    return pd.Timestamp(value).floor("us").to_pydatetime()


def _naive(moment: datetime) -> str:
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
