"""Prometheus Alertmanager: alerts posted to ``/api/v2/alerts``, resent while they fire.

Alertmanager treats an alert as resolved once its ``endsAt`` passes, so a firing alert is
posted again every ``resend_interval_seconds`` with ``endsAt`` four intervals ahead (the
rule Prometheus itself follows); a resolution is posted once with ``endsAt`` at the minute it
resolved. If Seamwatch stops, its alerts resolve in Alertmanager four intervals later.

Labels identify the alert in Alertmanager (its fingerprint) and are what routes match, so
they hold only what does not change while the alert is open: ``alertname``, ``alert_id``,
``flow``, ``target``, ``business_object``, ``tier`` and ``source``. The priority, kinds,
traffic and money grow as the alert goes on and are annotations.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from notify.base import Destination, HttpRequest
from notify.message import RESOLVED, Notification, format_time
from notify.routing import Route
from seamwatch.times import utc_text

ALERT_NAME = "SeamwatchFlowAlert"
API_PATH = "/api/v2/alerts"
# endsAt of a firing alert: this many resend intervals ahead, as Prometheus does.
ENDS_AT_INTERVALS = 4


class AlertmanagerDestination(Destination):
    """Posts alerts to an Alertmanager and keeps the firing ones alive."""

    kind = "alertmanager"

    def __init__(self, route: Route) -> None:
        super().__init__(route)
        self.resend_interval = timedelta(seconds=route.model.resend_interval_seconds)
        self._firing: dict[str, Notification] = {}
        # when each firing alert is posted again (time.monotonic): an interval after its
        # last post, not on a timer of the destination's own, which resent a new alert at once
        self._due: dict[str, float] = {}
        self._lock = threading.Lock()

    def track(self, notification: Notification, *, posted: bool = True) -> None:
        """Remember a firing alert for the resends, or forget it once resolved.

        ``posted``: the notification is being posted now, so its first resend is an interval
        away; a firing alert taken over from before a restart (False) is resent at once."""
        with self._lock:
            if notification.event == RESOLVED or notification.test:
                self._firing.pop(notification.alert_id, None)
                self._due.pop(notification.alert_id, None)
                return
            self._firing[notification.alert_id] = notification
            wait = self.resend_interval.total_seconds() if posted else 0.0
            self._due[notification.alert_id] = time.monotonic() + wait

    def refresh(self, notifications: list[Notification]) -> None:
        """Resend ``notifications`` in place of the firing alerts' remembered ones (the same
        messages, with the alert's facts and holder as they are now), keeping when each is
        due; one whose alert resolved, or that a newer message replaced meanwhile, is not."""
        with self._lock:
            for notification in notifications:
                current = self._firing.get(notification.alert_id)
                if current is not None and (current.event, current.at) == (
                    notification.event,
                    notification.at,
                ):
                    self._firing[notification.alert_id] = notification

    def firing(self) -> list[Notification]:
        """The alerts that are resent while they fire."""
        with self._lock:
            return list(self._firing.values())

    def request(self, notification: Notification) -> HttpRequest:
        return HttpRequest(self.api_url(), self.payload(notification))

    def resend_request(self, now: datetime | None = None) -> HttpRequest | None:
        """One POST of the firing alerts whose resend is due, with a fresh ``endsAt``, or None
        when none is; each is due again an interval later, whether the POST works or not."""
        moment = time.monotonic()
        with self._lock:
            due = [n for n in self._firing.values() if self._due[n.alert_id] <= moment]
            for notification in due:
                self._due[notification.alert_id] = moment + self.resend_interval.total_seconds()
        if not due:
            return None
        return HttpRequest(self.api_url(), [self._alert(n, now) for n in due])

    def payload(self, notification: Notification) -> list[dict[str, Any]]:
        return [self._alert(notification)]

    def api_url(self) -> str:
        """The configured address with the alerts API path (a path given there is kept)."""
        parts = urlsplit(self.route.url.get_secret_value())
        path = parts.path.rstrip("/")
        if not path.endswith(API_PATH):
            path += API_PATH
        return urlunsplit(parts._replace(path=path))

    def _alert(self, notification: Notification, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        if notification.event == RESOLVED and notification.resolved_at is not None:
            ends_at = max(notification.resolved_at, notification.opened_at + timedelta(seconds=1))
        else:
            ends_at = now + ENDS_AT_INTERVALS * self.resend_interval
        labels = {
            "alertname": ALERT_NAME,
            "alert_id": notification.alert_id,
            "flow": notification.flow,
            "target": notification.target,
            "business_object": notification.business_object,
            "tier": notification.tier,
            "source": "seamwatch",
        }
        if notification.test:
            labels["test"] = "true"
        annotations = {
            "summary": notification.headline,
            "description": notification.what_changed,
            "kinds": ", ".join(notification.shown_kinds),
            "priority": notification.priority_label,
            "priority_score": f"{notification.priority:.1f}",
            "affected_transactions": str(notification.affected),
            "money_at_risk": notification.money_text,
            "opened": format_time(notification.opened_at),
            "acknowledged_by": notification.acknowledgement,
            "top_error": notification.top_error,
            "dashboard": notification.alert_url,
            "lineage": notification.lineage_url,
        }
        return {
            # Alertmanager drops labels with empty values; leave them out rather than send "".
            "labels": {name: value for name, value in labels.items() if value},
            "annotations": {name: value for name, value in annotations.items() if value},
            "startsAt": utc_text(notification.opened_at),
            "endsAt": utc_text(ends_at),
            "generatorURL": notification.alert_url,
        }
