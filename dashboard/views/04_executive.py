"""Executive trends: the business KPIs per flow and day, and this week against the last.

Revenue at risk is drawn one chart per currency: amounts of different currencies are never
added up, nor drawn on one axis.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from dashboard.kpi_tables import (
    KPI_LABELS,
    UNKNOWN_CURRENCY_LABEL,
    currencies,
    money_rows,
    week_over_week,
)
from lineage.kpis import MONEY_KPIS, weekly_kpis
from seamwatch.money import minor_units
from storage import StoreError

QUERY_TTL_SECONDS = 60
# one day on a date axis, in its milliseconds
DAY_MS = 24 * 60 * 60 * 1000
# KPIs that are shares, drawn as percentages
SHARE_KPIS = ("exception_rate", "order_acceptance_accuracy", "invoice_reconciliation_accuracy")


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def kpi_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """KPIs over the last two weeks: per flow and day, and per flow and week."""
    found = weekly_kpis(data.get_store(), datetime.now(UTC))
    return pd.DataFrame(found["days"]), pd.DataFrame(found["weeks"])


def main() -> None:
    """Draw the KPI selector, its trend per flow and the week-over-week table."""
    st.header("Executive trends")
    try:
        frame, weeks = kpi_frames()
    except StoreError as exc:
        st.error(f"Cannot read the lineage index: {exc}", icon=":material/error:")
        return
    if frame.empty:
        st.caption("No data found.")
        return
    chosen = st.selectbox("KPI", list(KPI_LABELS), format_func=KPI_LABELS.get, key="executive_kpi")
    if chosen in MONEY_KPIS:
        show_money_trends(frame, chosen)
    else:
        show_trend(frame, chosen)
    st.subheader("Week over week")
    st.dataframe(week_over_week(weeks), hide_index=True, width="stretch")
    st.caption(
        "This week: the last 7 days; last week: the 7 before. Each KPI is computed over the "
        "week's transactions: counts and money are sums (per currency), rates are shares of "
        "the week's transactions, percentiles are taken over the week's latencies. "
        "Definitions: docs/kpis.md. Days are UTC; a transaction counts on the day it began."
    )


def show_trend(frame: pd.DataFrame, chosen: str) -> None:
    """One line per flow of a KPI that is a number."""
    shown = frame.dropna(subset=[chosen])
    if shown.empty:
        st.caption("This KPI does not apply to any flow in the period.")
        return
    figure = px.line(shown, x="period", y=chosen, color="flow", markers=True)
    figure.update_layout(yaxis_title=KPI_LABELS[chosen], xaxis_title=None)
    by_day(figure)
    if chosen in SHARE_KPIS:
        figure.update_yaxes(tickformat=".1%")
        figure.update_traces(hovertemplate="%{y:.2%}")
    st.plotly_chart(figure, width="stretch")


def by_day(figure: go.Figure) -> None:
    """A tick a day, written as the day: with one day of data the axis showed milliseconds
    around midnight."""
    figure.update_xaxes(dtick=DAY_MS, tickformat="%b %d")


def show_money_trends(frame: pd.DataFrame, chosen: str) -> None:
    """One chart per currency, one line per flow: each axis holds one currency."""
    money = money_rows(frame, chosen)
    if money.empty:
        st.caption("No transaction in the period carried an amount.")
        return
    for currency in currencies(money):
        code = "" if currency == UNKNOWN_CURRENCY_LABEL else currency
        title = f"{KPI_LABELS[chosen]} ({code or 'currency unknown'})"
        shown = money[money["currency"] == currency]
        figure = px.line(shown, x="period", y="amount", color="flow", markers=True, title=title)
        figure.update_layout(yaxis_title=title, xaxis_title=None)
        figure.update_yaxes(tickformat=f",.{minor_units(code)}f", rangemode="tozero")
        by_day(figure)
        st.plotly_chart(figure, width="stretch", key=f"executive_money_{currency}")
    st.caption(
        "One chart per currency: amounts are never added across currencies or converted. "
        "Transactions whose spans name no business.currency are drawn as currency unknown."
    )


main()
