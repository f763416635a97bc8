"""Alerts: what is open now, what happened before, and which silences are in force.

Chat messages link here as ``alerts?alert_id=<id>``; the page then opens on that alert.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.text import literal
from detectors.alert_actions import active_silences, list_alerts
from detectors.alert_text import kind_names, strongest_change
from detectors.lifecycle import EVENTS_TABLE, stored_id
from detectors.severity import SeverityFileError, severity_in_force
from detectors.silence_scope import silenced_kind
from notify.message import lineage_link
from seamwatch.times import readable_utc, table_time
from storage import Store, StoreError

REFRESH_INTERVAL_SECONDS = 15
HISTORY_LIMIT = 200

_ALERT_COLUMNS = {
    "priority": st.column_config.NumberColumn("Priority", format="%.1f"),
    "priority_label": st.column_config.TextColumn("P"),
    "flow": st.column_config.TextColumn("Flow", width="medium"),
    "target": st.column_config.TextColumn("Target"),
    "business_object": st.column_config.TextColumn("Object"),
    "kinds": st.column_config.ListColumn("Kinds"),
    "tier": st.column_config.TextColumn("Tier"),
    "change": st.column_config.TextColumn("What changed", width="medium"),
    "affected": st.column_config.NumberColumn("Transactions", format="localized"),
    # by currency, side by side as chat writes it: a number column would add currencies up
    "money_text": st.column_config.TextColumn("Money at risk"),
    "top_error": st.column_config.TextColumn("Top error", width="medium"),
    "opened_at": st.column_config.DatetimeColumn("Opened (UTC)", format="YYYY-MM-DD HH:mm"),
    "resolved_at": st.column_config.DatetimeColumn("Resolved (UTC)", format="YYYY-MM-DD HH:mm"),
    "acknowledged_by": st.column_config.TextColumn("Acknowledged by"),
    "silenced_by": st.column_config.TextColumn("Silence"),
    "alert_id": st.column_config.TextColumn("Id"),
}
# Times in these tables are text from seamwatch.times, as in `seamwatch alerts`: a datetime
# column showed the alert's events as "2026-12-03 13:02:00+00:00".
_EVENT_COLUMNS = {
    "at": st.column_config.TextColumn("At (UTC)"),
    "event": st.column_config.TextColumn("Event"),
    "kind": st.column_config.TextColumn("Kind"),
    "score": st.column_config.NumberColumn("Score", format="%.1f"),
    "detail": st.column_config.TextColumn("Detail", width="large"),
}
_SILENCE_COLUMNS = {
    "silence_id": st.column_config.TextColumn("Id"),
    "flow": st.column_config.TextColumn("Flow"),
    "target": st.column_config.TextColumn("Target"),
    "kind": st.column_config.TextColumn("Kind"),
    "created_by": st.column_config.TextColumn("Created by"),
    "expires_at": st.column_config.TextColumn("Expires (UTC)"),
    "reason": st.column_config.TextColumn("Reason", width="medium"),
}


def main() -> None:
    """Draw the page; the tables refresh on their own."""
    st.header("Alerts")
    alerts_view()


@st.fragment(run_every=REFRESH_INTERVAL_SECONDS)
def alerts_view() -> None:
    """Open alerts, history and silences, read fresh on every refresh."""
    try:
        store = data.get_store()
        source = severity_in_force()
        severity = source.current()
        open_alerts = list_alerts(store, severity, "open")
        history = list_alerts(store, severity, "resolved", limit=HISTORY_LIMIT)
        silences = active_silences(store)
        linked_id = stored_id(st.query_params.get("alert_id", "").strip())
        events = alert_events(store, linked_id) if linked_id else pd.DataFrame()
    except (StoreError, SeverityFileError) as exc:
        st.error(f"Cannot read alerts: {exc}", icon=":material/error:")
        return
    if source.refused:
        st.warning(
            f"Ranked with the last good version of {literal(severity.describe(), 300)}; the "
            f"file as it is now is refused: {literal(source.refused, 600)}",
            icon=":material/warning:",
        )
    if linked_id:
        show_linked_alert(linked_id, open_alerts + history, events, silences)
    open_tab, history_tab, silences_tab = st.tabs(
        [f"Open ({len(open_alerts)})", "History", f"Silences ({len(silences)})"]
    )
    with open_tab:
        show_alerts(open_alerts, "No open alerts.")
    with history_tab:
        show_alerts(history, "No resolved alerts yet.")
    with silences_tab:
        show_silences(silences)


def alert_events(store: Store, alert_id: str) -> pd.DataFrame:
    """The recorded events of one alert (opened, escalated, peaked, eased, recurred,
    resolved), oldest first."""
    return store.query_df(
        f"SELECT at, event, kind, score, detail FROM {store.table(EVENTS_TABLE)} FINAL "
        "WHERE alert_id = {id:String} ORDER BY at",
        {"id": alert_id},
    )


def show_linked_alert(
    alert_id: str, alerts: list[dict], events: pd.DataFrame, silences: Sequence[dict] = ()
) -> None:
    """The alert a link named, with its facts, its events and a way to its flow's lineage;
    ``silences``, those in force, tell who silenced it, why and until when."""
    alert = next((alert for alert in alerts if alert["alert_id"] == alert_id), None)
    if alert is None:
        st.warning(
            f"No alert with id {literal(alert_id, 40)}; it may be older than the history kept.",
            icon=":material/search_off:",
        )
        return
    with st.container(border=True):
        st.subheader(
            f"{alert['priority_label']} · {literal(alert['flow'])} → {literal(alert['target'])}"
        )
        # the money at risk is a fact below, not a metric: a metric cuts a value wider than
        # its column, and "18,250.00 EUR + 120,000 JPY" would lose a currency
        priority, tier, affected = st.columns(3)
        priority.metric("Priority", f"{alert['priority_label']} ({alert['priority']:.1f})")
        tier.metric("Tier", alert["tier"])
        affected.metric("Transactions affected", f"{alert['affected']:,}")
        st.markdown(
            "\n".join(
                f"- **{label}:** {literal(value, 300)}" for label, value in _facts(alert, silences)
            )
        )
        if not events.empty:
            st.dataframe(
                events.assign(at=events["at"].map(table_time))[list(_EVENT_COLUMNS)],
                column_config=_EVENT_COLUMNS,
                hide_index=True,
                width="stretch",
            )
        st.markdown(f"[Lineage of {literal(alert['flow'])}]({lineage_link('.', alert['flow'])})")


def _facts(alert: dict, silences: Sequence[dict] = ()) -> list[tuple[str, str]]:
    resolved = readable_utc(alert["resolved_at"]) if alert["resolved_at"] else "still open"
    return [
        ("Flow", alert["flow"]),
        ("Target", alert["target"]),
        ("Kinds", " + ".join(kind_names(alert))),
        ("Money at risk", alert["money_text"]),
        ("What changed", strongest_change(alert)),
        ("Top error", alert["top_error"] or "—"),
        ("Opened", readable_utc(alert["opened_at"])),
        ("Resolved", resolved),
        ("Acknowledged by", _acknowledged(alert)),
        ("Silenced", _silenced(alert, silences)),
    ]


def _silenced(alert: dict, silences: Sequence[dict]) -> str:
    """Who silenced the alert, until when and why, as the Silences tab lists it; the id
    alone said nothing to on-call."""
    silence_id = alert["silenced_by"]
    if not silence_id:
        return "not silenced"
    silence = next((item for item in silences if item["silence_id"] == silence_id), None)
    if silence is None:  # ended between the two reads
        return f"by silence {silence_id}, now ended"
    reason = f": {silence['reason']}" if silence.get("reason") else ""
    return (
        f"by {silence['created_by']} until {readable_utc(silence['expires_at'])}{reason} "
        f"(silence {silence_id})"
    )


def _acknowledged(alert: dict) -> str:
    """The holder, when and their note; earlier acknowledgements are in the API's list."""
    if not alert["acknowledged_by"]:
        return "nobody yet"
    note = f": {alert['ack_note']}" if alert.get("ack_note") else ""
    return f"{alert['acknowledged_by']} at {readable_utc(alert['acknowledged_at'])}{note}"


def show_alerts(alerts: list[dict], empty_text: str) -> None:
    """A table of alerts, highest priority first."""
    if not alerts:
        st.caption(empty_text)
        return
    frame = pd.DataFrame(alerts)
    # the kinds named as `seamwatch alerts` names them, the change begun with the one it is
    # about when there are several
    frame["kinds"] = [kind_names(alert) for alert in alerts]
    frame["change"] = [strongest_change(alert) for alert in alerts]
    for column in ("opened_at", "resolved_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    st.dataframe(
        frame[list(_ALERT_COLUMNS)],
        column_config=_ALERT_COLUMNS,
        hide_index=True,
        width="stretch",
    )


def show_silences(silences: list[dict]) -> None:
    """The silences in force; create and end them with 'seamwatch alerts silence'."""
    if not silences:
        st.caption("No silences in force. Add one with: seamwatch alerts silence --for 2h ...")
        return
    frame = pd.DataFrame(silences)
    frame["expires_at"] = frame["expires_at"].map(table_time)
    frame["kind"] = [silenced_kind(item) for item in silences]
    st.dataframe(
        frame[list(_SILENCE_COLUMNS)],
        column_config=_SILENCE_COLUMNS,
        hide_index=True,
        width="stretch",
    )


main()
