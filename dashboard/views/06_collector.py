"""Collector page: what the OTLP receiver accepted, refused and wrote, from its /metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.collector_health import CollectorHealth, MetricsUnavailable, read_collector_health
from seamwatch.times import readable_utc

REFRESH_INTERVAL_SECONDS = 5


def main() -> None:
    """Draw the page; the figures refresh on their own."""
    st.header("Collector")
    st.caption(f"Read from {data.collector_url()}/metrics (Prometheus format).")
    collector_figures()


@st.fragment(run_every=REFRESH_INTERVAL_SECONDS)
def collector_figures() -> None:
    """Totals since the collector started, and rates since the previous refresh."""
    try:
        health = read_collector_health(data.collector_url())
    except MetricsUnavailable as exc:
        st.error(f"The collector does not answer: {exc}", icon=":material/error:")
        return
    rate = _accepted_rate(health)
    if health.counting_since is not None:
        started = datetime.fromtimestamp(health.counting_since, UTC)
        st.caption(f"Counted since the collector started, {readable_utc(started)}.")
    accepted, queued, refused, insert = st.columns(4)
    # the second figures are rates and sizes, not changes: no arrow, no colour
    accepted.metric(
        "Spans accepted",
        f"{sum(health.accepted_spans.values()):,.0f}",
        None if rate is None else f"{rate:,.0f} spans/s now",
        delta_color="off",
        delta_arrow="off",
    )
    queued.metric(
        "Waiting for the store",
        f"{health.queued_spans:,.0f}",
        f"spool {health.spool_bytes / 2**20:,.1f} MiB",
        delta_color="off",
        delta_arrow="off",
    )
    refused.metric("Requests refused", f"{sum(health.refused_requests.values()):,.0f}")
    mean = health.mean_insert_seconds
    insert.metric("Mean insert", "—" if mean is None else f"{mean * 1000:,.0f} ms")
    _breakdown("Accepted spans by protocol", health.accepted_spans, "protocol")
    _breakdown("Spans rejected one by one, by reason", health.rejected_spans, "reason")
    _breakdown("Requests refused, by reason", health.refused_requests, "reason")
    if health.dropped_spans:
        st.warning(
            f"{health.dropped_spans:,.0f} acknowledged spans were refused by the store; they "
            "are kept in the spool's rejected folder with the reason. See the collector log.",
            icon=":material/warning:",
        )


def _accepted_rate(health: CollectorHealth) -> float | None:
    """Spans per second accepted since the previous reading in this browser session."""
    now, total = time.monotonic(), sum(health.accepted_spans.values())
    previous = st.session_state.get("collector_previous_reading")
    st.session_state["collector_previous_reading"] = (now, total)
    if previous is None or now <= previous[0] or total < previous[1]:
        return None
    return (total - previous[1]) / (now - previous[0])


def _breakdown(title: str, counts: dict[str, float], label: str) -> None:
    st.subheader(title)
    if not counts:
        st.caption("None so far.")
        return
    frame = pd.DataFrame(
        sorted(counts.items(), key=lambda item: -item[1]), columns=[label, "count"]
    )
    st.dataframe(frame, hide_index=True, width="content")


main()
