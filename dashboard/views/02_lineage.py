"""Lineage: one business transaction hop by hop across its traces, and the system flow map.

Chat messages link here as ``lineage?flow=<flow>``; the page then opens on that flow's recent
failed transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from dashboard.formats import duration_text
from dashboard.text import literal
from lineage.flows import flow_map, window_parameters
from lineage.lookup import LineageQuery, LineageQueryError, lineage
from lineage.schema import LINEAGE_TABLE
from seamwatch.money import amount_text
from storage import StoreError

QUERY_TTL_SECONDS = 5
SEARCH_KINDS = {"Business key": "key", "Correlation id": "correlation_id", "Trace id": "trace_id"}
MAP_WINDOWS = {"Last 1 hour": timedelta(hours=1), "Last 24 hours": timedelta(days=1)}
FAILURES_WINDOW = timedelta(days=1)
FAILURES_SHOWN = 50
# flows named when a link names one the lineage index does not hold
KNOWN_FLOWS_NAMED = 10
_DERIVED_NOTE = (
    "Values marked derived were not on the span: the flow came from the service and route or "
    "destination, the target from peer.service or server.address (docs/integration-attributes.md)."
)

# Milliseconds with thousands separators and one decimal, in columns wide enough for them.
_HOP_COLUMNS = {
    "wait_ms": st.column_config.NumberColumn("wait_ms", format="%,.1f", width="medium"),
    "duration_ms": st.column_config.NumberColumn("duration_ms", format="%,.1f", width="medium"),
}


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def find(field: str, value: str) -> dict:
    """The lineage answer for one search."""
    return lineage(data.get_store(), LineageQuery(**{field: value}))


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def edges(window_label: str) -> pd.DataFrame:
    """Flow-map edges over the named window, from the rollups."""
    end = datetime.now(UTC)
    return flow_map(data.get_store(), end - MAP_WINDOWS[window_label], end)


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def recent_failures(flow: str) -> pd.DataFrame:
    """The flow's failed transactions of the last day, newest first, one row per business key."""
    store = data.get_store()
    end = datetime.now(UTC)
    sql = f"""
    SELECT business_key, max(Timestamp) AS time,
           anyIf(status_code, status_code != '') AS status,
           anyIf(exception_category, exception_category != '') AS category,
           anyIf(status_message, status_message != '') AS error
    FROM {store.table(LINEAGE_TABLE)}
    WHERE flow = {{flow:String}}
      AND Timestamp >= fromUnixTimestamp64Nano({{start_ns:Int64}})
      AND Timestamp < fromUnixTimestamp64Nano({{end_ns:Int64}})
      AND (exception_category != '' OR status_code = 'Error')
      AND business_key != ''
    GROUP BY business_key
    ORDER BY time DESC
    LIMIT {{limit:UInt32}}
    """
    parameters = {"flow": flow, "limit": FAILURES_SHOWN}
    return store.query_df(sql, parameters | window_parameters(end - FAILURES_WINDOW, end))


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def known_flows(flow: str) -> tuple[bool, list[str]]:
    """Whether the lineage index holds ``flow`` at all, and the first flows it does hold."""
    store = data.get_store()
    table = store.table(LINEAGE_TABLE)
    seen = store.query_rows(
        f"SELECT count() FROM (SELECT 1 FROM {table} WHERE flow = {{flow:String}} LIMIT 1)",
        {"flow": flow},
    )
    names = store.query_rows(
        f"SELECT DISTINCT flow FROM {table} WHERE flow != '' ORDER BY flow "
        f"LIMIT {KNOWN_FLOWS_NAMED + 1}"
    )
    return bool(seen[0][0]), [str(row[0]) for row in names]


def no_failures_text(flow: str) -> str:
    """Why a linked flow lists no failures: none lately, or no flow of that name at all."""
    known, names = known_flows(flow)
    if known:
        return f"No failed transactions of {literal(flow)} in the last 24 hours."
    if not names:
        return f"No flow named {literal(flow)}: the lineage index holds no flow yet."
    listed = ", ".join(literal(name) for name in names[:KNOWN_FLOWS_NAMED])
    more = ", …" if len(names) > KNOWN_FLOWS_NAMED else ""
    return (
        f"No flow named {literal(flow)} in the lineage index (flows are named by the spans' "
        f"integration.flow). Flows it holds: {listed}{more}."
    )


def main() -> None:
    """Draw the linked flow's failures, the search, the answer and the flow map."""
    st.header("Lineage")
    flow = st.query_params.get("flow", "").strip()
    if flow:
        show_recent_failures(flow)
    search, flows = st.tabs(["Transaction", "Flow map"])
    with search:
        show_search()
    with flows:
        show_flow_map()


def show_recent_failures(flow: str) -> None:
    """The flow a link named: its latest failed transactions and how to follow one."""
    st.subheader(f"Recent failed transactions of {literal(flow)}")
    failures = rows_to_show(
        lambda: recent_failures(flow),
        "the lineage index",
        lambda: no_failures_text(flow),
    )
    if failures is None:
        return
    st.dataframe(failures, hide_index=True, width="stretch")
    st.caption(
        f"The newest {FAILURES_SHOWN} at most, over the last 24 hours. To follow one hop by hop, "
        "enter its business key in the Transaction search below."
    )


def show_search() -> None:
    """Search by key, correlation id or trace id and show the transaction's hops."""
    left, right = st.columns([1, 3])
    kind = left.selectbox("Search by", list(SEARCH_KINDS), key="lineage_search_kind")
    value = right.text_input("Value", key="lineage_search_value", placeholder="e.g. INV-2000123")
    if not value.strip():
        st.caption("Enter a business key, correlation id or trace id.")
        return
    try:
        answer = find(SEARCH_KINDS[kind], value.strip())
    except LineageQueryError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    except StoreError as exc:
        st.error(f"Cannot read the lineage index: {exc}", icon=":material/error:")
        return
    if not answer["found"]:
        st.caption("No data found.")
        return
    show_transactions(answer["transactions"])
    show_hops(answer["hops"])


def show_transactions(transactions: list[dict]) -> None:
    """One line per transaction: status, sync latency, and where it failed or stalled."""
    for txn in transactions:
        title = f"{txn['flow']} · {txn['business_key']} · {txn['status']}"
        with st.container(border=True):
            st.markdown(f"**{literal(title, 200)}**")
            status, latency, amount, traces = st.columns(4)
            status.metric("Source → target", f"{txn['source'] or '?'} → {txn['target'] or '?'}")
            latency.metric("Sync latency", duration_text(txn["sync_latency_ms"]))
            money = amount_text(txn["amount"], txn["currency"]) if txn["amount"] else "—"
            # said in the label: "(currency unknown)" after the number would be cut off
            known = txn["currency"] or not txn["amount"]
            amount.metric("Amount" if known else "Amount (currency unknown)", money)
            traces.metric("Traces", txn["traces"])
            if txn["failed_at"]:
                failed = txn["failed_at"]
                cause = failed["exception_category"] or failed["status_code"]
                st.error(
                    literal(
                        f"Failed at {failed['service']} ({failed['span_name']}): "
                        f"{cause} — {failed['error']}",
                        400,
                    )
                )
            if txn.get("rejected_redelivery"):
                st.info(rejected_text(txn), icon=":material/block:")
            if txn["stalled_after"]:
                stalled = txn["stalled_after"]
                st.warning(
                    literal(f"Stalled after {stalled['service']} ({stalled['span_name']}).", 400)
                )


def rejected_text(txn: dict) -> str:
    """What a redelivery the target rejected as a duplicate after the posting means."""
    rejected = txn["rejected_redelivery"]
    times = txn["rejected_redeliveries"]
    again = "A redelivery was" if times == 1 else f"{times} redeliveries were"
    reason = f": {rejected['error']}" if rejected["error"] else ""
    return literal(
        f"{again} rejected by {rejected['service']} as a duplicate{reason}. "
        "The transaction had already posted; the rejection is the target's idempotency "
        "check at work, not a failure.",
        400,
    )


def show_hops(hops: list[dict]) -> None:
    """Every hop in time order, with the wait before it."""
    frame = pd.DataFrame(hops)
    derived = frame["derived"].map(bool).any()
    frame["derived"] = frame["derived"].map(", ".join)
    columns = [
        "time", "wait_ms", "service", "kind", "stage", "status", "exception_category",
        "error", "duration_ms", "flow", "target", "replay", "via_link", "derived", "trace_id",
    ]  # fmt: skip
    st.dataframe(frame[columns], hide_index=True, width="stretch", column_config=_HOP_COLUMNS)
    if derived:
        st.caption(_DERIVED_NOTE)


def show_flow_map() -> None:
    """System-to-system edges with volume, error rate and p95, as a table and a Sankey."""
    label = st.segmented_control(
        "Window", list(MAP_WINDOWS), default="Last 1 hour", required=True, key="flow_map_window"
    )
    frame = rows_to_show(lambda: edges(label), "the flow rollups", "No data found.")
    if frame is None:
        return
    st.plotly_chart(sankey(frame), width="stretch")
    st.dataframe(frame, hide_index=True, width="stretch")


def rows_to_show(
    read: Callable[[], pd.DataFrame], source: str, empty_text: str | Callable[[], str]
) -> pd.DataFrame | None:
    """The rows ``read`` returns, or None once the page has said why there are none
    (``empty_text``, or what it returns when it is to be worked out only then)."""
    try:
        frame = read()
        if frame.empty:
            st.caption(empty_text if isinstance(empty_text, str) else empty_text())
            return None
    except StoreError as exc:
        st.error(f"Cannot read {source}: {exc}", icon=":material/error:")
        return None
    return frame


def sankey(frame: pd.DataFrame) -> go.Figure:
    """Edges as a Sankey diagram; link width is volume, hover shows errors and p95."""
    totals = frame.groupby(["caller", "callee"], as_index=False).agg(
        spans=("spans", "sum"), errors=("errors", "sum"), p95_ms=("p95_ms", "max")
    )
    nodes = sorted(set(totals["caller"]) | set(totals["callee"]))
    index = {node: number for number, node in enumerate(nodes)}
    hover = [
        f"{row.caller} → {row.callee}<br>{row.spans:,} spans, {row.errors / row.spans:.1%} "
        f"errors, p95 {row.p95_ms:,.0f} ms"
        for row in totals.itertuples()
    ]
    figure = go.Figure(
        go.Sankey(
            node={"label": nodes, "pad": 18},
            link={
                "source": totals["caller"].map(index),
                "target": totals["callee"].map(index),
                "value": totals["spans"],
                "customdata": hover,
                "hovertemplate": "%{customdata}<extra></extra>",
            },
        )
    )
    figure.update_layout(height=480, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return figure


main()
