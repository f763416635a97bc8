"""Reconciliation from traces: what never reached the system of record, or reached it twice.

Everything is read from the lineage index. A *transaction* is one business key in one flow under
one correlation id; a *posting* is a trace in which the transaction reaches its target system
at stage ``post`` (the client call to it or the target's own span). A posting succeeds when none
of its posting spans failed. Transactions are judged at ``as_of``: the time of the newest span
in the index (or now, if earlier, or if no span is stored from a day before the window on), so
a pause in traffic does not turn into findings. ``as_of_basis`` says which it was.

Kinds of finding, each naming the business key, flow, systems, amount and a diagnosis:

``dropped``
    The source published the event and nobody consumed it: no consumer span in any trace of
    the transaction, and no posting within the flow's objective (or only a replayed one).
``duplicate``
    Two or more successful postings of the same transaction.
``master_data_missing``
    A posting failed because the customer or item it needs was not in the target yet. When a
    later attempt posted it, the event had arrived before its master data.
``failed``
    Postings failed for another reason and nothing posted it within the objective.
``stuck``
    The transaction started but neither posted nor failed within the objective, in a flow
    whose objects do post (a usage event that only feeds an aggregate is not stuck).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from lineage.schema import EXCEPTIONS_TABLE, LINEAGE_TABLE
from seamwatch.times import readable_utc, utc_text, utc_text_or_none
from storage import Store

logger = logging.getLogger(__name__)

DEFAULT_TARGET = "erp"
DEFAULT_WINDOW = timedelta(days=1)
# Transactions that started before the window are read this far back, so their first span is
# known and they are not mistaken for ones that started inside it.
LOOKBACK = timedelta(days=1)
OBJECTIVES: dict[str, timedelta] = {
    "api": timedelta(minutes=5),
    "event": timedelta(minutes=30),
    "canonical": timedelta(minutes=30),
    "batch": timedelta(hours=26),
}
DEFAULT_OBJECTIVE = timedelta(minutes=30)
KINDS = ("dropped", "duplicate", "master_data_missing", "failed", "stuck")
MASTER_DATA_MISSING = "master_data_missing"
# The category of a posting the target rejected because it already has the document (HTTP
# 409). After the transaction posted, that is a redelivery rightly refused, not a failure.
DUPLICATE_REJECTED = "duplicate"
# What ``as_of`` is, in a reconciliation's ``as_of_basis``.
AS_OF_NEWEST_SPAN = "newest_span"
AS_OF_NOW_NO_SPAN = "now_no_span"
AS_OF_NOW_NEWEST_SPAN_LATER = "now_newest_span_later"

FINDING_COLUMNS = [
    "kind",
    "flow",
    "business_key",
    "correlation_id",
    "business_object",
    "source",
    "target",
    "amount",
    "currency",
    "first_seen",
    "exception_category",
    "recovered",
    "recovery_seconds",
    "postings",
    "trace_ids",
    "diagnosis",
]

_POSTING = """(stage = 'post' AND target != ''
    AND (service = target OR (span_kind = 'Client' AND peer = target)))"""
_FAILED = "(status_code = 'Error' OR exception_category != '')"


class ReconcileError(ValueError):
    """The reconciliation window or target cannot be used; the message says why."""


@dataclass(frozen=True)
class Window:
    """Transactions that started in ``[since, until)``."""

    since: datetime
    until: datetime

    @classmethod
    def ending(cls, since: datetime | None, until: datetime | None) -> Window:
        """The window from optional bounds: until defaults to now, since to a day before it."""
        until = _utc(until) if until else datetime.now(UTC)
        since = _utc(since) if since else until - DEFAULT_WINDOW
        if since >= until:
            shown = readable_utc(since), readable_utc(until)
            if shown[0] == shown[1]:  # within one minute: the minutes alone would not differ
                shown = utc_text(since), utc_text(until)
            raise ReconcileError(f"since ({shown[0]}) must be before until ({shown[1]}).")
        return cls(since, until)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def objective_of(pattern: str) -> timedelta:
    """How long a transaction of integration ``pattern`` may take to post."""
    return OBJECTIVES.get(pattern, DEFAULT_OBJECTIVE)


def transactions(store: Store, window: Window, target: str = DEFAULT_TARGET) -> pd.DataFrame:
    """One row per transaction bound for ``target`` that started in the window.

    Columns: flow, business_key, correlation_id, business_object, pattern, source, target,
    amount, currency, first_seen, published, consumed, postings, first_posted,
    failed_postings, first_failure, categories, error, failed_service, replays, trace_ids,
    posted_trace_ids, last_service, last_span, rejected_redeliveries, last_seen; plus the
    attributes ``as_of`` and ``as_of_basis`` (see :func:`_as_of`).

    A trace whose only failures are the target's ``duplicate`` rejection (HTTP 409), at or
    after the transaction's first successful posting, is a redelivery the target rightly
    refused: it counts in ``rejected_redeliveries`` and in none of the failure columns
    (``failed_postings``, ``first_failure``, ``categories``, ``error``, ``failed_service``).
    """
    sql = f"""
    WITH hops AS (
        SELECT * FROM {store.table(LINEAGE_TABLE)}
        WHERE Timestamp >= fromUnixTimestamp64Nano({{read_from_ns:Int64}})
          AND business_key != '' AND target = {{target:String}}
        LIMIT 1 BY TraceId, SpanId
    ),
    traces AS (
        SELECT
            flow, business_key, correlation_id, TraceId,
            min(Timestamp) AS trace_start,
            max(Timestamp) AS trace_last,
            argMax(service, Timestamp) AS t_last_service,
            argMax(span_name, Timestamp) AS t_last_span,
            anyIf(business_object, business_object != '') AS t_business_object,
            anyIf(pattern, pattern != '') AS t_pattern,
            anyIf(source, source != '') AS t_source,
            anyIf(amount, amount IS NOT NULL) AS t_amount,
            anyIf(currency, currency != '') AS t_currency,
            countIf(span_kind = 'Producer') > 0 AS t_published,
            countIf(span_kind = 'Consumer') > 0 AS t_consumed,
            countIf({_POSTING}) AS posting_spans,
            countIf({_POSTING} AND {_FAILED}) AS failed_posting_spans,
            maxIf(Timestamp + toIntervalNanosecond(duration_ns), {_POSTING}) AS posted_at,
            minIf(Timestamp, {_FAILED}) AS failed_at,
            groupUniqArrayIf(exception_category, exception_category != '') AS t_categories,
            argMinIf(status_message, Timestamp, {_FAILED} AND status_message != '') AS t_error,
            argMaxIf(service, Timestamp, {_FAILED}) AS t_failed_service,
            max(replay) AS t_replay
        FROM hops
        GROUP BY flow, business_key, correlation_id, TraceId
    ),
    judged AS (
        SELECT *,
            -- a redelivery the target rejected as a duplicate after the transaction posted:
            -- its idempotency check working, not a failure of the transaction
            failed_at >= min(if(posting_spans > 0 AND failed_posting_spans = 0,
                                 posted_at, toDateTime64('2262-01-01', 9, 'UTC')))
                OVER (PARTITION BY flow, business_key, correlation_id)
            AND t_categories = ['{DUPLICATE_REJECTED}'] AS t_rejected
        FROM traces
    )
    SELECT
        flow, business_key, correlation_id,
        anyIf(t_business_object, t_business_object != '') AS business_object,
        anyIf(t_pattern, t_pattern != '') AS pattern,
        anyIf(t_source, t_source != '') AS source,
        {{target:String}} AS target,
        anyIf(t_amount, t_amount IS NOT NULL) AS amount,
        anyIf(t_currency, t_currency != '') AS currency,
        toUnixTimestamp64Milli(min(trace_start)) AS first_seen_ms,
        toUnixTimestamp64Milli(max(trace_last)) AS last_seen_ms,
        max(t_published) AS published,
        max(t_consumed) AS consumed,
        countIf(posting_spans > 0 AND failed_posting_spans = 0) AS postings,
        toUnixTimestamp64Milli(minIf(posted_at, posting_spans > 0 AND failed_posting_spans = 0))
            AS first_posted_ms,
        countIf(failed_posting_spans > 0 AND NOT t_rejected) AS failed_postings,
        toUnixTimestamp64Milli(
            minIf(failed_at, (length(t_categories) > 0 OR failed_posting_spans > 0)
                AND NOT t_rejected)
        ) AS first_failure_ms,
        arrayDistinct(arrayFlatten(groupArrayIf(t_categories, NOT t_rejected))) AS categories,
        argMinIf(t_error, trace_start, t_error != '' AND NOT t_rejected) AS error,
        argMinIf(t_failed_service, trace_start, t_failed_service != '' AND NOT t_rejected)
            AS failed_service,
        countIf(t_rejected) AS rejected_redeliveries,
        countIf(t_replay = 1) AS replays,
        groupArray(TraceId) AS trace_ids,
        groupArrayIf(TraceId, posting_spans > 0 AND failed_posting_spans = 0) AS posted_trace_ids,
        argMax(t_last_service, trace_last) AS last_service,
        argMax(t_last_span, trace_last) AS last_span
    FROM judged
    GROUP BY flow, business_key, correlation_id
    HAVING first_seen_ms >= {{since_ms:Int64}} AND first_seen_ms < {{until_ms:Int64}}
    ORDER BY first_seen_ms, flow, business_key
    """
    parameters = {
        "read_from_ns": _nanos(window.since - LOOKBACK),
        "since_ms": _nanos(window.since) // 1_000_000,
        "until_ms": _nanos(window.until) // 1_000_000,
        "target": target,
    }
    frame = store.query_df(sql, parameters)
    frame.attrs["as_of"], frame.attrs["as_of_basis"] = _as_of(store, window)
    return _typed(frame)


def _as_of(store: Store, window: Window) -> tuple[pd.Timestamp, str]:
    """The moment transactions are judged at, and which moment that is.

    The basis is ``newest_span`` (the newest span stored from a day before the window on),
    ``now_no_span`` (there is no such span) or ``now_newest_span_later`` (the newest span
    lies in the future, from a clock ahead of ours).
    """
    rows = store.query_rows(
        f"SELECT toUnixTimestamp64Milli(max(Timestamp)) FROM {store.table(LINEAGE_TABLE)} "
        "WHERE Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})",
        {"since_ns": _nanos(window.since - LOOKBACK)},
    )
    newest = rows[0][0] if rows and rows[0][0] else None
    now = pd.Timestamp.now(tz="UTC")
    if newest is None or pd.isna(newest):
        return now, AS_OF_NOW_NO_SPAN
    newest_span = pd.Timestamp(int(newest), unit="ms", tz="UTC")
    if newest_span > now:
        return now, AS_OF_NOW_NEWEST_SPAN_LATER
    return newest_span, AS_OF_NEWEST_SPAN


def _nanos(moment: datetime) -> int:
    return int(pd.Timestamp(moment).value)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for name in ("first_seen", "last_seen", "first_posted", "first_failure"):
        millis = frame.pop(f"{name}_ms")
        stamps = pd.to_datetime(millis, unit="ms", utc=True)
        # minIf over no rows gives the epoch; those transactions never posted (or failed).
        frame[name] = stamps.where(millis > 0)
    for name in ("published", "consumed"):
        frame[name] = frame[name].astype(bool)
    for name in ("categories", "trace_ids", "posted_trace_ids"):
        frame[name] = frame[name].map(list)
    frame["objective"] = frame["pattern"].map(objective_of)
    return frame


# ------------------------------------------------------------------------------ findings


def findings(frame: pd.DataFrame) -> pd.DataFrame:
    """The findings of the transactions in ``frame`` (from :func:`transactions`)."""
    if frame.empty:
        return pd.DataFrame(columns=FINDING_COLUMNS)
    as_of = frame.attrs["as_of"]
    posting_objects = set(zip(*_posting_pairs(frame), strict=True))
    rows = []
    for txn in frame.itertuples(index=False):
        expects_posting = (txn.flow, txn.business_object) in posting_objects
        for kind, diagnosis in _judge(txn, as_of, expects_posting):
            rows.append(_finding(txn, kind, diagnosis))
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def _posting_pairs(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    posted = frame[(frame["postings"] > 0) | (frame["failed_postings"] > 0)]
    return list(posted["flow"]), list(posted["business_object"])


def _judge(txn: Any, as_of: pd.Timestamp, expects_posting: bool) -> list[tuple[str, str]]:
    """The kinds of finding that apply to one transaction, each with its diagnosis."""
    verdicts: list[tuple[str, str]] = []
    posted = txn.postings > 0
    deadline = txn.first_seen + txn.objective
    overdue = (txn.first_posted > deadline) if posted else as_of > deadline
    objective = _duration_text(txn.objective)

    if txn.postings > 1:
        verdicts.append(
            ("duplicate", f"Posted to {txn.target} {txn.postings} times; expected once.")
        )
    if MASTER_DATA_MISSING in txn.categories:
        verdicts.append((MASTER_DATA_MISSING, _master_data_diagnosis(txn)))
    never_consumed = txn.published and not txn.consumed
    if never_consumed and (overdue or (posted and txn.replays > 0)):
        verdicts.append(("dropped", _dropped_diagnosis(txn, objective)))
        return verdicts
    if posted or not overdue or MASTER_DATA_MISSING in txn.categories:
        return verdicts
    if txn.failed_postings > 0 or txn.categories:
        where = f" at {txn.failed_service}" if txn.failed_service else ""
        category = ", ".join(sorted(txn.categories)) or "error"
        verdicts.append(
            (
                "failed",
                f"Failed{where} ({category}): {txn.error or 'no error message'}. "
                f"Not posted to {txn.target} within {objective}.",
            )
        )
    elif expects_posting:
        verdicts.append(
            (
                "stuck",
                f"No posting to {txn.target} within {objective}; last seen at "
                f"{txn.last_service} ({txn.last_span}).",
            )
        )
    return verdicts


def _master_data_diagnosis(txn: Any) -> str:
    error = txn.error or "master data missing"
    if txn.postings > 0:
        after = _duration_text(txn.first_posted - txn.first_failure)
        return (
            f"Arrived before its master data ({error}); posted to {txn.target} {after} "
            "after the first failure."
        )
    return f"Master data missing in {txn.target} ({error}); not posted yet."


def _dropped_diagnosis(txn: Any, objective: str) -> str:
    if txn.postings > 0:
        late = _duration_text(txn.first_posted - txn.first_seen)
        return (
            f"{txn.source or 'The source'} published the event but no consumer received it; "
            f"a replay posted it to {txn.target} {late} after it was published."
        )
    return (
        f"{txn.source or 'The source'} published the event but no consumer received it; "
        f"not posted to {txn.target} within {objective}."
    )


def _finding(txn: Any, kind: str, diagnosis: str) -> dict[str, Any]:
    recovered = txn.postings > 0 and kind in ("dropped", MASTER_DATA_MISSING)
    since = txn.first_failure if kind == MASTER_DATA_MISSING else txn.first_seen
    recovery = (txn.first_posted - since).total_seconds() if recovered else None
    categories = sorted(txn.categories)
    return {
        "kind": kind,
        "flow": txn.flow,
        "business_key": txn.business_key,
        "correlation_id": txn.correlation_id,
        "business_object": txn.business_object,
        "source": txn.source,
        "target": txn.target,
        "amount": None if pd.isna(txn.amount) else float(txn.amount),
        "currency": txn.currency,
        "first_seen": txn.first_seen,
        "exception_category": MASTER_DATA_MISSING
        if kind == MASTER_DATA_MISSING
        else ",".join(categories),
        "recovered": bool(recovered),
        "recovery_seconds": recovery,
        "postings": int(txn.postings),
        "trace_ids": list(txn.trace_ids),
        "diagnosis": diagnosis,
    }


def _duration_text(delta: timedelta | pd.Timedelta) -> str:
    seconds = int(pd.Timedelta(delta).total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


# ------------------------------------------------------------------------ the whole run


def reconcile(
    store: Store,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str = DEFAULT_TARGET,
    record: bool = True,
) -> dict[str, Any]:
    """Find what went wrong with transactions that started in the window; JSON-ready.

    With ``record`` the findings are written to the exceptions table (one row per finding;
    a later run replaces the row of the same kind, flow, key and correlation id).
    """
    if not target:
        raise ReconcileError("target must name a system, e.g. erp.")
    window = Window.ending(since, until)
    frame = transactions(store, window, target)
    found = findings(frame)
    if record and not found.empty:
        record_findings(store, found)
    logger.info(
        "Reconciled %d transactions to %s from %s to %s: %d findings",
        len(frame),
        target,
        window.since.isoformat(),
        window.until.isoformat(),
        len(found),
    )
    counts = found["kind"].value_counts() if not found.empty else pd.Series(dtype=int)
    document = {
        "since": utc_text_or_none(window.since),
        "until": utc_text_or_none(window.until),
        "as_of": utc_text_or_none(frame.attrs["as_of"]),
        "as_of_basis": frame.attrs["as_of_basis"],
        "target": target,
        "transactions": len(frame),
        "counts": {kind: int(counts.get(kind, 0)) for kind in KINDS},
        "findings": [_finding_json(row) for row in found.to_dict("records")],
    }
    if frame.empty:
        # no transaction may mean a target misspelt: say which ones the window has
        document["targets_in_window"] = targets_in_window(store, window)
    return document


# The targets a reconciliation without transactions names; more would be a wall of names.
SHOWN_TARGETS = 20


def targets_in_window(store: Store, window: Window) -> list[str]:
    """The systems that transactions with a business key went to in the window, sorted (at
    most :data:`SHOWN_TARGETS`)."""
    rows = store.query_rows(
        f"SELECT DISTINCT target FROM {store.table(LINEAGE_TABLE)} "
        "WHERE Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64}) "
        "AND Timestamp < fromUnixTimestamp64Nano({until_ns:Int64}) "
        "AND business_key != '' AND target != '' ORDER BY target LIMIT {shown:UInt32}",
        {
            "since_ns": _nanos(window.since),
            "until_ns": _nanos(window.until),
            "shown": SHOWN_TARGETS,
        },
    )
    return [str(row[0]) for row in rows]


def record_findings(store: Store, found: pd.DataFrame) -> int:
    """Write findings to the exceptions table, stamped with the time of detection."""
    frame = found.copy()
    frame["first_seen"] = frame["first_seen"].dt.tz_convert(None)
    frame["detected_at"] = pd.Timestamp.now(tz="UTC").tz_convert(None)
    frame["recovered"] = frame["recovered"].astype("uint8")
    frame["postings"] = frame["postings"].astype("uint32")
    schema = pa.schema(
        [
            ("kind", pa.string()),
            ("flow", pa.string()),
            ("business_key", pa.string()),
            ("correlation_id", pa.string()),
            ("business_object", pa.string()),
            ("source", pa.string()),
            ("target", pa.string()),
            ("amount", pa.float64()),
            ("currency", pa.string()),
            ("first_seen", pa.timestamp("us")),
            ("exception_category", pa.string()),
            ("recovered", pa.uint8()),
            ("recovery_seconds", pa.float64()),
            ("postings", pa.uint32()),
            ("trace_ids", pa.list_(pa.string())),
            ("diagnosis", pa.string()),
            ("detected_at", pa.timestamp("us")),
        ]
    )
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    return store.insert_arrow(EXCEPTIONS_TABLE, table)


def recorded_exceptions(store: Store, kind: str | None = None, limit: int = 1000) -> pd.DataFrame:
    """The latest recorded findings, newest first, optionally of one kind."""
    sql = f"""
    SELECT * EXCEPT detected_at, toUnixTimestamp64Milli(detected_at) AS detected_ms
    FROM {store.table(EXCEPTIONS_TABLE)} FINAL
    WHERE {{kind:String}} = '' OR kind = {{kind:String}}
    ORDER BY first_seen DESC, kind, business_key
    LIMIT {{limit:UInt32}}
    """
    frame = store.query_df(sql, {"kind": kind or "", "limit": limit})
    # stored as UInt8; answered as the true/false of a fresh reconciliation
    frame["recovered"] = frame["recovered"].astype(bool)
    return frame


def _finding_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["first_seen"] = utc_text_or_none(row["first_seen"])
    for name in ("amount", "recovery_seconds"):
        if out[name] is not None and pd.isna(out[name]):
            out[name] = None
    return out
