"""A silenced alert that is still open when its silence ends reaches chat, once, as an opening.

An alert opened under ``seamwatch alerts silence --flow 'payments.*'`` was recorded as
``silenced`` for every destination; after ``seamwatch alerts unsilence`` nothing was ever sent
for it, and its resolution was not sent either (resolutions go where the opening went).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from detectors import lifecycle
from detectors.alert_actions import acknowledge, add_silence, cancel_silence
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
    alert.money_by_currency = {"EUR": alert.money_at_risk}  # as the runner's ledger splits it
    book.flush()


def _outcomes(store) -> list[tuple[str, str, str]]:
    """The final outcomes in the delivery log (each went through ``queued`` first)."""
    return store.query_rows(
        f"SELECT event, destination, outcome FROM {store.table(DELIVERIES_TABLE)} "
        "WHERE outcome != 'queued' ORDER BY at, destination"
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
        assert sorted(tuple(row) for row in _outcomes(store)) == [
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


FORMATS = ("slack", "teams", "google_chat", "webhook", "alertmanager")


@contextmanager
def _every_format(clock: Clock) -> Iterator[tuple[Notifier, dict[str, RecordingServer]]]:
    """A notifier posting to one recording server per destination format."""
    with contextlib.ExitStack() as stack:
        servers = {kind: stack.enter_context(RecordingServer()) for kind in FORMATS}
        routes = [route(kind, server.url + "/hook", name=kind) for kind, server in servers.items()]
        notifier = Notifier(
            routes, load_severity(), DASHBOARD, StoreRecorder(), policy=FAST, clock=clock
        )
        notifier.start()
        lifecycle.add_listener(notifier.on_flush)
        try:
            yield notifier, servers
        finally:
            _stop(notifier)


def _acknowledgement_in(kind: str, body) -> str:
    """Where each format says who acknowledged the alert."""
    if kind == "slack":
        return next(b["text"]["text"] for b in body["blocks"] if "Acknowledged" in str(b))
    if kind == "teams":
        card = body["attachments"][0]["content"]["body"]
        return next(block["text"] for block in card if "Acknowledged" in str(block))
    if kind == "google_chat":
        widgets = body["cardsV2"][0]["card"]["sections"][0]["widgets"]
        return next(w["textParagraph"]["text"] for w in widgets if "Acknowledged" in str(w))
    if kind == "webhook":
        return body["acknowledgement"]
    return body[0]["annotations"]["acknowledged_by"]


@pytest.mark.parametrize("ends", ["ended", "expired"])
def test_an_opening_sent_after_a_silence_says_who_acknowledged_the_alert_meanwhile(
    store, start, ends
):
    # ana took the alert on while it was silenced; the opening sent when the silence ended
    # did not say so, and the channel started on it a second time
    clock = Clock(start + MINUTE)
    silence = add_silence(store, timedelta(minutes=30), flow="payments.*", now=start)
    with _every_format(clock) as (_, servers):
        book = AlertBook(store)
        alert = book.open(FLOW, "erp", "Payment", start, OPENING)
        _minute(book, alert, start)
        acknowledged_at = start + 2 * MINUTE
        acknowledge(store, alert.alert_id, "ana", "checking ERP item master", acknowledged_at)
        if ends == "ended":
            cancel_silence(store, silence["silence_id"])
            clock.now = start + 3 * MINUTE
        else:
            clock.now = start + 31 * MINUTE
        _minute(book, alert, start + 3 * MINUTE)
        bodies = {kind: server.wait_for(1)[0].json for kind, server in servers.items()}

    said = f"ana at {acknowledged_at:%Y-%m-%d %H:%M} UTC (checking ERP item master)"
    assert {kind: _acknowledgement_in(kind, body) for kind, body in bodies.items()} == {
        "slack": f"*Acknowledged by:* {said}",
        "teams": f"Acknowledged by {said}",
        "google_chat": f"<b>Acknowledged by:</b> {said}",
        "webhook": {
            "by": "ana",
            "at": acknowledged_at.isoformat().replace("+00:00", ".000Z"),
            "note": "checking ERP item master",
        },
        "alertmanager": said,
    }
    assert bodies["webhook"]["event"] == "opened"


def test_an_opening_nobody_acknowledged_says_nothing_of_it(store, start):
    with _every_format(Clock(start)) as (_, servers):
        book = AlertBook(store)
        _minute(book, book.open(FLOW, "erp", "Payment", start, OPENING), start)
        bodies = {kind: server.wait_for(1)[0].json for kind, server in servers.items()}
    assert not any("Acknowledged" in str(body) for body in bodies.values())
    assert bodies["webhook"]["acknowledgement"] is None
    assert "acknowledged_by" not in bodies["alertmanager"][0]["annotations"]


def _category(name: str) -> Signal:
    return Signal("exception_category", f"category:{name}", 9.0, 0.001, 0.2, f"{name} failures")


@contextmanager
def _mapping_silenced(store, start: datetime, servers) -> Iterator[Notifier]:
    """The notifier listening while a silence of the mapping category of payments holds."""
    add_silence(store, timedelta(minutes=30), flow="payments.*", kind="category:Mapping", now=start)
    notifier = _listening(servers, Clock(start + MINUTE))
    try:
        yield notifier
    finally:
        _stop(notifier)


def test_a_category_silence_withholds_that_category_alone(store, start, servers):
    # --kind category:mapping was refused; exception_category withheld every category
    ops, finance = servers
    with _mapping_silenced(store, start, servers):
        book = AlertBook(store)
        book.open(FLOW, "erp", "Payment", start, _category("mapping"))
        book.open("payments.refund", "erp", "Payment", start, _category("timeout"))
        book.flush()
        (sent,) = ops.wait_for(1)
    assert sent.json["alert"]["flow"] == "payments.refund"
    assert sorted((row[1], row[2]) for row in _outcomes(store)) == [
        ("finance", "sent"),
        ("finance", "silenced"),
        ("ops", "sent"),
        ("ops", "silenced"),
    ]


def test_a_second_category_ends_a_category_silence_and_the_opening_goes_out(store, start, servers):
    ops, finance = servers
    with _mapping_silenced(store, start, servers) as notifier:
        book = AlertBook(store)
        alert = book.open(FLOW, "erp", "Payment", start, _category("mapping"))
        book.observe(alert, start, _category("mapping"), 2, 2, 0.0, "no tax code mapped")
        book.flush()
        # the error rate joins: the same failures, still silenced
        book.escalate(alert, start + MINUTE, OPENING)
        book.flush()
        assert ops.received == [] and notifier.withheld
        # a timeout burst is a failure of its own, which the silence does not speak for
        book.escalate(alert, start + 2 * MINUTE, _category("timeout"))
        book.flush()
        (opened,) = ops.wait_for(1)
        finance.wait_for(1)
    assert opened.json["event"] == "opened"
    assert opened.json["alert"]["kinds"] == ["exception_category", "error_rate"]
    fields = finance.received[0].json["blocks"][2]["fields"]
    facts = dict(field["text"].split("\n") for field in fields)
    assert facts["*Kind*"] == "category:mapping + category:timeout + error_rate"


def test_notifications_first_set_up_announce_a_silenced_alert_with_its_next_escalation(
    store, start, servers
):
    # the alert opened and was silenced while no notification file was given; after a
    # restart with one, the joining category ended the silence but no channel heard of it.
    # The start finds the opening undelivered and records it as silenced.
    ops, finance = servers
    add_silence(store, timedelta(minutes=30), flow="payments.*", kind="category:Mapping", now=start)
    book = AlertBook(store)
    alert = book.open(FLOW, "erp", "Payment", start, _category("mapping"))
    book.observe(alert, start, _category("mapping"), 2, 2, 0.0, "no tax code mapped")
    book.flush()

    notifier = _listening(servers, Clock(start + 2 * MINUTE))
    try:
        again = AlertBook(store)
        reloaded = again.load_open()[(FLOW, "erp")]
        # a minute with nothing new: the opening, raised before notifications were set up,
        # is kept back by the silence
        again.observe(reloaded, start + MINUTE, _category("mapping"), 2, 2, 0.0, "no tax code")
        again.flush()
        # the two rows may fall in different milliseconds, so their order is not the names'
        assert sorted(tuple(row) for row in _outcomes(store)) == [
            ("opened", "finance", "silenced"),
            ("opened", "ops", "silenced"),
        ]
        again.escalate(reloaded, start + 2 * MINUTE, _category("timeout"))
        again.flush()
        (opened,) = ops.wait_for(1)
        (posted,) = finance.wait_for(1)
    finally:
        _stop(notifier)
    assert opened.json["event"] == "opened"
    assert opened.json["alert"]["kinds"] == ["exception_category"]
    assert posted.json["text"].startswith("P") and " opened: " in posted.json["text"]
    assert sorted((row[0], row[1], row[2]) for row in _outcomes(store)) == [
        ("opened", "finance", "sent"),
        ("opened", "finance", "silenced"),
        ("opened", "ops", "sent"),
        ("opened", "ops", "silenced"),
    ]
