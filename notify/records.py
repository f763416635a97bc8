"""The delivery log: what happened to every notification, per destination.

Table ``notify_deliveries`` (migration 22): one row per notification and destination with its
outcome:

* ``sent``: the destination accepted it (2xx), after ``attempts`` tries;
* ``failed``: retries gave up, or the destination refused it for good (4xx);
* ``dropped``: the destination's queue was full, or the process stopped before its turn;
* ``stale``: older than the catch-up limit when it was raised, so recorded and not sent;
* ``silenced``: a silence in force matched the alert.

The destination's URL is never stored: its name and kind are.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    from storage.base import Store

logger = logging.getLogger(__name__)

DELIVERIES_TABLE = "notify_deliveries"
SENT = "sent"
FAILED = "failed"
DROPPED = "dropped"
STALE = "stale"
SILENCED = "silenced"

_TIME = pa.timestamp("ms", tz="UTC")
_SCHEMA = pa.schema(
    [
        ("at", _TIME),
        ("alert_id", pa.string()),
        ("event", pa.string()),
        ("event_at", _TIME),
        ("destination", pa.string()),
        ("kind", pa.string()),
        ("outcome", pa.string()),
        ("attempts", pa.uint16()),
        ("http_status", pa.uint16()),
        ("reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class Outcome:
    """What became of one notification at one destination."""

    at: datetime
    alert_id: str
    event: str
    event_at: datetime
    destination: str
    kind: str
    outcome: str
    attempts: int = 0
    http_status: int = 0
    reason: str = ""


class Recorder(Protocol):
    """Where outcomes go."""

    def record(self, outcomes: list[Outcome]) -> None:
        """Keep ``outcomes``; never raise."""


class StoreRecorder:
    """Writes outcomes to ``notify_deliveries`` and counts them by destination and outcome.

    The store is handed over later (``attach``) when the process opens it elsewhere: the
    detector runner's store reaches the notifier with its first alerts.
    """

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def attach(self, store: Store) -> None:
        """Write to ``store`` from now on."""
        self.store = store

    def record(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        with self._lock:
            self.counts.update((o.destination, o.outcome) for o in outcomes)
        if self.store is None:
            return
        try:
            rows = pa.Table.from_pylist([asdict(o) for o in outcomes], _SCHEMA)
            self.store.insert_arrow(DELIVERIES_TABLE, rows)
        except Exception as exc:  # noqa: BLE001 - the log is an audit trail, never worth a crash
            logger.warning(
                "Could not record %d notification outcome(s) in %s: %s",
                len(outcomes),
                DELIVERIES_TABLE,
                exc,
            )


class CallbackRecorder:
    """Hands outcomes to a function (the ``notify test`` command prints them)."""

    def __init__(self, callback: Callable[[Outcome], None]) -> None:
        self._callback = callback

    def record(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self._callback(outcome)


def told_and_withheld(
    store: Store, destination: str, alert_ids: list[str]
) -> tuple[set[str], set[str]]:
    """Which of ``alert_ids`` had an opening or escalation sent to ``destination`` (told), and
    which had them all kept from it by a silence, none sent (withheld)."""
    if not alert_ids:
        return set(), set()
    rows = store.query_rows(
        f"SELECT alert_id, countIf(outcome = {{sent:String}}) > 0, "
        f"countIf(outcome = {{silenced:String}}) > 0 FROM {store.table(DELIVERIES_TABLE)} "
        "WHERE destination = {destination:String} AND event IN ('opened', 'escalated') "
        "GROUP BY alert_id",
        {"destination": destination, "sent": SENT, "silenced": SILENCED},
    )
    wanted = set(alert_ids)
    told = {str(alert_id) for alert_id, sent, _ in rows if sent and alert_id in wanted}
    withheld = {
        str(alert_id)
        for alert_id, sent, silenced in rows
        if silenced and not sent and alert_id in wanted
    }
    return told, withheld


def delivery_tables(store: Store, retention_days: int | None) -> list[str]:
    """Migration 22: the delivery log, kept 90 days."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table(DELIVERIES_TABLE)} (
            at DateTime64(3, 'UTC'),
            alert_id String,
            event LowCardinality(String),
            event_at DateTime64(3, 'UTC'),
            destination LowCardinality(String),
            kind LowCardinality(String),
            outcome LowCardinality(String),
            attempts UInt16,
            http_status UInt16,
            reason String
        ) ENGINE = MergeTree
        ORDER BY (destination, at)
        TTL toDateTime(at) + INTERVAL 90 DAY
        """
    ]
