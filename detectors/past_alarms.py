"""The failure-category alarms of stored alerts, for a restart to learn its history by.

A runner that never stops leaves out of a flow's history the failures of a category while it
is in alarm, takes back the failures an alarm opened on, and keeps a category from counting
as new to the flow for hours after an alarm on it (:mod:`detectors.category_drift`). A restart
learns the week before from the stored minutes alone; the stored alerts tell it when each
category was in alarm, so it can learn that week as the uninterrupted run did.

A category is in alarm from each event that tells of its evidence (the opening or escalation
that first named it, or a ``recurred`` event when it fired again on the same alert) to the
``eased`` event that says it settled while another signal kept the alert open, or else to its
alert's resolution (for ever while the alert is open). An alert stored before ``eased`` events
were written has none: its categories are held in alarm until it resolved, as before, so the
failures between a category settling and its alert resolving are left out of the history
after a restart though the uninterrupted run learned them.

:func:`eased_signals` tells a restart which signals of an open alert settled, so that it
leaves their alarms closed (:meth:`detectors.runner.SeriesState.mark_open`). Measured with
``seamwatch evaluate --simulator --restart-every 3h``: three days of seed 42 had one of 9
alerts resolved 17 minutes later with restarts while a category was held in alarm until its
alert resolved; read from these events, all 9 are the same, as are the 4 of two days of
seed 3.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from detectors.alert_text import CATEGORY_PREFIX, names_category, settled_signals
from detectors.lifecycle import ALERTS_TABLE, EVENTS_TABLE
from storage import Store


@dataclass(frozen=True)
class CategoryAlarm:
    """A failure category in alarm on one flow: from the minute it opened (its failures of
    that minute and the quarter hour before were the evidence) to the minute it settled (its
    ``eased`` event) or its alert resolved, or for ever while it is in alarm on an open
    alert. Minutes are naive UTC."""

    category: str
    opened: pd.Timestamp
    ended: pd.Timestamp | None = None

    def holds(self, minute: pd.Timestamp) -> bool:
        """Whether ``minute`` comes after the opening and before the end of the alarm."""
        return self.opened < minute and (self.ended is None or minute <= self.ended)


def category_alarms(
    store: Store, start: datetime, end: datetime
) -> dict[tuple[str, str], list[CategoryAlarm]]:
    """The category alarms of the alerts stored for any time in ``[start, end)``, per
    (flow, target)."""
    alerts = store.query_df(
        "SELECT alert_id, flow, target, categories, "
        "toUnixTimestamp64Milli(opened_at) AS opened_ms, "
        "toUnixTimestamp64Milli(resolved_at) AS resolved_ms "
        f"FROM {store.table(ALERTS_TABLE)} FINAL "
        "WHERE notEmpty(categories) AND toUnixTimestamp64Milli(opened_at) < {end:Int64} "
        "AND (resolved_at IS NULL OR toUnixTimestamp64Milli(resolved_at) >= {start:Int64})",
        {"start": _millis(start), "end": _millis(end)},
    ).to_dict("records")
    told = _events(store, [str(row["alert_id"]) for row in alerts], _TELLING)
    alarms: dict[tuple[str, str], list[CategoryAlarm]] = {}
    for row in alerts:
        opened, resolved = _minute(row["opened_ms"]), _minute(row["resolved_ms"])
        assert opened is not None
        events = told.get(str(row["alert_id"]), [])
        for category in row["categories"]:
            spans = _spans(str(category), events) or [(opened, None)]
            alarms.setdefault((row["flow"], row["target"]), []).extend(
                CategoryAlarm(str(category), began, ended or resolved) for began, ended in spans
            )
    return alarms


def eased_signals(store: Store, alert_ids: list[str]) -> dict[str, frozenset[str]]:
    """The signals (``category:mapping``, ``error_rate``) that settled while each of
    ``alert_ids`` stayed open, whether or not they fired again since, by alert id."""
    eased = _events(store, alert_ids, (EASED,))
    return {
        alert_id: frozenset(name for _, _, detail in events for name in settled_signals(detail))
        for alert_id, events in eased.items()
    }


# The events that start a category's alarm (when their detail tells of it) and end it.
EASED = "eased"
_STARTING = ("opened", "escalated", "recurred")
_TELLING = (*_STARTING, EASED)


def _events(
    store: Store, alert_ids: list[str], names: tuple[str, ...]
) -> dict[str, list[tuple[int, str, str]]]:
    """The events ``names`` of ``alert_ids``: (milliseconds, event, detail) per alert id,
    oldest first."""
    if not alert_ids:
        return {}
    rows = store.query_rows(
        "SELECT alert_id, toUnixTimestamp64Milli(at) AS ms, event, detail "
        f"FROM {store.table(EVENTS_TABLE)} "
        "WHERE has(splitByChar(',', {names:String}), event) "
        "AND has(splitByChar(',', {ids:String}), alert_id) ORDER BY alert_id, ms",
        # strings, not arrays, as in ``lifecycle.opening_events``; ids are hex, names words
        {"ids": ",".join(alert_ids), "names": ",".join(names)},
    )
    found: dict[str, list[tuple[int, str, str]]] = {}
    for alert_id, millis, event, detail in rows:
        found.setdefault(str(alert_id), []).append((int(millis), str(event), str(detail)))
    return found


def _spans(
    category: str, events: Iterable[tuple[int, str, str]]
) -> list[tuple[pd.Timestamp, pd.Timestamp | None]]:
    """When ``category`` was in alarm, from the alert's events in time order: from each
    event that tells of its evidence while it is not in alarm to the next ``eased`` event
    that names it (None: not eased since)."""
    signal = CATEGORY_PREFIX + category
    spans: list[tuple[pd.Timestamp, pd.Timestamp | None]] = []
    for millis, event, detail in events:
        minute = _minute(millis)
        assert minute is not None
        in_alarm = bool(spans) and spans[-1][1] is None
        if event == EASED:
            if in_alarm and signal in settled_signals(detail):
                spans[-1] = (spans[-1][0], minute)
        elif not in_alarm and detail and names_category(detail, category):
            spans.append((minute, None))
    return spans


def alarms_at(
    alarms: Iterable[CategoryAlarm], minute: pd.Timestamp
) -> tuple[frozenset[str], frozenset[str]]:
    """The categories in alarm at ``minute`` and those whose alarm opened at it."""
    held = frozenset(alarm.category for alarm in alarms if alarm.holds(minute))
    opening = frozenset(alarm.category for alarm in alarms if alarm.opened == minute)
    return held, opening - held


def _minute(millis: float | None) -> pd.Timestamp | None:
    if millis is None or pd.isna(millis):
        return None
    return pd.Timestamp(int(millis), unit="ms").floor("min")


def _millis(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
