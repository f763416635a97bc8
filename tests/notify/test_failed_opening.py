"""A message that gave up told the destination nothing.

The opening of an alert was counted as heard by its destination once it was queued: when every
attempt failed (a webhook answering 503), the next escalation went there as a plain
``escalated`` message, so the channel never heard that the alert opened, and the end of a
silence sent no opening either. A restart, which reads the delivery log, already sent them.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from detectors import lifecycle
from detectors.alert_actions import add_silence, cancel_silence
from detectors.lifecycle import Alert, AlertBook, Signal
from detectors.severity import load_severity
from notify.outbox import Notifier
from notify.records import DELIVERIES_TABLE, StoreRecorder
from tests.notify.helpers import (
    DASHBOARD,
    FAST,
    ListRecorder,
    make_notification,
    minutes_after_opening,
    route,
)
from tests.notify.receiver import Answer, RecordingServer
from tests.notify.test_alertmanager_resends import opened_alert
from tests.notify.test_silences import FLOW, MINUTE, Clock, _minute, _stop

# FAST gives up after 4 attempts
OUTAGE = [Answer(503, body=b"service unavailable")] * FAST.attempts
JOINED = Signal("volume_drop", "volume_drop", 8.0, 100.0, 10.0, "volume from 100 to 10 a minute")


def _notifier(server: RecordingServer, recorder) -> Notifier:
    return Notifier(
        [route("webhook", server.url + "/hook", name="ops")],
        load_severity(),
        DASHBOARD,
        recorder,
        policy=FAST,
        clock=lambda: minutes_after_opening(2),
    )


def _until(check, timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_escalation_after_an_opening_that_gave_up_goes_as_the_opening():
    recorder = ListRecorder()
    with RecordingServer(list(OUTAGE)) as server:
        notifier = _notifier(server, recorder)
        notifier.start()
        try:
            notifier.submit([make_notification("opened")])
            _until(lambda: recorder.of("failed"))
            notifier.submit([make_notification("escalated", at=minutes_after_opening(1))])
            received = server.wait_for(FAST.attempts + 1)
        finally:
            notifier.stop(timeout_seconds=2)
    last = received[-1].json
    assert (last["event"], last["at"]) == ("opened", "2025-03-03T09:06:00.000Z")
    sent = recorder.of("sent")[0]
    assert (sent.event, sent.source_event) == ("opened", "escalated")


def test_an_escalation_queued_behind_an_opening_that_then_gave_up_goes_as_the_opening():
    # queued while the opening was still waiting its turn, then the opening failed for good
    recorder = ListRecorder()
    with RecordingServer(list(OUTAGE)) as server:
        notifier = _notifier(server, recorder)
        notifier.submit(
            [
                make_notification("opened"),
                make_notification("escalated", at=minutes_after_opening(1)),
            ]
        )
        notifier.start()
        try:
            received = server.wait_for(FAST.attempts + 1)
            _until(lambda: recorder.of("sent"))
        finally:
            notifier.stop(timeout_seconds=2)
    assert [r.json["event"] for r in received] == ["opened"] * (FAST.attempts + 1)
    finals = [o for o in recorder.outcomes if o.outcome != "queued"]
    assert [(o.event, o.source_event, o.outcome) for o in finals] == [
        ("opened", "opened", "failed"),
        ("opened", "escalated", "sent"),
    ]
    # it counts as heard now: the next escalation is one, and the resolution follows it
    notifier.submit([make_notification("escalated", at=minutes_after_opening(2))])
    assert notifier.workers[0].waiting() == 1
    assert notifier.workers[0]._queue.get_nowait().event == "escalated"


def test_a_resolution_goes_where_the_opening_is_still_being_retried():
    recorder = ListRecorder()
    with RecordingServer([Answer(503), Answer(503)]) as server:
        notifier = _notifier(server, recorder)
        notifier.submit([make_notification("opened")])
        resolved_at = minutes_after_opening(1)
        notifier.submit(
            [
                make_notification(
                    "resolved", at=resolved_at, state="resolved", resolved_at=resolved_at
                )
            ]
        )
        notifier.start()
        try:
            received = server.wait_for(4)
        finally:
            notifier.stop(timeout_seconds=2)
    assert [r.json["event"] for r in received] == ["opened"] * 3 + ["resolved"]


def _listening(server: RecordingServer, clock: Clock) -> Notifier:
    """A notifier recording into the store and listening to the alert book, as a process's."""
    notifier = Notifier(
        [route("webhook", server.url + "/hook", name="ops")],
        load_severity(),
        DASHBOARD,
        StoreRecorder(),
        policy=FAST,
        clock=clock,
    )
    notifier.start()
    lifecycle.add_listener(notifier.on_flush)
    return notifier


def _opening_failed(
    store, server: RecordingServer
) -> tuple[datetime, Clock, Notifier, AlertBook, Alert]:
    """An alert opened a few minutes ago whose opening gave up at ``server``."""
    clock, notifier, book, alert = opened_alert(store, server, _listening)
    _until(lambda: ("opened", "opened", "failed") in _outcomes(store))
    return alert.opened_at, clock, notifier, book, alert


def _outcomes(store) -> list[tuple[str, str, str]]:
    return store.query_rows(
        f"SELECT event, source_event, outcome FROM {store.table(DELIVERIES_TABLE)} "
        "WHERE outcome != 'queued' ORDER BY at"
    )


def test_a_silence_ending_sends_the_opening_that_gave_up_before_it(store):
    with RecordingServer(list(OUTAGE)) as ops:
        start, clock, notifier, book, alert = _opening_failed(store, ops)
        try:
            # silenced after its opening failed; the escalation under the silence is withheld
            silence = add_silence(store, timedelta(minutes=30), flow="payments.*", now=start)
            clock.now = start + 2 * MINUTE
            book.escalate(alert, start + MINUTE, JOINED)
            book.flush()
            assert ("escalated", "escalated", "silenced") in _outcomes(store)
            cancel_silence(store, silence["silence_id"])
            clock.now = start + 3 * MINUTE
            _minute(book, alert, start + 2 * MINUTE)
            received = ops.wait_for(FAST.attempts + 1)
            _until(lambda: _outcomes(store)[-1][2] == "sent")
        finally:
            _stop(notifier)
    assert received[-1].json["event"] == "opened"
    assert received[-1].json["alert"]["kinds"] == ["error_rate", "volume_drop"]
    assert _outcomes(store)[-1] == ("opened", "escalated", "sent")


def test_a_resolved_alert_is_forgotten_where_no_resolution_goes():
    # what each destination heard is kept per alert: a resolution ends it everywhere
    with RecordingServer() as server:
        routes = [
            route("webhook", server.url + "/a", name="all"),
            route("webhook", server.url + "/b", name="openings", events=["opened"]),
        ]
        notifier = Notifier(
            routes,
            load_severity(),
            DASHBOARD,
            ListRecorder(),
            policy=FAST,
            clock=lambda: minutes_after_opening(2),
        )
        for worker in notifier.workers:
            worker.mark_told("a1b2c3d4e5f60718")
        resolved_at = minutes_after_opening(1)
        notifier.submit(
            [
                make_notification(
                    "resolved", at=resolved_at, state="resolved", resolved_at=resolved_at
                )
            ]
        )
        everyone, openings_only = notifier.workers
        assert everyone.waiting() == 1 and openings_only.waiting() == 0
        assert not openings_only.told("a1b2c3d4e5f60718")
        notifier.start()
        server.wait_for(1)
        notifier.stop(timeout_seconds=2)
    assert not everyone.told("a1b2c3d4e5f60718")


def test_after_a_restart_the_escalation_of_an_opening_that_gave_up_goes_as_the_opening(store):
    # the same rule as without the restart, read from the delivery log
    with RecordingServer(list(OUTAGE)) as ops:
        start, clock, before, _, _ = _opening_failed(store, ops)
        _stop(before)
        clock.now = start + 2 * MINUTE
        after = _listening(ops, clock)
        try:
            again = AlertBook(store)
            reloaded = again.load_open()[(FLOW, "erp")]
            again.escalate(reloaded, start + MINUTE, JOINED)
            again.flush()
            received = ops.wait_for(FAST.attempts + 1)
            _until(lambda: _outcomes(store)[-1][2] == "sent")
        finally:
            _stop(after)
    assert received[-1].json["event"] == "opened"
    assert _outcomes(store)[-1] == ("opened", "escalated", "sent")
