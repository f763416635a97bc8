"""Alertmanager's resends carry the alert as it is now, after a restart too.

Resends repeated the notification remembered at the alert's last post: an acknowledgement
given since (``seamwatch alerts ack ID --by bob``) never reached Alertmanager, and after a
restart the resumed resends had no ``description`` and no ``acknowledged_by`` annotation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from detectors import lifecycle
from detectors.alert_actions import acknowledge
from detectors.lifecycle import Alert, AlertBook, Signal
from detectors.severity import load_severity
from notify.outbox import Notifier
from notify.records import StoreRecorder
from tests.notify.helpers import DASHBOARD, FAST, route
from tests.notify.receiver import RecordingServer
from tests.notify.test_silences import FLOW, MINUTE, OPENING, Clock, _minute, _stop

JOINED = Signal("volume_drop", "volume_drop", 8.0, 100.0, 10.0, "volume from 100 to 10 a minute")


def _listening(server: RecordingServer, clock: Clock) -> Notifier:
    am = route("alertmanager", server.url, name="am", resend_interval_seconds=1)
    notifier = Notifier([am], load_severity(), DASHBOARD, StoreRecorder(), policy=FAST, clock=clock)
    notifier.start()
    lifecycle.add_listener(notifier.on_flush)
    return notifier


def _posted_after(server: RecordingServer, count: int, timeout_seconds: float = 10.0) -> dict:
    """The annotations of the first post after the first ``count``."""
    received = server.wait_for(count + 1, timeout_seconds)
    (alert,) = received[count].json
    return alert["annotations"]


def opened_alert(
    store,
    server: RecordingServer,
    listening: Callable[[RecordingServer, Clock], Notifier] = _listening,
) -> tuple[Clock, Notifier, AlertBook, Alert]:
    """An alert opened a few minutes ago, its opening posted to ``server`` by a notifier that
    ``listening`` starts."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    clock = Clock(start + MINUTE)
    notifier = listening(server, clock)
    book = AlertBook(store)
    alert = book.open(FLOW, "erp", "Payment", start, OPENING)
    _minute(book, alert, start)
    server.wait_for(1)
    return clock, notifier, book, alert


def test_a_resend_says_who_acknowledged_the_alert_since_its_last_post(store):
    with RecordingServer() as server:
        clock, notifier, book, alert = opened_alert(store, server)
        start = alert.opened_at
        try:
            (opening,) = server.received[0].json
            assert "acknowledged_by" not in opening["annotations"]
            acknowledge(store, alert.alert_id, "bob", "looking at the PSP", now=start + MINUTE)
            clock.now = start + 2 * MINUTE
            _minute(book, alert, start + MINUTE)
            posts = len(server.received)
            annotations = _posted_after(server, posts)
        finally:
            _stop(notifier)
    assert annotations["acknowledged_by"] == (
        f"bob at {(start + MINUTE):%Y-%m-%d %H:%M} UTC (looking at the PSP)"
    )
    assert annotations["description"] == "error_rate from 0.10% to 20.00%"
    assert annotations["summary"].endswith("opened: payments.capture -> erp")


def test_resends_after_a_restart_carry_what_changed_and_who_holds_the_alert(store):
    with RecordingServer() as server:
        clock, notifier, book, alert = opened_alert(store, server)
        start = alert.opened_at
        try:
            book.escalate(alert, start + MINUTE, JOINED)
            book.flush()
            server.wait_for(2)
            acknowledge(store, alert.alert_id, "bob", now=start + MINUTE)
        finally:
            _stop(notifier)  # the process stops with the alert firing
        time.sleep(0.2)
        posts = len(server.received)
        clock.now = start + 2 * MINUTE
        after = _listening(server, clock)
        try:
            again = AlertBook(store)
            reloaded = again.load_open()[(FLOW, "erp")]
            _minute(again, reloaded, start + 2 * MINUTE)
            annotations = _posted_after(server, posts)
        finally:
            _stop(after)
    assert annotations["description"] == "volume from 100 to 10 a minute"
    assert annotations["acknowledged_by"] == f"bob at {(start + MINUTE):%Y-%m-%d %H:%M} UTC"
    assert annotations["summary"].endswith("escalated: payments.capture -> erp")
