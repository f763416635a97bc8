"""A stop during a chat outage: what it cut short stays queued, within the stop's time.

Nothing a stop interrupts is recorded as ``failed`` (a final outcome, never sent again): an
attempt that fails or is abandoned while stopping, and the retries the stop leaves unmade,
keep the notification's ``queued`` row, so the next start delivers it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from detectors import lifecycle
from detectors.lifecycle import AlertBook, Signal
from detectors.severity import load_severity
from notify.outbox import DestinationWorker, Notifier, RetryPolicy, make_destination
from notify.records import QUEUED, StoreRecorder
from tests.loopback_tcp import tcp_server
from tests.notify.helpers import DASHBOARD, ListRecorder, make_notification, route
from tests.notify.receiver import Answer, RecordingServer
from tests.notify.test_outbox_restart import (
    MINUTE,
    PREPARE_STORE,
    QUIET_SECONDS,
    REPOSITORY,
    SIGNAL,
    Clock,
    _detectors,
    _listening,
    _log,
    _python,
    _received,
    _restarted_once,
)

# long backoffs: the stop comes while a retry waits
SLOW_RETRIES = RetryPolicy(
    attempts=6, deadline_seconds=120.0, first_backoff_seconds=5.0, max_backoff_seconds=5.0
)
JOINED = Signal("volume_drop", "volume_drop", 8.0, 100.0, 10.0, "volume from 100 to 10 a minute")


class Hanging:
    """A loopback port that accepts connections and never answers; counts them."""

    def __init__(self, port: int, accepted: list[socket.socket]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._accepted = accepted

    @property
    def connections(self) -> int:
        return len(self._accepted)

    def wait_for_connection(self, timeout_seconds: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_seconds
        while not self._accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self._accepted, "nothing connected"


@contextmanager
def hanging_server() -> Iterator[Hanging]:
    """A :class:`Hanging` port while the block runs: a chat service that is down."""
    accepted: list[socket.socket] = []
    try:
        with tcp_server(accepted.append) as port:
            yield Hanging(port, accepted)
    finally:
        for connection in accepted:
            connection.close()


def _stopped_in(notifier_or_worker, timeout_seconds: float) -> float:
    began = time.monotonic()
    notifier_or_worker.stop(timeout_seconds)
    return time.monotonic() - began


def test_a_stop_during_an_outage_leaves_both_events_queued_and_the_next_start_sends_them(store):
    # both were recorded as failed (1 attempt each), so no start ever sent them
    opened_at = datetime.now(UTC).replace(second=0, microsecond=0) - 2 * MINUTE
    clock = Clock(opened_at + 2 * MINUTE)
    with hanging_server() as hang:
        routes = [route("webhook", hang.url + "/hook", name="ops", timeout_seconds=1)]
        notifier = Notifier(routes, load_severity(), DASHBOARD, StoreRecorder(), clock=clock)
        notifier.start()
        lifecycle.add_listener(notifier.on_flush)
        try:
            book = AlertBook(store)
            alert = book.open("billing.invoice-post", "erp", "Invoice", opened_at, SIGNAL)
            book.escalate(alert, opened_at + MINUTE, JOINED)
            book.flush()
            hang.wait_for_connection()  # the opening in flight
        finally:
            lifecycle.remove_listener(notifier.on_flush)
        took = _stopped_in(notifier, 3.0)
        connections = hang.connections

    # the opening's attempt timed out; the escalation was not tried against a dead end
    assert connections == 1
    assert took < 1.8
    assert sorted(row[1:] for row in _log(store)) == [("escalated", QUEUED), ("opened", QUEUED)]
    with RecordingServer() as server, _listening(server, clock):
        AlertBook(store).flush()  # the runner's start
        server.wait_for(2)
        time.sleep(QUIET_SECONDS)
    assert _received(server) == [(alert.alert_id, "opened"), (alert.alert_id, "escalated")]
    latest = {(event, outcome) for _, event, outcome in _log(store)}
    assert latest >= {("opened", "sent"), ("escalated", "sent")}
    assert not any(outcome == "failed" for _, _, outcome in _log(store))


def test_a_retry_waiting_when_the_stop_comes_is_not_made_and_nothing_is_failed():
    # the interrupted backoff went on to one more attempt, and both were recorded failed
    with RecordingServer([Answer(503)] * 10) as server:
        destination = make_destination(route("webhook", server.url + "/hook", name="ops"))
        recorder = ListRecorder()
        worker = DestinationWorker(destination, recorder, SLOW_RETRIES)
        worker.start()
        worker.offer(make_notification("opened"))
        worker.offer(make_notification("escalated", at=datetime(2025, 3, 3, 9, 6, tzinfo=UTC)))
        server.wait_for(1)
        took = _stopped_in(worker, 5.0)
        time.sleep(QUIET_SECONDS)
        requests = len(server.received)
    assert requests == 1
    assert took < 1.0
    # nothing final: the one step written is the retry's, still queued
    assert [(o.event, o.outcome, o.attempts) for o in recorder.outcomes] == [
        ("opened", "queued", 1)
    ]


def test_an_attempt_still_in_flight_when_the_stop_ends_is_abandoned_and_not_recorded(caplog):
    with hanging_server() as hang:
        destination = make_destination(
            route("webhook", hang.url + "/hook", name="ops", timeout_seconds=1.5)
        )
        recorder = ListRecorder()
        worker = DestinationWorker(destination, recorder, SLOW_RETRIES)
        worker.start()
        worker.offer(make_notification())
        hang.wait_for_connection()
        took = _stopped_in(worker, 0.3)
        time.sleep(1.5 + QUIET_SECONDS)  # the abandoned attempt has timed out by now
    assert took < 0.8
    assert recorder.outcomes == []
    # the warning names the message cut off, as for those left in the queue
    assert "Stopped while opened of alert a1b2c3d4e5f60718 to destination 'ops'" in caplog.text


def test_while_stopping_a_refusal_is_final_and_a_5xx_leaves_the_rest_untried():
    with RecordingServer([Answer(400, body=b"bad"), Answer(503)]) as server:
        destination = make_destination(route("webhook", server.url + "/hook", name="ops"))
        recorder = ListRecorder()
        worker = DestinationWorker(destination, recorder, SLOW_RETRIES)
        worker.request_stop(time.monotonic() + 5.0)
        refused, down, untried = (worker.deliver(make_notification()) for _ in range(3))
        requests = len(server.received)
    # a 4xx is no outage: another try would not help, so it is final as ever
    assert (refused.outcome, refused.attempts, refused.http_status) == ("failed", 1, 400)
    assert (down.outcome, down.attempts) == (QUEUED, 1)
    assert (untried.outcome, untried.attempts) == (QUEUED, 0)
    assert requests == 2
    assert recorder.outcomes == [refused]


@pytest.mark.slow
def test_ctrl_c_during_an_outage_stops_within_10_s_and_the_next_start_sends_once(tmp_path):
    data_dir = tmp_path / "data"
    start = datetime.now(UTC).replace(second=0, microsecond=0) - 3 * MINUTE
    _python(PREPARE_STORE, str(data_dir), start.isoformat())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMWATCH_")}
    with hanging_server() as hang:
        notify_file = tmp_path / "notify.yaml"
        notify_file.write_text(
            "destinations:\n"
            f"  - {{name: hang, kind: webhook, url: '{hang.url}/hook', timeout_seconds: 5}}\n"
        )
        detectors = subprocess.Popen(
            _detectors(data_dir, notify_file),
            cwd=REPOSITORY,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            hang.wait_for_connection(timeout_seconds=120)
        finally:
            interrupted = time.monotonic()
            detectors.send_signal(signal.SIGINT)
            _, logged = detectors.communicate(timeout=60)
            took = time.monotonic() - interrupted
    assert detectors.returncode == 0, logged
    assert took < 10.0, logged
    assert "Gave up" not in logged
    listed = subprocess.run(
        [sys.executable, "-m", "seamwatch", "notify", "log", "--json"]
        + ["--destination", "hang", "--data-dir", str(data_dir)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert [(d["event"], d["outcome"]) for d in json.loads(listed.stdout)] == [("opened", "queued")]

    with RecordingServer() as server:
        notify_file.write_text(
            f"destinations:\n  - {{name: hang, kind: webhook, url: '{server.url}/hook'}}\n"
        )
        restarted = _restarted_once(data_dir, notify_file, env)
        assert restarted.returncode == 0, restarted.stderr
        time.sleep(QUIET_SECONDS)
    assert [r.json["event"] for r in server.received] == ["opened"]
    assert "1 queued for delivery" in restarted.stderr
