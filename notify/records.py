"""The delivery log: what happened to every notification, per destination.

Table ``notify_deliveries`` (migration 22; ``source_event`` since migration 26): rows per
notification and destination, each with an outcome:

* ``queued``: waiting in the destination's queue, or cut short by a stop; not final: a
  restart delivers what has no final outcome yet (:mod:`notify.outbox`);
* ``sent``: the destination accepted it (2xx), after ``attempts`` tries;
* ``failed``: retries gave up, or the destination refused it for good (4xx); never written
  for a delivery that a stop cut short, which stays ``queued``;
* ``dropped``: the destination's queue was full (before migration 26 also: the process
  stopped before its turn);
* ``stale``: older than the catch-up limit when it was raised, so recorded and not sent;
* ``silenced``: a silence in force matched the alert.

``event`` is what the message said; ``source_event`` is the ``alert_events`` row it tells of.
They differ when an escalation goes to a destination never told of its alert: the message is
that destination's opening. The destination's URL is never stored: its name and kind are.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    from storage.base import Store

logger = logging.getLogger(__name__)

DELIVERIES_TABLE = "notify_deliveries"
QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
DROPPED = "dropped"
STALE = "stale"
SILENCED = "silenced"
# Outcomes after which a notification is never delivered again, restart or not.
FINAL_OUTCOMES = (SENT, FAILED, DROPPED, STALE, SILENCED)

_TIME = pa.timestamp("ms", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEMA = pa.schema(
    [
        ("at", _TIME),
        ("alert_id", pa.string()),
        ("event", pa.string()),
        ("source_event", pa.string()),
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
    # the alert event the message tells of, when it is not ``event`` (an escalation sent as
    # a destination's opening); empty: ``event`` itself
    source_event: str = ""


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
            rows = pa.Table.from_pylist([_row(o) for o in outcomes], _SCHEMA)
            self.store.insert_arrow(DELIVERIES_TABLE, rows)
        except Exception as exc:  # noqa: BLE001 - the log is an audit trail, never worth a crash
            logger.warning(
                "Could not record %d notification outcome(s) in %s: %s",
                len(outcomes),
                DELIVERIES_TABLE,
                exc,
            )


def _row(outcome: Outcome) -> dict[str, object]:
    """``outcome`` as a row of the delivery log."""
    row = asdict(outcome)
    row["source_event"] = outcome.source_event or outcome.event
    return row


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


def settled(store: Store, since: datetime) -> set[tuple[str, str, int, str]]:
    """The alert events whose notification has a final outcome at a destination, for events
    raised at or after ``since``: ``(alert_id, source_event, event_at in ms, destination)``."""
    rows = store.query_rows(
        "SELECT DISTINCT alert_id, source_event, toUnixTimestamp64Milli(event_at), destination "
        f"FROM {store.table(DELIVERIES_TABLE)} "
        "WHERE toUnixTimestamp64Milli(event_at) >= {since:Int64} "
        "AND has(splitByChar(',', {final:String}), outcome)",
        {"since": epoch_millis(since), "final": ",".join(FINAL_OUTCOMES)},
    )
    return {(str(a), str(e), int(at), str(d)) for a, e, at, d in rows}


def epoch_millis(moment: datetime) -> int:
    """``moment`` in whole milliseconds since the epoch, cut as the delivery log cuts times
    (rounding would key an event a millisecond later than its row)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


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


def delivery_source_events(store: Store, retention_days: int | None) -> list[str]:
    """Migration 26: the alert event each delivery tells of, so a start can tell which
    events reached which destination.

    Added in place: a row stored before reads its own ``event``, right but for an escalation
    that went as a destination's opening (it reads as that opening). Adding the column again
    changes nothing, so an interrupted migration can run once more."""
    return [
        f"ALTER TABLE {store.table(DELIVERIES_TABLE)} "
        "ADD COLUMN IF NOT EXISTS source_event LowCardinality(String) DEFAULT event AFTER event"
    ]
