"""The alert lifecycle, stored in ClickHouse: open, update, escalate, resolve.

There is at most one open alert per flow and target system: signals of several kinds (latency,
error rate, volume) that fire on the same flow join the open alert instead of opening new ones,
which groups and deduplicates them; those of one minute open or join it together, in one
event. An alert's id is derived from its flow, target and opening minute, and events are keyed
by alert, time and type, so evaluating the same minutes twice (a restart between writing
alerts and recording progress) writes the same rows again instead of new ones.

Tables (migrations 20, 21 and 24): ``alerts`` keeps every version of an alert and the newest
wins (ReplacingMergeTree on ``version``); ``alert_events`` records openings, escalations, peaks and
resolutions for the notification outbox; silences and acknowledgements live in
:mod:`detectors.alert_actions`. It also records, for a restart to read back
(:mod:`detectors.past_alarms`) and for the dashboard, the signals of an open alert that settled
(``eased``) and those that fired again after settling (``recurred``); neither is notified.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from detectors.alert_text import CATEGORY_PREFIX, compared, settled_text
from storage import Store

logger = logging.getLogger(__name__)

ALERTS_TABLE = "alerts"
EVENTS_TABLE = "alert_events"
OPEN = "open"
RESOLVED = "resolved"
# A new peak is recorded as an event when the score has grown by this factor since the last one.
PEAK_EVENT_GROWTH = 1.5

_TIME = pa.timestamp("ms", tz="UTC")
_ALERT_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("flow", pa.string()),
        ("target", pa.string()),
        ("business_object", pa.string()),
        ("kind", pa.string()),
        ("kinds", pa.list_(pa.string())),
        ("categories", pa.list_(pa.string())),
        ("state", pa.string()),
        ("opened_at", _TIME),
        ("updated_at", _TIME),
        ("resolved_at", _TIME),
        ("signal", pa.string()),
        ("score", pa.float64()),
        ("peak_score", pa.float64()),
        ("baseline", pa.float64()),
        ("observed", pa.float64()),
        ("affected", pa.uint64()),
        ("failed", pa.uint64()),
        ("money_at_risk", pa.float64()),
        ("top_error", pa.string()),
        ("money_by_currency", pa.map_(pa.string(), pa.float64())),
        ("version", pa.uint64()),
    ]
)
_EVENT_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("at", _TIME),
        ("event", pa.string()),
        ("kind", pa.string()),
        ("score", pa.float64()),
        ("detail", pa.string()),
    ]
)


@dataclass
class Alert:
    """One alert of a flow and target; ``kinds`` lists every signal kind that joined it.

    ``money_by_currency`` splits ``money_at_risk`` by the transactions' currency (``""``: none
    named); it is stored with the alert (schema version 24), so every reader can name the
    currencies without adding them up. An alert stored before that version has none.
    """

    alert_id: str
    flow: str
    target: str
    business_object: str
    kind: str
    kinds: list[str]
    state: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    signal: str
    score: float
    peak_score: float
    baseline: float
    observed: float
    affected: int = 0
    failed: int = 0
    money_at_risk: float = 0.0
    top_error: str = ""
    # the failure categories the alert has shown, in the order they first fired (``mapping``)
    categories: list[str] = field(default_factory=list)
    money_by_currency: dict[str, float] = field(default_factory=dict)
    _last_peak_event: float = field(default=0.0, repr=False)
    # signals (``category:mapping``) that settled while the alert stayed open, until they
    # fire again; not stored: a restart reads it back from the ``eased`` events
    eased: set[str] = field(default_factory=set, repr=False)


@dataclass(frozen=True)
class Signal:
    """What a detector saw on one minute: the kind, the signal, its score and values."""

    kind: str
    signal: str
    score: float
    baseline: float
    observed: float
    detail: str = ""


AlertListener = Callable[[Store, list["Alert"], list[dict[str, object]]], None]
# Told of every flush: the store, the alerts that changed and the events written (chat
# notifications listen here). A listener must return quickly and must not raise.
_listeners: list[AlertListener] = []


def add_listener(listener: AlertListener) -> None:
    """Call ``listener`` after every flush of every alert book in this process."""
    _listeners.append(listener)


def remove_listener(listener: AlertListener) -> None:
    """Stop calling ``listener``."""
    if listener in _listeners:
        _listeners.remove(listener)


def alert_id_for(flow: str, target: str, opened_at: datetime) -> str:
    """The stable id of the alert of ``flow`` and ``target`` opened at ``opened_at``."""
    text = f"{flow}\x1f{target}\x1f{opened_at.isoformat()}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def stored_id(typed: str) -> str:
    """An alert or silence id as typed, in the case it is stored in: ids are lowercase hex
    (:func:`alert_id_for`), so ``190BD4DFFCEDECB0`` names the alert ``190bd4dffcedecb0``."""
    return typed.lower()


class AlertBook:
    """Open alerts of a detector runner, with their changes buffered until ``flush``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.open_alerts: dict[tuple[str, str], Alert] = {}
        self._changed: dict[str, Alert] = {}
        self._events: list[dict[str, object]] = []
        self.opened = 0
        self.resolved = 0

    def load_open(self) -> dict[tuple[str, str], Alert]:
        """Read the alerts that are open in the store (after a restart)."""
        rows = self.store.query_df(
            f"SELECT * EXCEPT version FROM {self.store.table(ALERTS_TABLE)} FINAL "
            "WHERE state = {state:String}",
            {"state": OPEN},
        )
        self.open_alerts = {}
        for row in rows.to_dict("records"):
            alert = _alert_from_row(row)
            self.open_alerts[(alert.flow, alert.target)] = alert
        return self.open_alerts

    def open(
        self,
        flow: str,
        target: str,
        business_object: str,
        at: datetime,
        signal: Signal,
        *joining: Signal,
    ) -> Alert:
        """Open the alert of ``flow`` and ``target`` on ``signal``'s onset.

        ``joining`` are the other onsets of the same minute: the alert opens with their kinds
        and categories too, in one ``opened`` event that says what changed for each, rather
        than opening and escalating in the same minute (two messages a few milliseconds
        apart, the second telling nothing the first did not)."""
        alert = Alert(
            alert_id=alert_id_for(flow, target, at),
            flow=flow,
            target=target,
            business_object=business_object,
            kind=signal.kind,
            kinds=[],
            state=OPEN,
            opened_at=at,
            updated_at=at,
            resolved_at=None,
            signal=signal.signal,
            score=signal.score,
            peak_score=signal.score,
            baseline=signal.baseline,
            observed=signal.observed,
            _last_peak_event=signal.score,
        )
        news = _join(alert, (signal, *joining))
        self.open_alerts[(flow, target)] = alert
        self.opened += 1
        self._event(alert, at, "opened", signal, _changes_text(news))
        self._changed[alert.alert_id] = alert
        return alert

    def escalate(self, alert: Alert, at: datetime, *signals: Signal) -> None:
        """Signals of another kind, or failure categories the alert has not shown, fired on
        the flow of an open alert: they join the alert, in one ``escalated`` event for the
        minute ``at`` that says what changed for each, led by the strongest (its kind).

        A second category is a failure of its own (a timeout burst during a mapping
        incident): on-call hears of it, as of a new kind, and it is listed in ``categories``.

        A signal that settled while the alert stayed open (:meth:`ease`) and fires again is
        not news: its return is one ``recurred`` event for the minute, which says what changed
        for each as an escalation would, and changes nothing else (on-call heard of it when it
        first joined, and the alert never closed)."""
        news = sorted(_join(alert, signals), key=lambda signal: signal.score, reverse=True)
        back = [signal for signal in signals if signal.signal in alert.eased]
        alert.eased.difference_update(signal.signal for signal in back)
        if back:
            back.sort(key=lambda signal: signal.score, reverse=True)
            self._event(alert, at, "recurred", back[0], _changes_text(back))
        if not news:
            return
        alert.updated_at = at
        self._event(alert, at, "escalated", news[0], _changes_text(news))
        for signal in news:
            self._peak(alert, at, signal)
        self._changed[alert.alert_id] = alert

    def ease(self, alert: Alert, at: datetime, *signals: Signal) -> None:
        """The alarms of ``signals`` settled in the minute ``at`` while another signal keeps
        the alert open: one ``eased`` event that names each (:func:`settled_text`), led by
        the first. Nothing else changes; a signal that fires again is ``recurred``."""
        alert.eased.update(signal.signal for signal in signals)
        if signals:
            detail = "; ".join(settled_text(signal.signal) for signal in signals)
            self._event(alert, at, "eased", signals[0], detail)

    def observe(
        self,
        alert: Alert,
        at: datetime,
        strongest: Signal,
        affected: int,
        failed: int,
        money_at_risk: float,
        top_error: str,
    ) -> None:
        """Add one minute of an open alert: its strongest signal, traffic and money."""
        alert.updated_at = at
        alert.score = strongest.score
        alert.affected += int(affected)
        alert.failed += int(failed)
        alert.money_at_risk += float(money_at_risk)
        if top_error:
            alert.top_error = top_error
        self._peak(alert, at, strongest)
        self._changed[alert.alert_id] = alert

    def resolve(self, alert: Alert, at: datetime) -> None:
        """Every signal of the alert has settled: close it."""
        alert.state = RESOLVED
        alert.resolved_at = at
        alert.updated_at = at
        self.open_alerts.pop((alert.flow, alert.target), None)
        self.resolved += 1
        self._events.append(
            {
                "alert_id": alert.alert_id,
                "at": at,
                "event": "resolved",
                "kind": alert.kind,
                "score": alert.score,
                "detail": (
                    "every signal back to its usual range (at its worst it scored "
                    f"{alert.peak_score:.1f})"
                ),
            }
        )
        self._changed[alert.alert_id] = alert

    def flush(self) -> int:
        """Write the buffered alert versions and events; return how many alerts changed."""
        changed = list(self._changed.values())
        if changed:
            self.store.insert_arrow(ALERTS_TABLE, _alert_table(changed))
        if self._events:
            self.store.insert_arrow(EVENTS_TABLE, pa.Table.from_pylist(self._events, _EVENT_SCHEMA))
        for listener in tuple(_listeners):
            listener(self.store, changed, list(self._events))
        self._changed.clear()
        self._events.clear()
        return len(changed)

    def _peak(self, alert: Alert, at: datetime, signal: Signal) -> None:
        if signal.score <= alert.peak_score:
            return
        alert.peak_score = signal.score
        alert.signal = signal.signal
        alert.observed = signal.observed
        alert.baseline = signal.baseline
        if signal.score >= PEAK_EVENT_GROWTH * alert._last_peak_event:
            alert._last_peak_event = signal.score
            self._event(alert, at, "peaked", signal, _change_text(signal))

    def _event(self, alert: Alert, at: datetime, event: str, signal: Signal, detail: str) -> None:
        self._events.append(
            {
                "alert_id": alert.alert_id,
                "at": at,
                "event": event,
                "kind": signal.kind,
                "score": signal.score,
                "detail": detail,
            }
        )


def opening_events(store: Store, alert_ids: list[str]) -> dict[str, dict[str, object]]:
    """The ``opened`` event of each of ``alert_ids``, as ``flush`` wrote it, by alert id."""
    return _first_events(store, alert_ids, "event = 'opened'", "at")


def latest_told_events(store: Store, alert_ids: list[str]) -> dict[str, dict[str, object]]:
    """The latest opening or escalation of each of ``alert_ids`` (what its latest message
    said changed), as ``flush`` wrote it, by alert id."""
    return _first_events(store, alert_ids, "event IN ('opened', 'escalated')", "at DESC")


def _first_events(
    store: Store, alert_ids: list[str], condition: str, order: str
) -> dict[str, dict[str, object]]:
    """The first event of each of ``alert_ids`` meeting ``condition`` in ``order``."""
    if not alert_ids:
        return {}
    frame = store.query_df(
        f"SELECT alert_id, at, event, kind, score, detail FROM {store.table(EVENTS_TABLE)} "
        f"WHERE {condition} AND has(splitByChar(',', {{ids:String}}), alert_id) "
        f"ORDER BY alert_id, {order} LIMIT 1 BY alert_id",
        # one string, not an array: the embedded store passes arrays unquoted; ids are hex
        {"ids": ",".join(alert_ids)},
    )
    found: dict[str, dict[str, object]] = {}
    for row in frame.to_dict("records"):
        row["at"] = row["at"].to_pydatetime()
        found[str(row["alert_id"])] = row
    return found


def notified_events_since(store: Store, since: datetime) -> list[dict[str, object]]:
    """The openings, escalations and resolutions raised at or after ``since``, as ``flush``
    wrote them (each once, though a minute evaluated twice writes its events twice)."""
    frame = store.query_df(
        f"SELECT alert_id, at, event, kind, score, detail FROM {store.table(EVENTS_TABLE)} FINAL "
        "WHERE toUnixTimestamp64Milli(at) >= {since:Int64} "
        "AND event IN ('opened', 'escalated', 'resolved') ORDER BY at, alert_id",
        {"since": round(since.timestamp() * 1000)},
    )
    events = frame.to_dict("records")
    for row in events:
        row["at"] = row["at"].to_pydatetime()
    return events


def load_alerts(store: Store, alert_ids: list[str]) -> dict[str, Alert]:
    """The newest stored version of each of ``alert_ids``, open or resolved, by alert id."""
    if not alert_ids:
        return {}
    frame = store.query_df(
        f"SELECT * EXCEPT version FROM {store.table(ALERTS_TABLE)} FINAL "
        "WHERE has(splitByChar(',', {ids:String}), alert_id)",
        # one string, not an array, as in opening_events
        {"ids": ",".join(alert_ids)},
    )
    alerts = [_alert_from_row(row) for row in frame.to_dict("records")]
    return {alert.alert_id: alert for alert in alerts}


def _alert_from_row(row: dict[str, Any]) -> Alert:
    """An :class:`Alert` from one row of ``alerts`` as ``query_df`` reads it."""
    row["categories"] = list(row["categories"])
    row["kinds"] = list(row["kinds"])
    row["money_by_currency"] = currency_map(row["money_by_currency"])
    for name in ("opened_at", "updated_at"):
        row[name] = row[name].to_pydatetime()
    resolved_at = row["resolved_at"]
    row["resolved_at"] = (
        None if resolved_at is None or pd.isna(resolved_at) else (resolved_at.to_pydatetime())
    )
    alert = Alert(**row)
    alert._last_peak_event = alert.peak_score
    return alert


def _join(alert: Alert, signals: tuple[Signal, ...]) -> list[Signal]:
    """Add the kinds and categories of ``signals`` to the alert; those that were news to it."""
    news = []
    for signal in signals:
        new_category = _note_category(alert, signal)
        if signal.kind in alert.kinds and not new_category:
            continue
        if signal.kind not in alert.kinds:
            alert.kinds.append(signal.kind)
        news.append(signal)
    return news


def _note_category(alert: Alert, signal: Signal) -> bool:
    """List the category of ``signal`` in the alert's categories; whether it was new there."""
    if not signal.signal.startswith(CATEGORY_PREFIX):
        return False
    category = signal.signal.removeprefix(CATEGORY_PREFIX)
    if category in alert.categories:
        return False
    alert.categories.append(category)
    return True


def _changes_text(signals: list[Signal]) -> str:
    """What changed for each of ``signals``, news in one minute, in their order."""
    return "; ".join(_change_text(signal) for signal in signals)


def _change_text(signal: Signal) -> str:
    if signal.detail:
        return signal.detail
    if signal.kind == "error_rate":
        return compared(signal.signal, signal.baseline, signal.observed, "{:.2%}".format)
    unit = " ms" if signal.kind == "latency" else ""
    return compared(
        signal.signal, signal.baseline, signal.observed, lambda value: f"{value:.4g}{unit}"
    )


def _alert_table(alerts: list[Alert]) -> pa.Table:
    rows = []
    for alert in alerts:
        row = asdict(alert)
        row.pop("_last_peak_event")
        row.pop("eased")
        row["money_by_currency"] = sorted(alert.money_by_currency.items())
        row["kinds"] = list(alert.kinds)
        row["version"] = _version(alert)
        rows.append(row)
    return pa.Table.from_pylist(rows, _ALERT_SCHEMA)


def currency_map(stored: Any) -> dict[str, float]:
    """The ``money_by_currency`` column as read back: a mapping from either backend (the
    embedded store gives a dict, a server's driver may give pairs), empty when missing."""
    if stored is None:
        return {}
    pairs = stored.items() if isinstance(stored, Mapping) else stored
    return {str(code): float(amount) for code, amount in pairs}


def _version(alert: Alert) -> int:
    # Later minutes win; at the same minute a resolved version wins over an open one.
    millis = int(alert.updated_at.timestamp() * 1000)
    return millis * 10 + (1 if alert.state == RESOLVED else 0)
