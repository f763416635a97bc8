"""The derived tables of lineage, flow health and reconciliation, and the views that fill them.

Every view reads ``otel_traces``, so the tables fill the same way whichever writer inserted the
spans: Seamwatch's collector or the OpenTelemetry Collector's ClickHouse exporter.

Resent batches
    Clients resend a whole batch after a timeout, so ``otel_traces`` may hold a span twice.
    A materialized view sees one insert at a time and cannot know the earlier copy, so each
    table is designed so that a second copy changes no answer:

    * the lineage index, the correlation map and the link table are ReplacingMergeTree tables
      whose sorting key ends in the span's ``(TraceId, SpanId)``; readers take one row per span
      (``LIMIT 1 BY`` or ``FINAL``) until background merges remove the copy;
    * the flow rollups count spans and errors with ``uniqCombined64`` states of
      ``(TraceId, SpanId)``, so a copy is not counted again. Latency digests and amount sums
      cannot tell a copy from a span and weigh a resent span twice; the lineage index, which
      holds each span once, is the source of every money figure of transactions (KPIs,
      reconciliation, exceptions, alerts). The rollups' amounts serve flow health only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lineage import semantics

if TYPE_CHECKING:
    from storage.base import Store

# storage.schema imports this module to list its migrations, so the name is repeated here.
TRACES_TABLE = "otel_traces"

LINEAGE_TABLE = "seamwatch_lineage"
LINEAGE_VIEW = "seamwatch_lineage_mv"
CORRELATION_TABLE = "seamwatch_lineage_correlation"
CORRELATION_VIEW = "seamwatch_lineage_correlation_mv"
LINKS_TABLE = "seamwatch_span_links"
LINKS_VIEW = "seamwatch_span_links_mv"
ROLLUP_TABLE = "seamwatch_flow_minute"
ROLLUP_VIEW = "seamwatch_flow_minute_mv"
EXCEPTIONS_TABLE = "seamwatch_exceptions"

LATENCY_LEVELS = (0.5, 0.95, 0.99)
_LEVELS = ", ".join(str(level) for level in LATENCY_LEVELS)


def _ttl(column: str, retention_days: int | None) -> str:
    if retention_days is None:
        return ""
    return f"TTL toDateTime({column}) + toIntervalDay({int(retention_days)})"


def lineage_tables(store: Store, retention_days: int | None) -> list[str]:
    """Version 10: the lineage index, the correlation map and the span links."""
    return (
        lineage_index(store, retention_days)
        + correlation_map(store, retention_days)
        + span_links(store, retention_days)
    )


def lineage_index(store: Store, retention_days: int | None) -> list[str]:
    """One row per hop span with business context, found by business key."""
    table = store.table(LINEAGE_TABLE)
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {table} (
            lookup_key String,
            business_key String,
            correlation_id String,
            Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
            TraceId String,
            SpanId String,
            ParentSpanId String,
            service LowCardinality(String),
            span_name LowCardinality(String),
            span_kind LowCardinality(String),
            flow LowCardinality(String),
            flow_derived UInt8,
            pattern LowCardinality(String),
            stage LowCardinality(String),
            source LowCardinality(String),
            source_derived UInt8,
            target LowCardinality(String),
            target_derived UInt8,
            peer LowCardinality(String),
            business_object LowCardinality(String),
            amount Nullable(Float64),
            currency LowCardinality(String),
            duration_ns UInt64 CODEC(T64, ZSTD(1)),
            status_code LowCardinality(String),
            status_message String CODEC(ZSTD(1)),
            exception_category LowCardinality(String),
            replay UInt8,
            outcome LowCardinality(String),
            link_trace_ids Array(String)
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(Timestamp)
        ORDER BY (lookup_key, TraceId, SpanId)
        {_ttl("Timestamp", retention_days)}
        SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
        """,
        f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS {store.table(LINEAGE_VIEW)} TO {table}
        AS SELECT {semantics.hop_columns()}
        FROM {store.table(TRACES_TABLE)}
        WHERE {semantics.HAS_BUSINESS_CONTEXT} AND {semantics.IS_HOP}
        """,
    ]


def correlation_map(store: Store, retention_days: int | None) -> list[str]:
    """Which business keys (lookup keys) each correlation id ties together."""
    table = store.table(CORRELATION_TABLE)
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {table} (
            correlation_id String,
            lookup_key String,
            flow LowCardinality(String),
            business_object LowCardinality(String),
            first_seen SimpleAggregateFunction(min, DateTime64(9)),
            last_seen SimpleAggregateFunction(max, DateTime64(9))
        ) ENGINE = AggregatingMergeTree
        PARTITION BY toYYYYMM(first_seen)
        ORDER BY (correlation_id, lookup_key, flow, business_object)
        {_ttl("first_seen", retention_days)}
        """,
        f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS {store.table(CORRELATION_VIEW)} TO {table}
        AS SELECT
            {semantics.CORRELATION_ID} AS correlation_id,
            {semantics.LOOKUP_KEY} AS lookup_key,
            {semantics.FLOW} AS flow,
            {semantics.attribute("business.object")} AS business_object,
            min(Timestamp) AS first_seen,
            max(Timestamp) AS last_seen
        FROM {store.table(TRACES_TABLE)}
        WHERE {semantics.CORRELATION_ID} != '' AND {semantics.IS_HOP}
        GROUP BY correlation_id, lookup_key, flow, business_object
        """,
    ]


def span_links(store: Store, retention_days: int | None) -> list[str]:
    """Span links, found by the trace they point to (follows async hops back)."""
    table = store.table(LINKS_TABLE)
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {table} (
            linked_trace_id String,
            linked_span_id String,
            TraceId String,
            SpanId String,
            Timestamp DateTime64(9)
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(Timestamp)
        ORDER BY (linked_trace_id, TraceId, SpanId, linked_span_id)
        {_ttl("Timestamp", retention_days)}
        """,
        f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS {store.table(LINKS_VIEW)} TO {table}
        AS SELECT
            linked_trace_id,
            linked_span_id,
            TraceId,
            SpanId,
            Timestamp
        FROM {store.table(TRACES_TABLE)}
        ARRAY JOIN `Links.TraceId` AS linked_trace_id, `Links.SpanId` AS linked_span_id
        WHERE notEmpty(`Links.TraceId`)
        """,
    ]


def flow_rollups(store: Store, retention_days: int | None) -> list[str]:
    """Version 11: per-minute volume, errors, latency and amounts of every flow and edge."""
    table = store.table(ROLLUP_TABLE)
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {table} (
            minute DateTime,
            flow LowCardinality(String),
            flow_derived UInt8,
            source LowCardinality(String),
            target LowCardinality(String),
            target_derived UInt8,
            business_object LowCardinality(String),
            service LowCardinality(String),
            span_kind LowCardinality(String),
            is_root UInt8,
            peer LowCardinality(String),
            spans AggregateFunction(uniqCombined64, String, String),
            errors AggregateFunction(uniqCombined64, String, String),
            exceptions AggregateFunction(uniqCombined64, String, String),
            latency AggregateFunction(quantilesTDigest({_LEVELS}), UInt64),
            amount SimpleAggregateFunction(sum, Float64),
            failed_amount SimpleAggregateFunction(sum, Float64),
            last_seen SimpleAggregateFunction(max, DateTime64(9))
        ) ENGINE = AggregatingMergeTree
        PARTITION BY toDate(minute)
        ORDER BY (minute, flow, source, target, business_object, service, span_kind, is_root,
                  peer, flow_derived, target_derived)
        {_ttl("minute", retention_days)}
        SETTINGS ttl_only_drop_parts = 1
        """,
        f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS {store.table(ROLLUP_VIEW)} TO {table}
        AS {_rollup_query(store, by_currency=False)}
        """,
    ]


def rollup_currencies(store: Store, retention_days: int | None) -> list[str]:
    """Version 14: the rollups' amounts by currency, so flow health adds no currencies up.

    ``amount`` and ``failed_amount`` sum every currency together; the new columns sum each
    span's ``business.amount`` under its own ``business.currency`` ('' when it names none).
    Rows stored before keep their totals and read an empty split, so readers take what the
    split does not explain as money of an unknown currency. The view's query is replaced in
    place; running both statements again changes nothing.
    """
    table = store.table(ROLLUP_TABLE)
    split = "SimpleAggregateFunction(sumMap, Map(String, Float64))"
    return [
        f"ALTER TABLE {table} "
        f"ADD COLUMN IF NOT EXISTS amount_by_currency {split} AFTER failed_amount, "
        f"ADD COLUMN IF NOT EXISTS failed_amount_by_currency {split} AFTER amount_by_currency",
        f"ALTER TABLE {store.table(ROLLUP_VIEW)} MODIFY QUERY "
        f"{_rollup_query(store, by_currency=True)}",
    ]


def _rollup_query(store: Store, by_currency: bool) -> str:
    """The select of the rollup view; ``by_currency`` adds the amounts by currency."""
    amount = semantics.AMOUNT
    # each span's amount under its currency; spans without an amount add no key
    split = f"map({semantics.attribute('business.currency')}, assumeNotNull({amount}))"
    currencies = (
        f"""sumMapIf({split}, {amount} IS NOT NULL) AS amount_by_currency,
            sumMapIf({split}, {amount} IS NOT NULL AND {semantics.FAILED})
                AS failed_amount_by_currency,"""
        if by_currency
        else ""
    )
    return f"""SELECT
            toStartOfMinute(Timestamp) AS minute,
            {semantics.FLOW} AS flow,
            {semantics.FLOW_DERIVED} AS flow_derived,
            {semantics.SOURCE} AS source,
            {semantics.TARGET} AS target,
            {semantics.TARGET_DERIVED} AS target_derived,
            {semantics.attribute("business.object")} AS business_object,
            ServiceName AS service,
            SpanKind AS span_kind,
            ParentSpanId = '' AS is_root,
            {semantics.PEER} AS peer,
            uniqCombined64State(TraceId, SpanId) AS spans,
            uniqCombined64StateIf(TraceId, SpanId, StatusCode = 'Error') AS errors,
            uniqCombined64StateIf(TraceId, SpanId, {semantics.FAILED}) AS exceptions,
            quantilesTDigestState({_LEVELS})(Duration) AS latency,
            sum(ifNull({amount}, 0)) AS amount,
            sumIf(ifNull({amount}, 0), {semantics.FAILED}) AS failed_amount,
            {currencies}
            max(Timestamp) AS last_seen
        FROM {store.table(TRACES_TABLE)}
        WHERE {semantics.IN_ROLLUP}
        GROUP BY minute, flow, flow_derived, source, target, target_derived, business_object,
                 service, span_kind, is_root, peer"""


def exceptions_table(store: Store, retention_days: int | None) -> list[str]:
    """Version 13: reconciliation findings, one row per finding, the latest detection kept."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table(EXCEPTIONS_TABLE)} (
            kind LowCardinality(String),
            flow LowCardinality(String),
            business_key String,
            correlation_id String,
            business_object LowCardinality(String),
            source LowCardinality(String),
            target LowCardinality(String),
            amount Nullable(Float64),
            currency LowCardinality(String),
            first_seen DateTime64(3),
            exception_category LowCardinality(String),
            recovered UInt8,
            recovery_seconds Nullable(Float64),
            postings UInt32,
            trace_ids Array(String),
            diagnosis String,
            detected_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(detected_at)
        PARTITION BY toYYYYMM(first_seen)
        ORDER BY (kind, flow, business_key, correlation_id)
        {_ttl("first_seen", retention_days)}
        """
    ]
