"""How Seamwatch reads integration meaning from a span, as ClickHouse expressions.

Every expression reads the columns of ``otel_traces`` (``SpanAttributes``, ``SpanKind``,
``ServiceName`` ...), so the same text serves the materialized views that fill the derived
tables and the queries that answer straight from raw spans. docs/integration-attributes.md
describes each derivation in words; the two must stay in step.
"""

from __future__ import annotations

ATTRIBUTES = "SpanAttributes"


def attribute(name: str) -> str:
    """The expression of span attribute ``name`` ('' when the span does not carry it)."""
    return f"{ATTRIBUTES}['{name}']"


FLOW = f"""multiIf(
    {attribute("integration.flow")} != '', {attribute("integration.flow")},
    {attribute("messaging.destination.name")} != '',
        concat(ServiceName, ':', {attribute("messaging.destination.name")}),
    {attribute("http.route")} != '', concat(ServiceName, ':', {attribute("http.route")}),
    concat(ServiceName, ':', SpanName))"""
FLOW_DERIVED = f"{attribute('integration.flow')} = ''"

# The system at the other end of a hop: who a client calls, which topic a producer writes to
# or a consumer reads from. Entry spans of a synchronous call do not know their caller.
PEER = f"""multiIf(
    SpanKind IN ('Client', 'Producer') AND {attribute("peer.service")} != '',
        {attribute("peer.service")},
    SpanKind IN ('Producer', 'Consumer') AND {attribute("messaging.destination.name")} != '',
        concat('topic:', {attribute("messaging.destination.name")}),
    SpanKind = 'Client' AND {attribute("server.address")} != '', {attribute("server.address")},
    SpanKind = 'Client' AND {attribute("rpc.service")} != '', {attribute("rpc.service")},
    SpanKind = 'Client' AND {attribute("db.system")} != '', {attribute("db.system")},
    '')"""

TARGET = f"""multiIf(
    {attribute("integration.target")} != '', {attribute("integration.target")},
    SpanKind = 'Client' AND ({PEER}) != '', {PEER},
    SpanKind IN ('Server', 'Consumer'), ServiceName,
    '')"""
TARGET_DERIVED = f"{attribute('integration.target')} = ''"

SOURCE = f"""multiIf(
    {attribute("integration.source")} != '', {attribute("integration.source")},
    SpanKind IN ('Client', 'Producer'), ServiceName,
    '')"""
SOURCE_DERIVED = f"{attribute('integration.source')} = ''"

BUSINESS_KEY = attribute("business.key")
CORRELATION_ID = attribute("correlation.id")
# A span without a business key is found through its correlation id.
LOOKUP_KEY = f"if({BUSINESS_KEY} != '', {BUSINESS_KEY}, {CORRELATION_ID})"
AMOUNT = f"toFloat64OrNull({attribute('business.amount')})"
EXCEPTION_CATEGORY = attribute("integration.exception.category")
REPLAY = f"{attribute('integration.replay')} IN ('true', 'True', '1')"
FAILED = f"(StatusCode = 'Error' OR {EXCEPTION_CATEGORY} != '')"
# The status message, or else the message of the span's first exception event (servers that
# answer 4xx record the exception without setting an error status).
ERROR_MESSAGE = """if(StatusMessage != '', StatusMessage, arrayElement(arrayFilter(
    message -> message != '',
    arrayMap((name, attrs) -> if(name = 'exception', attrs['exception.message'], ''),
             `Events.Name`, `Events.Attributes`)), 1))"""

# Spans that make one hop of a transaction visible: where work enters or leaves a service,
# the root of a trace, every failure, and the posting itself. Steps inside a service are left
# out of the lineage index; they stay in otel_traces.
IS_HOP = f"""(
    SpanKind != 'Internal'
    OR ParentSpanId = ''
    OR {FAILED}
    OR {attribute("integration.stage")} = 'post'
)"""
HAS_BUSINESS_CONTEXT = f"({BUSINESS_KEY} != '' OR {CORRELATION_ID} != '')"

# Spans counted by the flow rollups: the spans the live-health view counts, plus the client
# and producer spans that draw the edges of the flow map.
IN_ROLLUP = (
    f"({attribute('integration.flow')} != '' OR SpanKind != 'Internal' OR ParentSpanId = '')"
)


def hop_columns() -> str:
    """The select list that turns one raw span into one row of the lineage index."""
    return f"""
    {LOOKUP_KEY} AS lookup_key,
    {BUSINESS_KEY} AS business_key,
    {CORRELATION_ID} AS correlation_id,
    Timestamp,
    TraceId,
    SpanId,
    ParentSpanId,
    ServiceName AS service,
    SpanName AS span_name,
    SpanKind AS span_kind,
    {FLOW} AS flow,
    {FLOW_DERIVED} AS flow_derived,
    {attribute("integration.pattern")} AS pattern,
    {attribute("integration.stage")} AS stage,
    {SOURCE} AS source,
    {SOURCE_DERIVED} AS source_derived,
    {TARGET} AS target,
    {TARGET_DERIVED} AS target_derived,
    {PEER} AS peer,
    {attribute("business.object")} AS business_object,
    {AMOUNT} AS amount,
    {attribute("business.currency")} AS currency,
    Duration AS duration_ns,
    StatusCode AS status_code,
    {ERROR_MESSAGE} AS status_message,
    {EXCEPTION_CATEGORY} AS exception_category,
    {REPLAY} AS replay,
    {attribute("integration.outcome")} AS outcome,
    `Links.TraceId` AS link_trace_ids"""
