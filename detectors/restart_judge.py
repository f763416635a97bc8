"""How close the alerts of a runner stopped and started again come to those of one that never
stopped (``seamwatch evaluate --simulator --restart-every``).

A restart learns the week before from the store instead of living through it (see
:mod:`detectors.runner` and :mod:`detectors.past_alarms`), so it can judge a few minutes
differently. This compares the two runs over the same stored minutes: every alert's flow,
target, kinds, failure categories, opening and resolution minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from detectors.lifecycle import ALERTS_TABLE, EVENTS_TABLE
from detectors.runner import STATE_TABLE, DetectorRunner
from detectors.severity import Severity
from storage import Store

_EVALUATED = (ALERTS_TABLE, EVENTS_TABLE, STATE_TABLE)


@dataclass
class RestartComparison:
    """The alerts of one uninterrupted run and of one restarted every ``every``."""

    every: timedelta
    restarts: int
    alerts: int
    same: int
    only_uninterrupted: list[str] = field(default_factory=list)
    only_restarted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain form for JSON output."""
        return {
            "restart_every_minutes": self.every.total_seconds() / 60,
            "restarts": self.restarts,
            "alerts_uninterrupted": self.alerts,
            "alerts_the_same": self.same,
            "only_uninterrupted": self.only_uninterrupted,
            "only_restarted": self.only_restarted,
        }

    def lines(self) -> list[str]:
        """What a person reads: the count alike, then each alert that differs."""
        extra = len(self.only_restarted) - (self.alerts - self.same)
        more = f", and {extra} more only with restarts" if extra > 0 else ""
        lines = [
            f"Restarted every {_hours(self.every)} ({self.restarts} restarts): "
            f"{self.same} of {self.alerts} alerts the same as without a restart{more}."
        ]
        lines += [f"  only without restarts: {alert}" for alert in self.only_uninterrupted]
        lines += [f"  only with restarts:    {alert}" for alert in self.only_restarted]
        return lines


def compare_restarted(
    store: Store,
    start: datetime,
    end: datetime,
    every: timedelta,
    severity: Severity | None = None,
) -> RestartComparison:
    """Compare the alerts ``store`` holds, those of a run that evaluated up to ``end`` without
    a stop (the judge's), with those of a run from nothing evaluated, restarted every
    ``every`` after ``start``, judging with ``severity`` (the process's file by default). The
    store holds the restarted run's alerts afterwards."""
    in_force = (lambda: severity) if severity is not None else None
    uninterrupted = _alerts(store)
    _forget_evaluated(store)
    restarts = 0
    moment = start + every
    while moment < end:
        DetectorRunner(store, severity=in_force).catch_up(moment)
        restarts += 1
        moment += every
    DetectorRunner(store, severity=in_force).catch_up(end)
    restarted = _alerts(store)
    return RestartComparison(
        every,
        restarts,
        len(uninterrupted),
        len(set(uninterrupted) & set(restarted)),
        sorted(set(uninterrupted) - set(restarted)),
        sorted(set(restarted) - set(uninterrupted)),
    )


def _forget_evaluated(store: Store) -> None:
    for table in _EVALUATED:
        store.command(f"TRUNCATE TABLE {store.table(table)}")


def _alerts(store: Store) -> list[str]:
    """Each stored alert in one line: flow and target, kinds, categories, open and resolved."""
    rows = store.query_rows(
        "SELECT flow, target, arrayStringConcat(arraySort(kinds), ','), "
        "arrayStringConcat(arraySort(categories), ','), "
        "formatDateTime(opened_at, '%Y-%m-%d %H:%i', 'UTC'), "
        "ifNull(formatDateTime(resolved_at, '%Y-%m-%d %H:%i', 'UTC'), 'open') "
        f"FROM {store.table(ALERTS_TABLE)} FINAL ORDER BY opened_at, flow, target"
    )
    return [
        f"{flow} -> {target} [{kinds}{f'; {categories}' if categories else ''}] "
        f"{opened} to {resolved}"
        for flow, target, kinds, categories, opened, resolved in rows
    ]


def _hours(length: timedelta) -> str:
    hours = length.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{length.total_seconds() / 60:g} min"
