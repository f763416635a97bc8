"""Every hop of one business transaction, across all its traces.

A lookup starts from a business key, a correlation id or a trace id and gathers the hop spans
of the transaction from the lineage index: all traces that carry the business key, and the
traces joined to those by span links in either direction (an event consumed in a new trace, a
batch that aggregates many events). ``source="raw"`` answers the same question from
``otel_traces`` alone; the benchmark compares the two.

The answer is plain JSON-ready data, so the CLI, the API and the dashboard show the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lineage import semantics
from lineage.reconcile import DUPLICATE_REJECTED
from lineage.schema import CORRELATION_TABLE, LINEAGE_TABLE, LINKS_TABLE
from seamwatch.times import utc_text_or_none
from seamwatch.user_text import TextProblem, check_length, quoted
from storage import TRACES_TABLE, Store
from storage.schema import TRACE_ID_TS_TABLE

MAX_TRANSACTIONS = 200
MAX_LINKED_TRACES = 100
_NANOS_PER_MILLI = 1_000_000

HOP_COLUMNS = [
    "lookup_key",
    "business_key",
    "correlation_id",
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "service",
    "span_name",
    "span_kind",
    "flow",
    "flow_derived",
    "pattern",
    "stage",
    "source",
    "source_derived",
    "target",
    "target_derived",
    "peer",
    "business_object",
    "amount",
    "currency",
    "duration_ns",
    "status_code",
    "status_message",
    "exception_category",
    "replay",
    "outcome",
    "link_trace_ids",
]
_SELECT = ", ".join(HOP_COLUMNS)
# Lists travel as one JSON string: both backends bind a String the same way.
_TRACE_IDS = "JSONExtract({trace_ids:String}, 'Array(String)')"
_KEYS = "JSONExtract({keys:String}, 'Array(String)')"
SOURCES = ("index", "raw")


class LineageQueryError(ValueError):
    """The lookup was asked for nothing, for too much, or from an unknown source."""


@dataclass(frozen=True)
class LineageQuery:
    """Exactly one of a business key, a correlation id or a trace id."""

    key: str | None = None
    correlation_id: str | None = None
    trace_id: str | None = None

    def __post_init__(self) -> None:
        names = ("key", "correlation_id", "trace_id")
        blank = [
            name
            for name in names
            if getattr(self, name) is not None and not getattr(self, name).strip()
        ]
        if blank:
            # an empty value was given, not left out: say so rather than "got none"
            raise LineageQueryError(f"{blank[0]} is empty; give the value to look up.")
        given = [name for name in names if getattr(self, name)]
        if len(given) != 1:
            raise LineageQueryError(
                "Give exactly one of key, correlation_id or trace_id "
                f"(got {', '.join(given) or 'none'})."
            )
        try:
            check_length(given[0], getattr(self, given[0]))
        except TextProblem as exc:
            raise LineageQueryError(f"{exc}.") from None
        if self.trace_id:
            # Stored ids are lowercase; a trace id copied from elsewhere may not be.
            object.__setattr__(self, "trace_id", self.trace_id.strip().lower())
            if not _is_hex(self.trace_id, 32):
                raise LineageQueryError(
                    f"trace_id {quoted(self.trace_id)} is not a trace id; write 32 hex digits."
                )

    def as_dict(self) -> dict[str, str]:
        """The one field that is set, by name."""
        return {name: value for name, value in vars(self).items() if value}


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(char in "0123456789abcdef" for char in text)


def lineage(store: Store, query: LineageQuery, source: str = "index") -> dict[str, Any]:
    """The transactions, hops and traces that ``query`` finds; see docs/api.md for the shape."""
    if source not in SOURCES:
        raise LineageQueryError(f"source {quoted(source)} is not one of {', '.join(SOURCES)}.")
    reader = _IndexReader(store) if source == "index" else _RawReader(store)
    hops, truncated = _transaction_hops(reader, query)
    linked = _linked_hops(reader, hops)
    document = describe(query, hops, linked, truncated)
    if not document["found"] and query.trace_id:
        document["note"] = _trace_outside_lineage(store, query.trace_id)
    return document


def _trace_outside_lineage(store: Store, trace_id: str) -> str | None:
    """Why a stored trace has no lineage, or None when the trace is not stored at all."""
    # a resent batch stores a span twice: within one trace, distinct span ids are its spans
    sql = (
        f"SELECT uniqExact(SpanId) FROM {store.table(TRACES_TABLE)} "
        "WHERE TraceId = {trace_id:String}"
    )
    spans = store.query_rows(sql, {"trace_id": trace_id})[0][0]
    if not spans:
        return None
    return (
        f"trace {trace_id} is stored ({spans} span{'s' if spans != 1 else ''}), but none of its "
        "spans is a hop of a business transaction (integration.flow, business.key or a "
        "correlation id), so it has no lineage"
    )


def _transaction_hops(reader: _Reader, query: LineageQuery) -> tuple[pd.DataFrame, bool]:
    if query.key:
        return reader.by_keys([query.key]), False
    if query.correlation_id:
        keys, truncated = reader.keys_of_correlation(query.correlation_id)
        hops = reader.by_keys(keys)
        return hops[hops["correlation_id"] == query.correlation_id], truncated
    trace = reader.by_traces([query.trace_id])
    keys = sorted(set(trace["lookup_key"]) - {""})
    if not keys:
        return trace, False
    hops = reader.by_keys(keys)
    return pd.concat([hops, trace]).drop_duplicates(["TraceId", "SpanId"]), False


def _linked_hops(reader: _Reader, hops: pd.DataFrame) -> pd.DataFrame:
    """Hops of traces joined to ``hops`` by span links and not already among them."""
    if hops.empty:
        return hops
    own = set(hops["TraceId"])
    forward = {trace for links in hops["link_trace_ids"] for trace in links}
    backward = set(reader.traces_linking_to(sorted(own)))
    linked = sorted((forward | backward) - own)[:MAX_LINKED_TRACES]
    return reader.by_traces(linked) if linked else hops.iloc[0:0]


class _Reader:
    def __init__(self, store: Store) -> None:
        self.store = store

    def by_keys(self, keys: list[str]) -> pd.DataFrame:
        raise NotImplementedError

    def keys_of_correlation(self, correlation_id: str) -> tuple[list[str], bool]:
        raise NotImplementedError

    def traces_linking_to(self, trace_ids: list[str]) -> list[str]:
        raise NotImplementedError

    def by_traces(self, trace_ids: list[str]) -> pd.DataFrame:
        """Hop spans of whole traces, with or without business context, from otel_traces.

        The trace's bounds (whole seconds) only narrow the scan; a second more on each side,
        since a span in the bounds' last second was at times left out."""
        if not trace_ids:
            return _empty()
        traces = self.store.table(TRACES_TABLE)
        lookup = self.store.table(TRACE_ID_TS_TABLE)
        sql = f"""
        WITH bounds AS (
            SELECT min(Start) AS first, max(End) AS last FROM {lookup}
            WHERE TraceId IN {_TRACE_IDS}
        )
        SELECT {semantics.hop_columns()}
        FROM {traces}
        WHERE TraceId IN {_TRACE_IDS}
          AND Timestamp >= (SELECT first FROM bounds) - INTERVAL 1 SECOND
          AND Timestamp < (SELECT last FROM bounds) + INTERVAL 2 SECOND
          AND {semantics.IS_HOP}
        LIMIT 1 BY TraceId, SpanId
        """
        return self.store.query_df(sql, {"trace_ids": json.dumps(trace_ids)})


class _IndexReader(_Reader):
    """Reads the lineage index, the correlation map and the link table."""

    def by_keys(self, keys: list[str]) -> pd.DataFrame:
        if not keys:
            return _empty()
        sql = f"""
        SELECT {_SELECT} FROM {self.store.table(LINEAGE_TABLE)}
        WHERE lookup_key IN {_KEYS}
        LIMIT 1 BY TraceId, SpanId
        """
        return self.store.query_df(sql, {"keys": json.dumps(keys)})

    def keys_of_correlation(self, correlation_id: str) -> tuple[list[str], bool]:
        sql = f"""
        SELECT lookup_key FROM {self.store.table(CORRELATION_TABLE)}
        WHERE correlation_id = {{correlation_id:String}}
        GROUP BY lookup_key
        ORDER BY max(last_seen) DESC
        LIMIT {{limit:UInt32}}
        """
        return _capped_keys(self.store, sql, correlation_id)

    def traces_linking_to(self, trace_ids: list[str]) -> list[str]:
        sql = f"""
        SELECT DISTINCT TraceId FROM {self.store.table(LINKS_TABLE)}
        WHERE linked_trace_id IN {_TRACE_IDS}
        """
        return [row[0] for row in self.store.query_rows(sql, {"trace_ids": json.dumps(trace_ids)})]


class _RawReader(_Reader):
    """Answers from otel_traces alone, as a deployment without the derived tables would."""

    def by_keys(self, keys: list[str]) -> pd.DataFrame:
        if not keys:
            return _empty()
        sql = f"""
        SELECT {semantics.hop_columns()} FROM {self.store.table(TRACES_TABLE)}
        WHERE {semantics.LOOKUP_KEY} IN {_KEYS}
          AND {semantics.IS_HOP}
        LIMIT 1 BY TraceId, SpanId
        """
        return self.store.query_df(sql, {"keys": json.dumps(keys)})

    def keys_of_correlation(self, correlation_id: str) -> tuple[list[str], bool]:
        sql = f"""
        SELECT {semantics.LOOKUP_KEY} AS lookup_key FROM {self.store.table(TRACES_TABLE)}
        WHERE {semantics.CORRELATION_ID} = {{correlation_id:String}}
        GROUP BY lookup_key
        ORDER BY max(Timestamp) DESC
        LIMIT {{limit:UInt32}}
        """
        return _capped_keys(self.store, sql, correlation_id)

    def traces_linking_to(self, trace_ids: list[str]) -> list[str]:
        sql = f"""
        SELECT DISTINCT TraceId FROM {self.store.table(TRACES_TABLE)}
        WHERE hasAny(`Links.TraceId`, {_TRACE_IDS})
        """
        return [row[0] for row in self.store.query_rows(sql, {"trace_ids": json.dumps(trace_ids)})]


def _capped_keys(store: Store, sql: str, correlation_id: str) -> tuple[list[str], bool]:
    """The first MAX_TRANSACTIONS keys ``sql`` finds, and whether there were more."""
    rows = store.query_rows(sql, {"correlation_id": correlation_id, "limit": MAX_TRANSACTIONS + 1})
    keys = [row[0] for row in rows]
    return keys[:MAX_TRANSACTIONS], len(keys) > MAX_TRANSACTIONS


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=HOP_COLUMNS)


# ---------------------------------------------------------------------------- the answer


def describe(
    query: LineageQuery, hops: pd.DataFrame, linked: pd.DataFrame, truncated: bool = False
) -> dict[str, Any]:
    """The JSON-ready answer: transactions with their sync latency, then hops in time order."""
    hops = hops.assign(via_link=False)
    linked = linked.assign(via_link=True)
    frames = [frame for frame in (hops, linked) if not frame.empty]
    every = pd.concat(frames) if frames else _empty().assign(via_link=False)
    every = every.sort_values(["Timestamp", "TraceId", "SpanId"]).reset_index(drop=True)
    return {
        "query": query.as_dict(),
        "found": not hops.empty,
        "truncated": truncated,
        "transactions": [_transaction(group) for _, group in _by_transaction(hops)],
        "hops": _hop_records(every),
        "traces": sorted(set(every["TraceId"])),
    }


def _by_transaction(hops: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    if hops.empty:
        return []
    grouped = hops.groupby(["flow", "business_key", "correlation_id"], sort=False)
    return sorted(grouped, key=lambda item: item[1]["Timestamp"].min())


def is_posting(hops: pd.DataFrame) -> pd.Series:
    """Hops that post to the transaction's target system, from either side of the call."""
    into_target = hops["service"] == hops["target"]
    calls_target = (hops["span_kind"] == "Client") & (hops["peer"] == hops["target"])
    return (hops["stage"] == "post") & (hops["target"] != "") & (into_target | calls_target)


def is_failed(hops: pd.DataFrame) -> pd.Series:
    """Hops with an error status or an exception category."""
    return (hops["status_code"] == "Error") | (hops["exception_category"] != "")


def _transaction(group: pd.DataFrame) -> dict[str, Any]:
    first = group.iloc[0]
    start = group["Timestamp"].min()
    postings = group[is_posting(group)]
    failed_traces = set(postings.loc[is_failed(postings), "TraceId"])
    good = postings[~postings["TraceId"].isin(failed_traces)]
    # A posting is complete when the last of its spans ends (the caller has the answer).
    posted_at = _end(good).groupby(good["TraceId"]).max().min() if not good.empty else None
    failures = group[is_failed(group)]
    rejected = _rejected_redeliveries(failures, posted_at)
    rejections = failures[failures["TraceId"].isin(rejected)]
    failures = failures[~failures["TraceId"].isin(rejected)]
    amounts = group["amount"].dropna()
    return {
        "flow": first["flow"],
        "flow_derived": bool(group["flow_derived"].all()),
        "business_key": first["business_key"],
        "correlation_id": first["correlation_id"],
        "business_object": _first_value(group["business_object"]),
        "source": _first_value(group["source"]),
        "target": _first_value(group["target"]),
        "amount": float(amounts.iloc[0]) if not amounts.empty else None,
        "currency": _first_value(group["currency"]),
        "started_at": utc_text_or_none(start),
        "posted_at": utc_text_or_none(posted_at),
        "sync_latency_ms": _millis(posted_at - start) if posted_at is not None else None,
        "postings": int(good["TraceId"].nunique()),
        "failed_postings": len(failed_traces - rejected),
        "status": _status(good, failures),
        "failed_at": _hop_record(_root_cause(failures)) if not failures.empty else None,
        "stalled_after": _hop_record(group.loc[group["Timestamp"].idxmax()])
        if good.empty and failures.empty
        else None,
        "rejected_redeliveries": len(rejected),
        "rejected_redelivery": _rejection(rejections) if not rejections.empty else None,
        "traces": int(group["TraceId"].nunique()),
        "replays": int(group.loc[group["replay"].astype(bool), "TraceId"].nunique()),
    }


def _status(good: pd.DataFrame, failures: pd.DataFrame) -> str:
    if not good.empty:
        return "posted" if good["TraceId"].nunique() == 1 else "posted more than once"
    return "failed" if not failures.empty else "not posted"


def _rejected_redeliveries(failures: pd.DataFrame, posted_at: pd.Timestamp | None) -> set[str]:
    """Traces whose only failure is the target's duplicate rejection (HTTP 409) at or after
    the first successful posting: redeliveries rightly refused, not failures of the
    transaction (as in :func:`lineage.reconcile.transactions`)."""
    if posted_at is None or failures.empty:
        return set()
    rejected = set()
    for trace, hops in failures.groupby("TraceId"):
        categories = set(hops["exception_category"]) - {""}
        if categories == {DUPLICATE_REJECTED} and hops["Timestamp"].min() >= posted_at:
            rejected.add(trace)
    return rejected


def _rejection(rejections: pd.DataFrame) -> dict[str, Any]:
    """The first rejected redelivery's hop that says why (the innermost one otherwise)."""
    said = rejections[rejections["status_message"] != ""]
    return _hop_record(_root_cause(said if not said.empty else rejections))


def _root_cause(failures: pd.DataFrame) -> pd.Series:
    """The innermost failure of the first failing trace: the span that started last in it."""
    first_trace = failures.loc[failures["Timestamp"].idxmin(), "TraceId"]
    in_trace = failures[failures["TraceId"] == first_trace]
    return in_trace.loc[in_trace["Timestamp"].idxmax()]


def _hop_records(hops: pd.DataFrame) -> list[dict[str, Any]]:
    records = []
    reached = None
    for _, hop in hops.iterrows():
        record = _hop_record(hop)
        end = hop["Timestamp"] + pd.Timedelta(int(hop["duration_ns"]), unit="ns")
        record["wait_ms"] = (
            _millis(max(pd.Timedelta(0), hop["Timestamp"] - reached))
            if (reached is not None)
            else 0.0
        )
        reached = end if reached is None else max(reached, end)
        records.append(record)
    return records


def _hop_record(hop: pd.Series) -> dict[str, Any]:
    derived = [
        name
        for name, column in (("flow", "flow_derived"), ("source", "source_derived"))
        if bool(hop[column])
    ]
    if bool(hop["target_derived"]) and hop["target"]:
        derived.append("target")
    failed = hop["status_code"] == "Error" or hop["exception_category"] != ""
    amount = hop["amount"]
    return {
        "time": utc_text_or_none(hop["Timestamp"]),
        "trace_id": hop["TraceId"],
        "span_id": hop["SpanId"],
        "service": hop["service"],
        "span_name": hop["span_name"],
        "kind": hop["span_kind"],
        "flow": hop["flow"],
        "stage": hop["stage"],
        "source": hop["source"],
        "target": hop["target"],
        "peer": hop["peer"],
        "business_key": hop["business_key"],
        "business_object": hop["business_object"],
        "amount": None if pd.isna(amount) else float(amount),
        "currency": hop["currency"],
        "status": "failed" if failed else "ok",
        "status_code": hop["status_code"],
        "exception_category": hop["exception_category"],
        "error": hop["status_message"] if failed else "",
        "duration_ms": int(hop["duration_ns"]) / _NANOS_PER_MILLI,
        "replay": bool(hop["replay"]),
        "via_link": bool(hop.get("via_link", False)),
        "derived": derived,
    }


def _end(hops: pd.DataFrame) -> pd.Series:
    return hops["Timestamp"] + pd.to_timedelta(hops["duration_ns"].astype("int64"), unit="ns")


def _first_value(column: pd.Series) -> str:
    values = column[column != ""]
    return str(values.iloc[0]) if not values.empty else ""


def _millis(delta: pd.Timedelta) -> float:
    return round(delta.value / _NANOS_PER_MILLI, 3)
