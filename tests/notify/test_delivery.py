"""Delivery: retries and their limits, the bounded queue, the catch-up rule, silences, secrets."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from detectors.severity import load_severity
from notify.outbox import DestinationWorker, Notifier, RetryPolicy, make_destination
from tests.notify.helpers import (
    DASHBOARD,
    FAST,
    ListRecorder,
    make_alert,
    make_notification,
    minutes_after_opening,
    route,
)
from tests.notify.receiver import Answer, RecordingServer

SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxb-token-never-logged"


def _worker(server: RecordingServer, policy: RetryPolicy = FAST, **fields) -> DestinationWorker:
    destination = make_destination(route("slack", server.url + SECRET_PATH, **fields))
    return DestinationWorker(destination, ListRecorder(), policy)


def test_a_500_is_retried_until_the_destination_accepts():
    with RecordingServer([Answer(500), Answer(503)]) as server:
        outcome = _worker(server).deliver(make_notification())
        assert len(server.wait_for(3)) == 3
    assert (outcome.outcome, outcome.attempts, outcome.http_status) == ("sent", 3, 200)


def test_retry_after_is_honoured_before_the_next_attempt():
    with RecordingServer([Answer(429, {"Retry-After": "0.3"})]) as server:
        began = time.monotonic()
        outcome = _worker(server).deliver(make_notification())
        waited = time.monotonic() - began
    assert outcome.outcome == "sent"
    assert outcome.attempts == 2
    assert waited >= 0.3


def test_a_timeout_is_retried_and_gives_up_after_the_last_attempt(caplog):
    policy = RetryPolicy(attempts=2, first_backoff_seconds=0.01, max_backoff_seconds=0.02)
    answers = [Answer(delay_seconds=0.6), Answer(delay_seconds=0.6)]
    with RecordingServer(answers) as server:
        worker = _worker(server, policy, timeout_seconds=0.2)
        with caplog.at_level(logging.WARNING, logger="notify"):
            outcome = worker.deliver(make_notification())
    assert (outcome.outcome, outcome.attempts) == ("failed", 2)
    assert "did not answer within 0.2s" in outcome.reason
    assert "retrying in" in caplog.text
    assert "Gave up delivering opened of alert a1b2c3d4e5f60718" in caplog.text


def test_a_400_is_not_retried():
    with RecordingServer([Answer(400, body=b"invalid_blocks")]) as server:
        outcome = _worker(server).deliver(make_notification())
        assert len(server.received) == 1
    assert (outcome.outcome, outcome.attempts, outcome.http_status) == ("failed", 1, 400)
    assert outcome.reason.endswith("answered HTTP 400: invalid_blocks")


def test_secrets_appear_in_no_log_line_outcome_or_repr(caplog):
    policy = RetryPolicy(attempts=2, first_backoff_seconds=0.01, max_backoff_seconds=0.02)
    with RecordingServer([Answer(500), Answer(500)]) as server:
        webhook = make_destination(route("webhook", server.url + SECRET_PATH, secret="hmac-key-42"))
        workers = [
            _worker(server, policy),
            DestinationWorker(webhook, ListRecorder(), policy),
        ]
        with caplog.at_level(logging.DEBUG):
            outcomes = [worker.deliver(make_notification()) for worker in workers]
            refused = make_destination(route("slack", "http://127.0.0.1:9" + SECRET_PATH))
            outcomes.append(
                DestinationWorker(refused, ListRecorder(), policy).deliver(make_notification())
            )
    shown = caplog.text + repr(outcomes) + repr(workers[1].route) + repr(workers[1].route.model)
    assert "failed" in {o.outcome for o in outcomes}
    assert "could not be reached" in outcomes[2].reason
    for secret in ("T0SECRET", "xoxb-token", "hmac-key-42"):
        assert secret not in shown
    assert "destination 'dest' (slack at 127.0.0.1)" in caplog.text


def _notifier(servers: list[RecordingServer], recorder: ListRecorder, **kwargs) -> Notifier:
    routes = [
        route("webhook", server.url + "/hook", name=f"dest{i}") for i, server in enumerate(servers)
    ]
    return Notifier(routes, load_severity(), DASHBOARD, recorder, policy=FAST, **kwargs)


def test_a_full_queue_drops_new_notifications_counts_and_records_them(caplog):
    recorder = ListRecorder()
    with RecordingServer() as server:
        # Not started: nothing leaves the queue of two.
        notifier = _notifier(
            [server], recorder, queue_size=2, clock=lambda: minutes_after_opening(1)
        )
        notes = [make_notification(alert_id=f"alert{i}") for i in range(5)]
        with caplog.at_level(logging.WARNING, logger="notify"):
            notifier.submit(notes)
        (worker,) = notifier.workers
        assert worker.waiting() == 2
        assert worker.dropped == 3
        assert [o.alert_id for o in recorder.of("dropped")] == ["alert2", "alert3", "alert4"]
        assert {o.reason for o in recorder.of("dropped")} == {"queue full"}
        assert "is full; dropping opened of alert alert4 (3 dropped so far)" in caplog.text
        notifier.start()
        server.wait_for(2)
        notifier.stop(timeout_seconds=2)
    assert len(recorder.of("sent")) == 2


def test_catch_up_records_old_events_without_sending_them():
    recorder = ListRecorder()
    with RecordingServer() as server:
        notifier = _notifier(
            [server],
            recorder,
            max_age=timedelta(minutes=15),
            clock=lambda: minutes_after_opening(240),
        )
        notifier.start()
        old = [make_notification(alert_id=f"old{i}") for i in range(20)]
        fresh = make_notification("opened", minutes_after_opening(235), alert_id="fresh")
        notifier.submit([*old, fresh])
        (got,) = server.wait_for(1)
        notifier.stop(timeout_seconds=2)
        assert len(server.received) == 1
    assert got.json["alert"]["id"] == "fresh"
    assert len(recorder.of("stale")) == 20
    assert recorder.of("stale")[0].reason == "raised 240 min ago"


def test_a_late_resolution_still_reaches_the_channels_that_saw_the_opening():
    recorder = ListRecorder()
    now = [minutes_after_opening(1)]
    with RecordingServer() as told, RecordingServer() as untold:
        notifier = _notifier([told, untold], recorder, clock=lambda: now[0])
        notifier.workers[1].route.model.flows.append("support.*")
        notifier.start()
        notifier.submit([make_notification()])
        told.wait_for(1)
        now[0] = minutes_after_opening(600)
        resolved_at = minutes_after_opening(300)
        notifier.submit(
            [make_notification("resolved", resolved_at, state="resolved", resolved_at=resolved_at)]
        )
        second = told.wait_for(2)[1]
        notifier.stop(timeout_seconds=2)
        assert untold.received == []
    assert second.json["event"] == "resolved"


def test_filters_by_tier_priority_flow_and_event():
    recorder = ListRecorder()
    with RecordingServer() as server:
        routes = [
            route("webhook", server.url + "/p1", name="p1-only", min_priority="P1"),
            route("webhook", server.url + "/high", name="high", min_tier="high"),
            route("webhook", server.url + "/support", name="support", flows=["support.*"]),
            route("webhook", server.url + "/opened", name="opened", events=["opened"]),
        ]
        notifier = Notifier(
            routes,
            load_severity(),
            DASHBOARD,
            recorder,
            policy=FAST,
            clock=lambda: minutes_after_opening(1),
        )
        notifier.start()
        notifier.submit([make_notification(), make_notification("escalated")])
        received = server.wait_for(3)
        notifier.stop(timeout_seconds=2)
    assert sorted((r.path, r.json["event"]) for r in received) == [
        ("/high", "escalated"),
        ("/high", "opened"),
        ("/opened", "opened"),
    ]


def test_an_escalation_is_the_opening_of_a_destination_never_told_of_the_alert():
    # a destination that takes openings only never heard of an alert announced by its
    # escalation (opened under a silence, or before notifications were set up)
    recorder = ListRecorder()
    with RecordingServer() as server:
        opened_only = route("webhook", server.url + "/opened", name="opened", events=["opened"])
        clock = lambda: minutes_after_opening(2)  # noqa: E731
        notifier = Notifier([opened_only], load_severity(), DASHBOARD, recorder, clock=clock)
        notifier.start()
        notifier.submit([make_notification("escalated")])
        notifier.submit([make_notification("escalated")])
        server.wait_for(1)
        notifier.stop(timeout_seconds=2)
    # the second escalation is no opening: the destination has heard of the alert now
    assert [r.json["event"] for r in server.received] == ["opened"]


def test_silenced_alerts_are_recorded_not_sent(store):
    from detectors.alert_actions import add_silence

    add_silence(store, timedelta(hours=1), flow="billing.*", reason="deploy")
    recorder = ListRecorder()
    with RecordingServer() as server:
        notifier = _notifier([server], recorder)
        notifier.on_flush(store, [], [])
        notifier.submit([make_notification(at=datetime.now(UTC))])
    assert recorder.of("silenced")[0].reason.startswith("silence ")
    assert server.received == []


def test_alertmanager_resends_a_firing_alert_an_interval_after_posting_it():
    # with resend_interval_seconds: 30 an alert posted at 08:52:30 came again at 08:52:33:
    # resends ran on a timer of the worker's own, whatever the alert's last post
    with RecordingServer() as server:
        destination = make_destination(route("alertmanager", server.url, resend_interval_seconds=1))
        worker = DestinationWorker(destination, ListRecorder(), FAST)
        worker.start()
        time.sleep(0.6)  # the worker's own second is well under way
        worker.offer(make_notification(at=datetime.now(UTC)))
        posts = server.wait_for(3, timeout_seconds=5)
        worker.stop(timeout_seconds=2)
    gaps = [later.at - earlier.at for earlier, later in zip(posts, posts[1:], strict=False)]
    assert [post.path for post in posts] == ["/api/v2/alerts"] * 3
    assert all(0.95 <= gap < 1.5 for gap in gaps), gaps


def test_a_broken_flush_is_logged_and_never_raises(caplog):
    notifier = _notifier([], ListRecorder())
    alert = make_alert()
    with caplog.at_level(logging.ERROR, logger="notify"):
        notifier.on_flush(None, [alert], [{"alert_id": alert.alert_id, "event": "opened"}])
    assert "Could not queue notifications of 1 alert event(s)" in caplog.text


@pytest.mark.parametrize("value, seconds", [("7", 7.0), ("Thu, 01 Jan 2099 00:00:00 GMT", None)])
def test_retry_after_reads_seconds_and_dates(value, seconds):
    from notify.base import retry_after_seconds

    found = retry_after_seconds(value)
    assert found == seconds if seconds is not None else found > 1e8


class FakeTime:
    """A monotonic clock that the worker's sleeps move on, and the waits they were asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def _outage_worker(
    fake: FakeTime, up_after_seconds: float, answers: list[int]
) -> DestinationWorker:
    """A default-policy worker whose destination answers 503 until ``up_after_seconds``."""
    started = fake.now

    def answer(request: httpx.Request) -> httpx.Response:
        status = 503 if fake.now - started < up_after_seconds else 200
        answers.append(status)
        return httpx.Response(status, text="busy" if status == 503 else "ok")

    destination = make_destination(route("slack", "http://127.0.0.1:9/services/x"))
    worker = DestinationWorker(
        destination, ListRecorder(), RetryPolicy(), sleep=fake.sleep, monotonic=fake.monotonic
    )
    worker._client = httpx.Client(transport=httpx.MockTransport(answer))
    return worker


def test_a_ten_minute_outage_loses_no_message():
    # the 6 attempts of the old default spanned about 34 s of 503s, then gave up for good
    fake, answers = FakeTime(), []
    outcome = _outage_worker(fake, 600.0, answers).deliver(make_notification())
    assert (outcome.outcome, outcome.http_status) == ("sent", 200)
    assert answers[-1] == 200 and answers.count(503) == outcome.attempts - 1
    # exponential from a second, with up to a second of jitter, capped at a minute
    firsts = zip([1, 2, 4, 8, 16, 32, 60, 60], fake.waits, strict=False)
    assert all(low <= wait <= low + 1 for low, wait in firsts)
    assert max(fake.waits) <= 61.0
    assert 600.0 <= sum(fake.waits) <= 700.0


def test_retries_give_up_within_fifteen_minutes_of_the_first_attempt(caplog):
    fake, answers = FakeTime(), []
    with caplog.at_level(logging.ERROR, logger="notify"):
        outcome = _outage_worker(fake, math.inf, answers).deliver(make_notification())
    assert (outcome.outcome, outcome.http_status) == ("failed", 503)
    assert 780.0 <= sum(fake.waits) < 900.0
    assert outcome.attempts == len(answers) == len(fake.waits) + 1
    assert 15 <= outcome.attempts <= 25
    assert f"after {outcome.attempts} attempt(s)" in caplog.text


def test_a_stop_during_a_long_retry_wait_takes_no_time_and_leaves_the_message_queued():
    # the default policy waits minutes between late attempts; a stop must not wait for them
    recorder = ListRecorder()
    with RecordingServer([Answer(503, {"Retry-After": "300"})]) as server:
        destination = make_destination(route("slack", server.url + SECRET_PATH))
        worker = DestinationWorker(destination, recorder, RetryPolicy())
        worker.start()
        worker.offer(make_notification())
        server.wait_for(1)
        time.sleep(0.1)  # the worker is in its wait now
        began = time.monotonic()
        worker.stop(timeout_seconds=10)
        took = time.monotonic() - began
    assert took < 2.0
    assert len(server.received) == 1
    # its queued row stands, the next start sends it; the row says what the tries met (it
    # said "queued, 0 attempts" for as long as a chat outage lasted)
    [step] = recorder.outcomes
    assert (step.outcome, step.attempts, step.http_status) == ("queued", 1, 503)
    assert step.reason.endswith("; retrying in 300 s")


def test_a_retry_after_beyond_the_retry_period_is_named_as_the_reason_it_gave_up():
    # the log said "answered HTTP 503" alone, and nobody could tell why it was not retried
    recorder = ListRecorder()
    with RecordingServer([Answer(503, {"Retry-After": "1000"})]) as server:
        destination = make_destination(route("slack", server.url + SECRET_PATH))
        worker = DestinationWorker(destination, recorder, RetryPolicy(deadline_seconds=60))
        outcome = worker.deliver(make_notification())
    assert (outcome.outcome, outcome.attempts) == ("failed", 1)
    assert outcome.reason.endswith(
        "; it asked to be tried again in 1,000 s, beyond the 1-minute retry period"
    )
