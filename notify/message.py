"""One notification as people read it: what happened to which flow, how bad, and where to look.

A :class:`Notification` is built once per alert event (opened, escalated, resolved) from the
alert, the severity rules in force and the dashboard's address; every destination renders the
same facts in its own format, so a message reads alike in Slack, Teams and Google Chat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from detectors.alert_text import (
    FINDING_SIGNALS,
    currency_split,
    kind_names,
    money_text,
    single_currency,
)
from detectors.lifecycle import Alert
from detectors.priority import priority, priority_label
from detectors.severity import Severity
from seamwatch.money import Converted
from seamwatch.times import readable_utc, utc_text
from seamwatch.user_text import one_line

OPENED = "opened"
ESCALATED = "escalated"
RESOLVED = "resolved"
# Events that reach chat; peaks are recorded in alert_events but would be noise in a channel.
NOTIFIED_EVENTS = (OPENED, ESCALATED, RESOLVED)

_EVENT_VERBS = {OPENED: "opened", ESCALATED: "escalated", RESOLVED: "resolved"}


@dataclass(frozen=True)
class Notification:
    """Everything a destination shows about one alert event."""

    event: str
    at: datetime
    alert_id: str
    flow: str
    target: str
    business_object: str
    kind: str
    kinds: tuple[str, ...]
    tier: str
    priority: float
    priority_label: str
    score: float
    affected: int
    money_at_risk: float
    opened_at: datetime
    resolved_at: datetime | None
    what_changed: str
    top_error: str
    alert_url: str
    lineage_url: str
    # money_at_risk by currency; "" is the part whose currency no span named
    money_by_currency: tuple[tuple[str, float], ...] = ()
    # the money at risk in the reporting currency, as the priority weighed it
    converted: Converted = Converted()
    test: bool = False
    # the failure categories the alert has shown (``mapping``): category silences match them
    categories: tuple[str, ...] = ()
    # who holds the alert (the latest to acknowledge it), when and with what note; the
    # outbox fills them in from the store when it sends the message
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None
    ack_note: str = ""
    # the alert event this message tells of when it goes as another (an escalation sent as
    # a destination's opening); empty: ``event`` itself
    source_event: str = ""

    @property
    def headline(self) -> str:
        """One line: priority, event, flow and target, e.g. ``P2 opened: billing -> erp``."""
        prefix = "[TEST] " if self.test else ""
        verb = _EVENT_VERBS.get(self.event, self.event)
        return f"{prefix}{self.priority_label} {verb}: {self.flow} -> {self.target}"

    @property
    def delivery_key(self) -> str:
        """Names this event of this alert, the same for every attempt and every restart."""
        return f"{self.alert_id}:{self.event}:{int(self.at.timestamp())}"

    @property
    def acknowledgement(self) -> str:
        """Who holds the alert, as the alert commands say it: ``ana at 2026-12-04 13:52 UTC
        (checking ERP item master)``; empty when nobody has acknowledged it."""
        if not self.acknowledged_by or self.acknowledged_at is None:
            return ""
        # escaped: a name stored before the limits on free text could forge a line of its own
        note = f" ({one_line(self.ack_note)})" if self.ack_note else ""
        return f"{one_line(self.acknowledged_by)} at {format_time(self.acknowledged_at)}{note}"

    @property
    def holder(self) -> dict[str, str] | None:
        """The acknowledgement of whoever holds the alert as the alert API lists it,
        ``{"by": "ana", "at": "...Z", "note": "..."}``; None when nobody has acknowledged it."""
        if not self.acknowledged_by or self.acknowledged_at is None:
            return None
        at = utc_text(self.acknowledged_at)
        return {"by": self.acknowledged_by, "at": at, "note": self.ack_note}

    @property
    def money_text(self) -> str:
        """The money at risk with its currency, e.g. ``4,321.00 EUR``; says when it mixes
        currencies or none is known, and what the priority weighed in the reporting currency
        (:func:`detectors.alert_text.money_text`): ``120,000 JPY ≈ 744.00 EUR``."""
        return money_text(*self._as_split, self.converted)

    @property
    def currency(self) -> str | None:
        """The one currency all the money at risk is in; None when mixed or not known."""
        return single_currency(*self._as_split)

    @property
    def _as_split(self) -> tuple[float, dict[str, float]]:
        """The money at risk as its split adds up, and the split: against the sum in cents,
        a BHD amount's third decimal would read as money of no currency."""
        parts = dict(self.money_by_currency)
        return (sum(parts.values()) if parts else self.money_at_risk), parts

    @property
    def shown_kinds(self) -> list[str]:
        """The kinds the alert has shown, a failure category as ``category:NAME``, as the
        alerts table names them (:func:`detectors.alert_text.kind_names`)."""
        return kind_names({"kind": self.kind, "kinds": self.kinds, "categories": self.categories})

    def facts(self) -> list[tuple[str, str]]:
        """The facts on-call reads first, as (label, value) pairs in reading order."""
        facts = [
            ("Flow", self.flow),
            ("Target", self.target),
            ("Business object", self.business_object or "-"),
            ("Kind", " + ".join(self.shown_kinds)),
            ("Tier", self.tier),
            ("Priority", f"{self.priority_label} ({self.priority:.1f})"),
            ("Score", f"{self.score:.1f}"),
            ("Affected transactions", f"{self.affected:,}"),
            ("Money at risk", self.money_text),
            ("Opened", format_time(self.opened_at)),
        ]
        if self.resolved_at is not None:
            open_minutes = (self.resolved_at - self.opened_at).total_seconds() / 60
            facts.append(("Resolved", f"{format_time(self.resolved_at)} ({open_minutes:.0f} min)"))
        return facts


def format_time(moment: datetime) -> str:
    """``2025-03-03 09:05 UTC``: minutes are what the detectors resolve."""
    return readable_utc(moment)


def build_notification(
    alert: Alert,
    event: dict[str, Any],
    severity: Severity,
    dashboard_url: str,
    *,
    test: bool = False,
) -> Notification:
    """The notification of one ``alert_events`` row of ``alert``."""
    tier = severity.tier_for(alert.flow, alert.business_object, alert.target)
    # split from the sum as counted: each currency is rounded to its own minor units
    split = currency_split(alert.money_at_risk, alert.money_by_currency)
    converted = severity.convert(split)
    value = priority(
        alert.peak_score,
        tier.weight,
        alert.affected,
        converted.amount,
        severity.money_full_weight,
    )
    kind = str(event.get("kind") or alert.kind)
    # a sum of amounts in floating point: cents, as the alert API gives it
    money = round(float(alert.money_at_risk), 2)
    return Notification(
        event=str(event["event"]),
        at=_utc(event["at"]),
        alert_id=alert.alert_id,
        flow=alert.flow,
        target=alert.target,
        business_object=alert.business_object,
        kind=kind,
        kinds=tuple(alert.kinds),
        tier=tier.name,
        priority=value,
        priority_label=priority_label(value),
        score=float(alert.peak_score),
        affected=int(alert.affected),
        money_at_risk=money,
        opened_at=_utc(alert.opened_at),
        resolved_at=_resolved_as_of(alert, _utc(event["at"])),
        what_changed=str(event.get("detail") or ""),
        top_error="" if _quote_restates_event(alert, event) else alert.top_error,
        # a test's sample alert and flow are nowhere in the store: its links open the pages
        alert_url=alert_link(dashboard_url, None if test else alert.alert_id),
        lineage_url=lineage_link(dashboard_url, None if test else alert.flow),
        money_by_currency=tuple(split),
        converted=converted,
        test=test,
        categories=tuple(alert.categories),
    )


def _quote_restates_event(alert: Alert, event: dict[str, Any]) -> bool:
    """Whether the alert's quote says again what the event says: a duplicate-posting or
    dropped alert quotes its findings, which its opening (or the escalation that found them)
    already gives as what changed. A resolution says only that it settled, so it keeps them."""
    return (
        alert.signal in FINDING_SIGNALS
        and event.get("kind") == alert.signal
        and event["event"] != RESOLVED
    )


def _resolved_as_of(alert: Alert, at: datetime) -> datetime | None:
    """When the alert resolved, if it had by ``at``: a catch-up builds the messages of a whole
    chunk after its last minute, and an opening must not read as already resolved."""
    if alert.resolved_at is None or _utc(alert.resolved_at) > at:
        return None
    return _utc(alert.resolved_at)


def alert_link(dashboard_url: str, alert_id: str | None) -> str:
    """The dashboard's Alerts page, naming the alert (the page alone without one)."""
    page = f"{dashboard_url.rstrip('/')}/alerts"
    return page if alert_id is None else f"{page}?{urlencode({'alert_id': alert_id})}"


def lineage_link(dashboard_url: str, flow: str | None) -> str:
    """The dashboard's Lineage page, naming the flow (the page alone without one)."""
    page = f"{dashboard_url.rstrip('/')}/lineage"
    return page if flow is None else f"{page}?flow={quote(flow, safe='')}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
