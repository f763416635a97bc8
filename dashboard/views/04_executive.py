"""Executive trends: the business KPIs per flow and day, and this week against the last."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import data
from lineage.kpis import KPI_NAMES, kpis
from storage import StoreError

QUERY_TTL_SECONDS = 60
HISTORY = timedelta(days=14)
KPI_LABELS = {
    "sync_latency_p95_ms": "Sync latency p95 (ms)",
    "sync_latency_p50_ms": "Sync latency p50 (ms)",
    "exception_rate": "Exception rate",
    "replay_recovery_p50_minutes": "Replay recovery p50 (min)",
    "order_acceptance_accuracy": "Order acceptance accuracy",
    "invoice_reconciliation_accuracy": "Invoice reconciliation accuracy",
    "onboarding_cycle_time_p50_minutes": "Customer onboarding cycle time p50 (min)",
    "revenue_at_risk": "Revenue at risk",
    "transactions": "Transactions",
}


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def kpi_frame() -> pd.DataFrame:
    """KPIs per flow and day over the last two weeks."""
    end = datetime.now(UTC)
    return pd.DataFrame(kpis(data.get_store(), end - HISTORY, end)["kpis"])


def main() -> None:
    """Draw the KPI selector, its trend per flow and the week-over-week table."""
    st.header("Executive trends")
    try:
        frame = kpi_frame()
    except StoreError as exc:
        st.error(f"Cannot read the lineage index: {exc}", icon=":material/error:")
        return
    if frame.empty:
        st.caption("No data found.")
        return
    chosen = st.selectbox("KPI", list(KPI_LABELS), format_func=KPI_LABELS.get, key="executive_kpi")
    shown = frame.dropna(subset=[chosen])
    if shown.empty:
        st.caption("This KPI does not apply to any flow in the period.")
    else:
        figure = px.line(shown, x="period", y=chosen, color="flow", markers=True)
        figure.update_layout(yaxis_title=KPI_LABELS[chosen], xaxis_title=None)
        st.plotly_chart(figure, width="stretch")
    st.subheader("Week over week")
    st.dataframe(week_over_week(frame), hide_index=True, width="stretch")
    st.caption("Definitions: docs/kpis.md. Days are UTC; a transaction counts on the day it began.")


def week_over_week(frame: pd.DataFrame) -> pd.DataFrame:
    """Per flow: the mean of each KPI over the last 7 days and the 7 days before."""
    periods = pd.to_datetime(frame["period"])
    latest = periods.max()
    this_week = periods > latest - pd.Timedelta(days=7)
    measures = [name for name in KPI_NAMES if name != "transactions"]
    rows = []
    for flow, group in frame.groupby("flow"):
        current = group[this_week.loc[group.index]]
        previous = group[~this_week.loc[group.index]]
        for name in measures:
            now, before = current[name].mean(), previous[name].mean()
            if pd.isna(now) and pd.isna(before):
                continue
            rows.append(
                {"flow": flow, "kpi": KPI_LABELS[name], "this week": now, "last week": before}
            )
    return pd.DataFrame(rows, columns=["flow", "kpi", "this week", "last week"])


main()
