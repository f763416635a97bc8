"""The failure-category alarms of stored alerts, for a restart to learn its history by.

A runner that never stops leaves out of a flow's history the failures of a category while it
is in alarm, takes back the failures an alarm opened on, and keeps a category from counting
as new to the flow for hours after an alarm on it (:mod:`detectors.category_drift`). A restart
learns the week before from the stored minutes alone; the stored alerts tell it when each
category was in alarm, so it can learn that week as the uninterrupted run did.

A category's alarm is taken to start at the event (opening or escalation) that first told of
it and to last until its alert resolved. The category's own alarm may have settled earlier
while another signal kept the alert open: those failures are then left out of the history
after a restart though the uninterrupted run learned them, which makes the category's usual
rate a little lower, never higher.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from detectors.alert_text import names_category
from detectors.lifecycle import ALERTS_TABLE, EVENTS_TABLE
from storage import Store


@dataclass(frozen=True)
class CategoryAlarm:
    """A failure category in alarm on one flow: from the minute it opened (its failures of
    that minute and the quarter hour before were the evidence) to the minute its alert
    resolved, or for ever while the alert is open. Minutes are naive UTC."""

    category: str
    opened: pd.Timestamp
    resolved: pd.Timestamp | None = None

    def holds(self, minute: pd.Timestamp) -> bool:
        """Whether ``minute`` comes after the opening and before the end of the alarm."""
        return self.opened < minute and (self.resolved is None or minute <= self.resolved)


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
    told = _events_telling(store, [str(row["alert_id"]) for row in alerts])
    alarms: dict[tuple[str, str], list[CategoryAlarm]] = {}
    for row in alerts:
        resolved = _minute(row["resolved_ms"])
        for category in row["categories"]:
            opened = _told_at(category, told.get(str(row["alert_id"]), []))
            opened = opened if opened is not None else _minute(row["opened_ms"])
            assert opened is not None
            alarms.setdefault((row["flow"], row["target"]), []).append(
                CategoryAlarm(str(category), opened, resolved)
            )
    return alarms


def _events_telling(store: Store, alert_ids: list[str]) -> dict[str, list[tuple[int, str]]]:
    """The openings and escalations of ``alert_ids``: (milliseconds, detail) per alert id."""
    if not alert_ids:
        return {}
    rows = store.query_rows(
        "SELECT alert_id, toUnixTimestamp64Milli(at), detail "
        f"FROM {store.table(EVENTS_TABLE)} "
        "WHERE event IN ('opened', 'escalated') AND has(splitByChar(',', {ids:String}), alert_id)",
        # one string, not an array, as in ``lifecycle.opening_events``; ids are hex
        {"ids": ",".join(alert_ids)},
    )
    told: dict[str, list[tuple[int, str]]] = {}
    for alert_id, millis, detail in rows:
        told.setdefault(str(alert_id), []).append((int(millis), str(detail)))
    return told


def alarms_at(
    alarms: Iterable[CategoryAlarm], minute: pd.Timestamp
) -> tuple[frozenset[str], frozenset[str]]:
    """The categories in alarm at ``minute`` and those whose alarm opened at it."""
    held = frozenset(alarm.category for alarm in alarms if alarm.holds(minute))
    opening = frozenset(alarm.category for alarm in alarms if alarm.opened == minute)
    return held, opening - held


def _told_at(category: str, told: Iterable[tuple[int, str]]) -> pd.Timestamp | None:
    """The minute of the first event whose text tells of ``category``, if any does."""
    stamps = [millis for millis, detail in told if detail and names_category(detail, category)]
    return _minute(min(stamps)) if stamps else None


def _minute(millis: float | None) -> pd.Timestamp | None:
    if millis is None or pd.isna(millis):
        return None
    return pd.Timestamp(int(millis), unit="ms").floor("min")


def _millis(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
