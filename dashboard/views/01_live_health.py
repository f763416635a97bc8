"""Live health: volume, errors and latency of every integration flow, refreshed on its own."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.queries import DEFAULT_TIME_RANGE_KEY, TIME_RANGES, TimeRange
from seamwatch.settings import SettingsError
from storage import StoreError

REFRESH_INTERVAL_SECONDS = 10

_DERIVED_HELP = (
    "The spans of this flow carry no integration.flow attribute, so its name was derived: "
    "service name and messaging destination, HTTP route or span name."
)

_SUMMARY_COLUMNS = {
    "flow": st.column_config.TextColumn("Flow", width="large"),
    "derived": st.column_config.CheckboxColumn("Derived", help=_DERIVED_HELP),
    "spans": st.column_config.NumberColumn("Spans", format="localized"),
    "errors": st.column_config.NumberColumn("Errors", format="localized"),
    "error_rate": st.column_config.NumberColumn("Error rate", format="percent"),
    "p50_ms": st.column_config.NumberColumn("p50 (ms)", format="%.1f"),
    "p95_ms": st.column_config.NumberColumn("p95 (ms)", format="%.1f"),
    "last_seen": st.column_config.DatetimeColumn("Last seen (UTC)", format="YYYY-MM-DD HH:mm:ss"),
}


def main() -> None:
    """Draw the page: the time-range selector, then the self-refreshing health view."""
    st.header("Live health")
    time_range_key = st.segmented_control(
        "Time range",
        options=list(TIME_RANGES),
        format_func=lambda key: TIME_RANGES[key].label,
        default=DEFAULT_TIME_RANGE_KEY,
        required=True,
        key="live_health_time_range",
    )
    live_health(time_range_key)


@st.fragment(run_every=REFRESH_INTERVAL_SECONDS)
def live_health(time_range_key: str) -> None:
    """Per-flow totals and charts over the chosen range; reruns every refresh interval."""
    try:
        time_range_key = widest_needed(time_range_key)
        time_range = TIME_RANGES[time_range_key]
        summary = data.flow_summary(time_range_key)
        if summary.empty:
            show_empty_state(time_range, data.has_spans())
            return
        series = data.flow_series(time_range_key)
    except (StoreError, SettingsError) as exc:
        st.error(f"Cannot read spans from the store: {exc}", icon=":material/error:")
        return

    show_totals(summary)
    st.dataframe(summary, column_config=_SUMMARY_COLUMNS, hide_index=True, width="stretch")
    show_charts(series, time_range)
    st.caption(
        f"Updated {datetime.now(UTC):%H:%M:%S} UTC, every {REFRESH_INTERVAL_SECONDS} s. "
        "Counts each span once, even when a client sent it twice."
    )


def widest_needed(chosen_key: str) -> str:
    """The chosen range, or the next longer one that has spans when the chosen one is empty.

    Right after start the demo is still backfilling last week, so the last hour is empty for a
    few minutes while older hours fill; showing those beats an empty page.
    """
    keys = list(TIME_RANGES)
    for key in keys[keys.index(chosen_key) :]:
        if not data.flow_summary(key).empty:
            if key != chosen_key:
                st.info(
                    f"No spans in the {TIME_RANGES[chosen_key].label.lower()} yet; "
                    f"showing the {TIME_RANGES[key].label.lower()}.",
                    icon=":material/schedule:",
                )
            return key
    return chosen_key


def show_empty_state(time_range: TimeRange, store_has_spans: bool) -> None:
    """Say why there is nothing to show and what to do about it."""
    if store_has_spans:
        st.info(
            f"No spans in the {time_range.label.lower()}. Choose a longer time range.",
            icon=":material/schedule:",
        )
        return
    st.info(
        f"No spans yet — point an OpenTelemetry exporter at {data.otlp_traces_url()}, "
        "or run `seamwatch up --demo`.",
        icon=":material/hourglass_empty:",
    )


def show_totals(summary: pd.DataFrame) -> None:
    """Headline numbers across every flow in the range."""
    spans = int(summary["spans"].sum())
    errors = int(summary["errors"].sum())
    flows, total_spans, total_errors, error_rate = st.columns(4)
    flows.metric("Flows", len(summary))
    total_spans.metric("Spans", f"{spans:,}")
    total_errors.metric("Errors", f"{errors:,}")
    error_rate.metric("Error rate", f"{errors / spans:.1%}")


def show_charts(series: pd.DataFrame, time_range: TimeRange) -> None:
    """Volume across the page; error rate and latency side by side below it."""
    st.plotly_chart(charts.volume_chart(series, time_range), width="stretch")
    left, right = st.columns(2)
    left.plotly_chart(charts.error_rate_chart(series), width="stretch")
    right.plotly_chart(charts.latency_chart(series), width="stretch")


main()
