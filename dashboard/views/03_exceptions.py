"""Exceptions: what failed, in business words, and what reconciliation says finance must fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import data
from lineage.exceptions import exception_summary
from lineage.reconcile import reconcile
from seamwatch.money import currency_amount_text
from storage import StoreError

QUERY_TTL_SECONDS = 30
WINDOWS = {"Last 24 hours": timedelta(days=1), "Last 7 days": timedelta(days=7)}
KIND_WORDS = {
    "dropped": "Event never reached its consumer",
    "duplicate": "Posted more than once",
    "master_data_missing": "Arrived before its customer or item existed",
    "failed": "Failed and not recovered",
    "stuck": "Neither posted nor failed",
}
# the counts' labels, short enough for a fifth of the page: the long words cut to "Event never
# reached its con…"; the long ones are their help and name the rows below
KIND_LABELS = {
    "dropped": "Never consumed",
    "duplicate": "Posted twice",
    "master_data_missing": "Before master data",
    "failed": "Failed for good",
    "stuck": "Stuck",
}


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def summary(window_label: str) -> pd.DataFrame:
    """Failures per flow and category over the window."""
    end = datetime.now(UTC)
    return exception_summary(data.get_store(), end - WINDOWS[window_label], end)


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def findings(window_label: str) -> dict:
    """Reconciliation of the transactions that started in the window."""
    end = datetime.now(UTC)
    return reconcile(data.get_store(), end - WINDOWS[window_label], end)


def main() -> None:
    """Draw the window selector, the reconciliation findings and the exception groups."""
    st.header("Exceptions")
    label = st.segmented_control(
        "Window", list(WINDOWS), default="Last 24 hours", required=True, key="exceptions_window"
    )
    try:
        document = findings(label)
        groups = summary(label)
    except StoreError as exc:
        st.error(f"Cannot read the lineage index: {exc}", icon=":material/error:")
        return
    show_findings(document)
    st.subheader("Failures by flow and category")
    if groups.empty:
        st.caption("No data found.")
        return
    # the amount of a group is a text by currency: a number column would add currencies up
    st.dataframe(groups.drop(columns="amount_by_currency"), hide_index=True, width="stretch")


def show_findings(document: dict) -> None:
    """Counts per kind of finding, then one row per business key to act on."""
    st.subheader("Reconciliation")
    columns = st.columns(len(KIND_WORDS))
    for column, (kind, words) in zip(columns, KIND_WORDS.items(), strict=True):
        column.metric(KIND_LABELS[kind], document["counts"][kind], help=words)
    if not document["findings"]:
        st.caption(f"Nothing to reconcile in {document['transactions']:,} transactions.")
        return
    frame = pd.DataFrame(document["findings"])
    frame["kind"] = frame["kind"].map(KIND_WORDS)
    # with its currency's decimals (none for JPY), as chat and the CLI write money
    frame["amount"] = [
        "—" if pd.isna(amount) else currency_amount_text(amount, currency)
        for amount, currency in zip(frame["amount"], frame["currency"], strict=True)
    ]
    shown = [
        "kind", "business_key", "flow", "source", "target", "amount",
        "diagnosis", "recovered", "first_seen",
    ]  # fmt: skip
    st.dataframe(frame[shown], hide_index=True, width="stretch")


main()
