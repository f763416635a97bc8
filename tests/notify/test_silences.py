"""A silenced alert that is still open when its silence ends reaches chat, once, as an opening.

An alert opened under ``seamwatch alerts silence --flow 'payments.*'`` was recorded as
``silenced`` for every destination; after ``seamwatch alerts unsilence`` nothing was ever sent
for it, and its resolution was not sent either (resolutions go where the opening went).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from detectors import lifecycle
from detectors.alert_actions import add_silence, cancel_silence
from detectors.lifecycle import Alert, AlertBook, Signal
from detectors.severity import load_severity
from notify.outbox import Notifier
from notify.records import DELIVERIES_TABLE, StoreRecorder
from tests.notify.helpers import DASHBOARD, FAST, route
from tests.notify.receiver import RecordingServer

FLOW = "payments.capture"
MINUTE = timedelta(minutes=1)
OPENING = Signal("error_rate", "error_rate", 12.0, 0.001, 0.2, "error_rate from 0.10% to 20.00%")


class Clock:
    """The notifier's wall clock, moved on by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def start() -> datetime:
    """A minute of the last few, so that its events are live, not a catch-up."""
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)


@pytest.fixture
def servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    with RecordingServer() as ops, RecordingServer() as finance:
        yield ops, finance


def _listening(servers, clock: Clock) -> Notifier:
    ops, finance = servers
    routes = [
        route("webhook", ops.url + "/hook", name="ops"),
        route("slack", finance.url + "/services/T/B/x", name="finance", flows=["payments.*"]),
    ]
    notifier = Notifier(
        routes, load_severity(), DASHBOARD, StoreRecorder(), policy=FAST, clock=clock
    )
    notifier.start()
    lifecycle.add_listener(notifier.on_flush)
    return notifier


def _stop(notifier: Notifier) -> None:
    lifecycle.remove_listener(notifier.on_flush)
    notifier.stop(timeout_seconds=2)


def _minute(book: AlertBook, alert, at: datetime) -> None:
    """One more minute of the open alert, as the runner writes it."""
    book.observe(alert, at, OPENING, 10, 10, 500.0, "card declined")
    book.flush()


def _outcomes(store) -> list[tuple[str, str, str]]:
    return store.query_rows(
        f"SELECT event, destination, outcome FROM {store.table(DELIVERIES_TABLE)} "
        "ORDER BY at, destination"
    )


def _events(server: RecordingServer) -> list[str]:
    return [request.json.get("event") or request.json["text"] for request in server.received]


@dataclass
class Scene:
    """An alert opened at ``start`` under a 30-minute silence, with the notifier listening."""

    clock: Clock
    silence_id: str
    notifier: Notifier
    book: AlertBook
    alert: Alert


@contextmanager
def _silenced_alert(store, start: datetime, servers) -> Iterator[Scene]:
    clock = Clock(start + MINUTE)
    silence = add_silence(store, timedelta(minutes=30), flow="payments.*", now=start)
    notifier = _listening(servers, clock)
    try:
        book = AlertBook(store)
        alert = book.open(FLOW, "erp", "Payment", start, OPENING)
        _minute(book, alert, start)
        yield Scene(clock, silence["silence_id"], notifier, book, alert)
    finally:
        _stop(notifier)


def test_unsilencing_an_open_alert_sends_its_opening_once_then_its_resolution(
    store, start, servers
):
    ops, finance = servers
    with _silenced_alert(store, start, servers) as scene:
        assert _outcomes(store) == [
            ("opened", "finance", "silenced"),
            ("opened", "ops", "silenced"),
        ]
        cancel_silence(store, scene.silence_id)
        scene.clock.now = start + 2 * MINUTE
        _minute(scene.book, scene.alert, start + MINUTE)
        (opened,) = ops.wait_for(1)
        finance.wait_for(1)
        # sent once: the next minutes send nothing more
        _minute(scene.book, scene.alert, start + 2 * MINUTE)
        scene.book.resolve(scene.alert, start + 3 * MINUTE)
        scene.clock.now = start + 3 * MINUTE
        scene.book.flush()
        ops.wait_for(2)
        finance.wait_for(2)
    assert _events(ops) == ["opened", "resolved"]
    assert [text.split(":")[0] for text in _events(finance)] == ["P2 opened", "P2 resolved"]
    # the opening as it was raised, with the alert's facts as they were when it went out
    assert opened.json["alert"]["opened_at"] == start.isoformat().replace("+00:00", ".000Z")
    assert opened.json["alert"]["what_changed"] == "error_rate from 0.10% to 20.00%"
    assert opened.json["alert"]["affected_transactions"] == 20
    assert [row[2] for row in _outcomes(store)] == ["silenced"] * 2 + ["sent"] * 4


def test_an_expired_silence_lets_the_opening_of_a_still_open_alert_through(store, start, servers):
    ops, finance = servers
    with _silenced_alert(store, start, servers) as scene:
        scene.clock.now = start + 29 * MINUTE
        _minute(scene.book, scene.alert, start + 28 * MINUTE)
        assert ops.received == [] and finance.received == []

        scene.clock.now = start + 31 * MINUTE  # the silence expired a minute ago
        _minute(scene.book, scene.alert, start + 30 * MINUTE)
        ops.wait_for(1)
        finance.wait_for(1)
        scene.book.resolve(scene.alert, start + 31 * MINUTE)
        scene.book.flush()
        ops.wait_for(2)
    assert _events(ops) == ["opened", "resolved"]


def test_a_restart_still_sends_the_opening_once_the_silence_ends(store, start, servers):
    ops, finance = servers
    with _silenced_alert(store, start, servers) as scene:
        pass  # the process stops with the alert open and silenced
    cancel_silence(store, scene.silence_id)
    after = _listening(servers, scene.clock)
    try:
        again = AlertBook(store)
        reloaded = again.load_open()[(FLOW, "erp")]
        _minute(again, reloaded, start + MINUTE)
        (opened,) = ops.wait_for(1)
        finance.wait_for(1)
        again.resolve(reloaded, start + 2 * MINUTE)
        again.flush()
        ops.wait_for(2)
    finally:
        _stop(after)
    assert _events(ops) == ["opened", "resolved"]
    assert opened.json["alert"]["what_changed"] == "error_rate from 0.10% to 20.00%"


def test_an_alert_that_resolved_while_silenced_is_never_sent(store, start, servers):
    ops, finance = servers
    with _silenced_alert(store, start, servers) as scene:
        scene.book.resolve(scene.alert, start + MINUTE)
        scene.book.flush()
        cancel_silence(store, scene.silence_id)
        scene.book.flush()  # the next minute's flush, with nothing open
    assert ops.received == [] and finance.received == []
    assert {row[2] for row in _outcomes(store)} == {"silenced"}
    assert scene.notifier.withheld == {}
