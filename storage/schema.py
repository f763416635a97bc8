"""Tables and their versions.

``otel_traces``, ``otel_traces_trace_id_ts`` and its materialized view have the columns, types,
partitioning and ordering that the OpenTelemetry Collector contrib ClickHouse exporter creates,
so either writer can fill them and every reader works on both. Seamwatch's own tables follow as
later versions. Each migration runs once, in order; ``seamwatch_schema`` records which ran.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from storage.base import Store

logger = logging.getLogger(__name__)

TRACES_TABLE = "otel_traces"
TRACE_ID_TS_TABLE = "otel_traces_trace_id_ts"
TRACE_ID_TS_VIEW = "otel_traces_trace_id_ts_mv"
SCHEMA_TABLE = "seamwatch_schema"
# how far each detector runner has judged (detectors.runner; read by the receiver too)
DETECTOR_STATE_TABLE = "detector_state"

TRACE_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)

_STRING_MAP = pa.map_(pa.string(), pa.string())

# The Arrow form of those columns: what writers hand to ``Store.insert_arrow``.
TRACES_ARROW_SCHEMA = pa.schema(
    [
        ("Timestamp", pa.timestamp("ns")),
        ("TraceId", pa.string()),
        ("SpanId", pa.string()),
        ("ParentSpanId", pa.string()),
        ("TraceState", pa.string()),
        ("SpanName", pa.string()),
        ("SpanKind", pa.string()),
        ("ServiceName", pa.string()),
        ("ResourceAttributes", _STRING_MAP),
        ("ScopeName", pa.string()),
        ("ScopeVersion", pa.string()),
        ("SpanAttributes", _STRING_MAP),
        ("Duration", pa.uint64()),
        ("StatusCode", pa.string()),
        ("StatusMessage", pa.string()),
        ("Events.Timestamp", pa.list_(pa.timestamp("ns"))),
        ("Events.Name", pa.list_(pa.string())),
        ("Events.Attributes", pa.list_(_STRING_MAP)),
        ("Links.TraceId", pa.list_(pa.string())),
        ("Links.SpanId", pa.list_(pa.string())),
        ("Links.TraceState", pa.list_(pa.string())),
        ("Links.Attributes", pa.list_(_STRING_MAP)),
    ]
)
assert tuple(TRACES_ARROW_SCHEMA.names) == TRACE_COLUMNS


@dataclass(frozen=True)
class Migration:
    """One forward step of the schema; ``statements`` builds its SQL for a store."""

    version: int
    description: str
    statements: Callable[[Store, int | None], list[str]]


def _ttl(column: str, retention_days: int | None) -> str:
    if retention_days is None:
        return ""
    return f"TTL toDateTime({column}) + toIntervalDay({int(retention_days)})"


def _exporter_tables(store: Store, retention_days: int | None) -> list[str]:
    traces = store.table(TRACES_TABLE)
    lookup = store.table(TRACE_ID_TS_TABLE)
    view = store.table(TRACE_ID_TS_VIEW)
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {traces} (
            Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
            TraceId String CODEC(ZSTD(1)),
            SpanId String CODEC(ZSTD(1)),
            ParentSpanId String CODEC(ZSTD(1)),
            TraceState String CODEC(ZSTD(1)),
            SpanName LowCardinality(String) CODEC(ZSTD(1)),
            SpanKind LowCardinality(String) CODEC(ZSTD(1)),
            ServiceName LowCardinality(String) CODEC(ZSTD(1)),
            ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
            ScopeName String CODEC(ZSTD(1)),
            ScopeVersion String CODEC(ZSTD(1)),
            SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
            Duration UInt64 CODEC(T64, ZSTD(1)),
            StatusCode LowCardinality(String) CODEC(ZSTD(1)),
            StatusMessage String CODEC(ZSTD(1)),
            Events Nested (
                Timestamp DateTime64(9),
                Name LowCardinality(String),
                Attributes Map(LowCardinality(String), String)
            ) CODEC(ZSTD(1)),
            Links Nested (
                TraceId String,
                SpanId String,
                TraceState String,
                Attributes Map(LowCardinality(String), String)
            ) CODEC(ZSTD(1)),
            INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
            INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01)
                GRANULARITY 1,
            INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01)
                GRANULARITY 1,
            INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01)
                GRANULARITY 1,
            INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01)
                GRANULARITY 1,
            INDEX idx_duration Duration TYPE minmax GRANULARITY 1
        ) ENGINE = MergeTree
        PARTITION BY toDate(Timestamp)
        PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
        ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
        {_ttl("Timestamp", retention_days)}
        SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {lookup} (
            TraceId String CODEC(ZSTD(1)),
            Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
            End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
        ) ENGINE = AggregatingMergeTree
        PARTITION BY toStartOfWeek(Start)
        ORDER BY (TraceId)
        {_ttl("Start", retention_days)}
        SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
        """,
        f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {lookup}
        AS SELECT
            TraceId,
            min(Timestamp) AS Start,
            max(Timestamp) AS End
        FROM {traces}
        WHERE TraceId != ''
        GROUP BY TraceId
        """,
    ]


def _alert_tables(store: Store, retention_days: int | None) -> list[str]:
    """Alerts (one row per version, newest wins), their events, silences and acks."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("alerts")} (
            alert_id String,
            flow LowCardinality(String),
            target LowCardinality(String),
            business_object LowCardinality(String),
            kind LowCardinality(String),
            kinds Array(LowCardinality(String)),
            state LowCardinality(String),
            opened_at DateTime64(3, 'UTC'),
            updated_at DateTime64(3, 'UTC'),
            resolved_at Nullable(DateTime64(3, 'UTC')),
            signal LowCardinality(String),
            score Float64,
            peak_score Float64,
            baseline Float64,
            observed Float64,
            affected UInt64,
            failed UInt64,
            money_at_risk Float64,
            top_error String,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY alert_id
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("alert_events")} (
            alert_id String,
            at DateTime64(3, 'UTC'),
            event LowCardinality(String),
            kind LowCardinality(String),
            score Float64,
            detail String
        ) ENGINE = ReplacingMergeTree
        ORDER BY (alert_id, at, event, kind)
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("alert_silences")} (
            silence_id String,
            flow String,
            target String,
            kind String,
            reason String,
            created_by String,
            created_at DateTime64(3, 'UTC'),
            expires_at DateTime64(3, 'UTC'),
            cancelled UInt8,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY silence_id
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("alert_acks")} (
            alert_id String,
            acknowledged_by String,
            acknowledged_at DateTime64(3, 'UTC'),
            note String
        ) ENGINE = ReplacingMergeTree(acknowledged_at)
        ORDER BY alert_id
        """,
    ]


def _detector_state_table(store: Store, retention_days: int | None) -> list[str]:
    """How far each detector runner has evaluated, so a restart resumes where it stopped."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table(DETECTOR_STATE_TABLE)} (
            runner String,
            evaluated_until DateTime64(3, 'UTC'),
            updated_at DateTime64(3, 'UTC'),
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY runner
        """
    ]


def _acknowledgement_history(store: Store, retention_days: int | None) -> list[str]:
    """Every acknowledgement kept, and when a silence was ended early.

    ``alert_acks`` kept one row per alert (the newest replaced the others when parts merged),
    so a second acknowledgement erased the first. ``alert_ack_history`` keeps one row per
    acknowledgement; equal rows collapse, so copying the old rows twice adds nothing. The old
    table is left as it was, since dropping it could lose rows if this copy were interrupted.
    """
    history = store.table("alert_ack_history")
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {history} (
            alert_id String,
            acknowledged_by String,
            acknowledged_at DateTime64(3, 'UTC'),
            note String
        ) ENGINE = ReplacingMergeTree
        ORDER BY (alert_id, acknowledged_at, acknowledged_by, note)
        """,
        f"INSERT INTO {history} SELECT alert_id, acknowledged_by, acknowledged_at, note "
        f"FROM {store.table('alert_acks')}",
        f"ALTER TABLE {store.table('alert_silences')} "
        "ADD COLUMN IF NOT EXISTS cancelled_at Nullable(DateTime64(3, 'UTC'))",
    ]


def _alert_money_by_currency(store: Store, retention_days: int | None) -> list[str]:
    """An alert's money at risk by currency, so nothing that lists alerts adds up currencies.

    The column is added in place: the rows already stored keep every value and read an empty
    map, which says their currency was not recorded. Adding it again changes nothing, so an
    interrupted migration can run once more."""
    return [
        f"ALTER TABLE {store.table('alerts')} "
        "ADD COLUMN IF NOT EXISTS money_by_currency Map(LowCardinality(String), Float64) "
        "AFTER top_error"
    ]


# Version ranges: 1-9 trace tables, 10-19 flow rollups and lineage, 20-29 alerts.
MIGRATIONS: list[Migration] = [
    Migration(1, "OpenTelemetry exporter trace tables", _exporter_tables),
    Migration(20, "Alerts, alert events, silences and acknowledgements", _alert_tables),
    Migration(21, "Detector runner state", _detector_state_table),
    Migration(23, "Acknowledgement history, silence end times", _acknowledgement_history),
    Migration(24, "Alerts' money at risk by currency", _alert_money_by_currency),
]

# Lineage, flow rollups and reconciliation (versions 10-19) live with their feature.
from lineage import schema as _lineage  # noqa: E402 - needs Migration, defined above

MIGRATIONS += [
    Migration(10, "Lineage index, correlation map and span links", _lineage.lineage_tables),
    Migration(11, "Per-minute flow rollups", _lineage.flow_rollups),
    Migration(13, "Reconciliation exceptions", _lineage.exceptions_table),
    Migration(14, "Flow rollups' amounts by currency", _lineage.rollup_currencies),
]

# The notification delivery log lives with chat notifications.
from notify import records as _notify  # noqa: E402 - needs Migration, defined above

MIGRATIONS.append(Migration(22, "Notification delivery log", _notify.delivery_tables))
MIGRATIONS.append(
    Migration(26, "Alert event of each notification delivery", _notify.delivery_source_events)
)


def _category_silences(store: Store, retention_days: int | None) -> list[str]:
    """Silences of one failure category, and the categories each alert has shown.

    Both columns are added in place. A silence stored before has no category (it covers
    what its kind glob matches, as before); an alert stored before reads the category of its
    peak signal, the one category it was known by. Adding them again changes nothing, so an
    interrupted migration can run once more."""
    return [
        f"ALTER TABLE {store.table('alert_silences')} "
        "ADD COLUMN IF NOT EXISTS category String DEFAULT '' AFTER kind",
        f"ALTER TABLE {store.table('alerts')} "
        "ADD COLUMN IF NOT EXISTS categories Array(String) "
        "DEFAULT if(startsWith(signal, 'category:'), [substring(signal, 10)], []) AFTER kinds",
    ]


MIGRATIONS.append(Migration(25, "Silences of one failure category", _category_silences))

LATEST_VERSION = max(migration.version for migration in MIGRATIONS)


def applied_versions(store: Store) -> set[int]:
    """The schema versions already applied to the store's database."""
    store.command(
        f"CREATE TABLE IF NOT EXISTS {store.table(SCHEMA_TABLE)} ("
        " version UInt32, description String, applied_at DateTime DEFAULT now()"
        ") ENGINE = MergeTree ORDER BY version"
    )
    rows = store.query_rows(f"SELECT DISTINCT version FROM {store.table(SCHEMA_TABLE)}")
    return {int(row[0]) for row in rows}


def migrate(store: Store, retention_days: int | None = None) -> int:
    """Apply every migration not yet applied, in version order; return the highest version.

    Versions are recorded one by one rather than as a high-water mark, so features may number
    their migrations in ranges of their own without one range hiding another.
    """
    applied = applied_versions(store)
    unknown = applied - {migration.version for migration in MIGRATIONS}
    if unknown:
        logger.warning(
            "Database %s has schema versions %s that this Seamwatch does not know.",
            store.database,
            sorted(unknown),
        )
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        if migration.version in applied:
            continue
        for statement in migration.statements(store, retention_days):
            store.command(statement)
        store.command(
            f"INSERT INTO {store.table(SCHEMA_TABLE)} (version, description) "
            "VALUES ({version:UInt32}, {description:String})",
            {"version": migration.version, "description": migration.description},
        )
        # versions are numbered in ranges, one per feature (1, 10s, 20s): the description
        # says what each added, so a list with gaps does not read as out of order
        logger.info(
            "Schema of %s migrated to version %d: %s",
            store.database,
            migration.version,
            migration.description,
        )
        applied.add(migration.version)
    return max(applied)
