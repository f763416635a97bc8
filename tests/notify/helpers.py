"""Alerts, notifications, routes and a recorder for the notification tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from detectors.lifecycle import Alert
from detectors.severity import load_severity
from notify.message import Notification, build_notification
from notify.outbox import RetryPolicy
from notify.records import Outcome
from notify.routing import Route, parse_routes

OPENED_AT = datetime(2025, 3, 3, 9, 5, tzinfo=UTC)
DASHBOARD = "https://seamwatch.example.test"
FAST = RetryPolicy(
    attempts=4, deadline_seconds=5.0, first_backoff_seconds=0.01, max_backoff_seconds=0.05
)


def make_alert(**changes: Any) -> Alert:
    """A critical flow's error-rate alert: P2 at 55.0 (the docs' worked example)."""
    fields: dict[str, Any] = {
        "alert_id": "a1b2c3d4e5f60718",
        "flow": "billing.invoice-post",
        "target": "erp",
        "business_object": "Invoice",
        "kind": "error_rate",
        "kinds": ["error_rate"],
        "state": "open",
        "opened_at": OPENED_AT,
        "updated_at": OPENED_AT,
        "resolved_at": None,
        "signal": "error_rate",
        "score": 10.0,
        "peak_score": 10.0,
        "baseline": 0.001,
        "observed": 0.2,
        "affected": 99,
        "failed": 99,
        "money_at_risk": 9999.0,
        "top_error": "tax code <T9> & rate not mapped",
        "money_by_currency": {"EUR": 9999.0},
    }
    fields.update(changes)
    return Alert(**fields)


def make_notification(
    event: str = "opened", at: datetime | None = None, **changes: Any
) -> Notification:
    """The notification of ``event`` on :func:`make_alert`."""
    alert = make_alert(**changes)
    row = {
        "alert_id": alert.alert_id,
        "event": event,
        "at": at or OPENED_AT,
        "kind": alert.kind,
        "detail": "error_rate from 0.10% to 20.00%",
    }
    return build_notification(alert, row, load_severity(), DASHBOARD)


def route(kind: str, url: str, **fields: Any) -> Route:
    """One route of ``kind`` posting to ``url``, with extra fields of the file."""
    lines = [f"  - name: {fields.pop('name', 'dest')}", f"    kind: {kind}", f"    url: '{url}'"]
    lines += [
        f"    {name}: {value!r}" if isinstance(value, str) else f"    {name}: {value}"
        for name, value in fields.items()
    ]
    return parse_routes("destinations:\n" + "\n".join(lines) + "\n")[0]


class ListRecorder:
    """Keeps outcomes in a list."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def record(self, outcomes: list[Outcome]) -> None:
        self.outcomes.extend(outcomes)

    def of(self, outcome: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.outcome == outcome]


def minutes_after_opening(minutes: float) -> datetime:
    return OPENED_AT + timedelta(minutes=minutes)
