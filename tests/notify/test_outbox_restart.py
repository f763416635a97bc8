"""Notifications survive a restart: what the delivery log leaves unfinished goes out once.

A notifier whose process dies keeps its queue in memory only; the next start reads
``alert_events`` and the delivery log and delivers each event that has no final outcome at a
destination, by the usual rules, and never an event the log says went.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detectors import lifecycle
from detectors.lifecycle import Alert, AlertBook, Signal
from detectors.runner import DetectorRunner
from detectors.severity import load_severity
from notify.outbox import Notifier
from notify.records import DELIVERIES_TABLE, Outcome, StoreRecorder, epoch_millis, settled
from tests.lineage.spans import posted, published
from tests.notify.helpers import DASHBOARD, FAST, route
from tests.notify.receiver import Answer, RecordingServer
from tests.rows import make_span_rows

MINUTE = timedelta(minutes=1)
SIGNAL = Signal("error_rate", "error_rate", 12.0, 0.001, 0.2, "error_rate from 0.10% to 20.00%")
# long enough for a message that should not come to arrive if it were sent
QUIET_SECONDS = 1.0


class Clock:
    """The notifier's wall clock, set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def _listening(server: RecordingServer, clock: Clock, *, started: bool = True) -> Iterator[None]:
    """A notifier posting to ``server`` while the block runs. Not ``started``, its worker
    never takes a notification off its queue, and the block's end leaves it as a killed
    process leaves it: no stop, nothing delivered, nothing recorded after."""
    routes = [route("webhook", server.url + "/hook", name="ops")]
    notifier = Notifier(
        routes, load_severity(), DASHBOARD, StoreRecorder(), policy=FAST, clock=clock
    )
    if started:
        notifier.start()
    lifecycle.add_listener(notifier.on_flush)
    try:
        yield
    finally:
        lifecycle.remove_listener(notifier.on_flush)
        if started:
            notifier.stop(timeout_seconds=2)


def _log(store) -> list[tuple[str, str, str]]:
    """The delivery log: (alert id, event, outcome), queued before the outcome of sending."""
    return store.query_rows(
        f"SELECT alert_id, event, outcome FROM {store.table(DELIVERIES_TABLE)} "
        "ORDER BY at, outcome = 'queued' DESC, event"
    )


def _received(server: RecordingServer) -> list[tuple[str, str]]:
    """(alert id, event) of every message the server got."""
    return [(r.json["alert"]["id"], r.json["event"]) for r in server.received]


def _duplicate_posting(store, start: datetime) -> None:
    """Spans of an invoice posted twice to the ERP a minute apart: an alert at start + 1."""
    at = start + timedelta(seconds=10)
    spans = published("INV-0", at=at) + posted("INV-0", at=at + timedelta(seconds=1))
    store.insert_arrow("otel_traces", make_span_rows(spans + posted("INV-0", 2, at=at + MINUTE)))


def test_an_opening_queued_when_the_process_died_arrives_once_after_the_restart(store):
    start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    clock = Clock(start + 3 * MINUTE)
    _duplicate_posting(store, start)
    with RecordingServer() as server:
        with _listening(server, clock, started=False):
            DetectorRunner(store, chunk=MINUTE).catch_up(start + 3 * MINUTE)
        assert server.received == []
        [(alert_id,)] = store.query_rows(f"SELECT DISTINCT alert_id FROM {store.table('alerts')}")

        clock.now = start + 4 * MINUTE
        with _listening(server, clock):
            # a new runner, as a restarted process has: its start delivers what was left
            DetectorRunner(store, chunk=MINUTE).catch_up(start + 4 * MINUTE)
            server.wait_for(1)
            time.sleep(QUIET_SECONDS)
    assert _received(server) == [(alert_id, "opened")]
    assert _log(store) == [
        (alert_id, "opened", "queued"),
        (alert_id, "opened", "queued"),
        (alert_id, "opened", "sent"),
    ]


def _sent_opening(
    store, server: RecordingServer, clock: Clock, opened_at: datetime
) -> tuple[AlertBook, Alert]:
    """An alert opened at ``opened_at`` whose opening reached ``server``; the notifier that
    sent it has stopped since."""
    with _listening(server, clock):
        book = AlertBook(store)
        alert = book.open("billing.invoice-post", "erp", "Invoice", opened_at, SIGNAL)
        book.flush()
        server.wait_for(1)
    return book, alert


def test_a_sent_opening_is_not_sent_again_when_a_restart_raises_it_again(store):
    # the minute was evaluated again after a restart (its position was not saved): its
    # opening is written again, with the same alert id and time
    opened_at = datetime.now(UTC).replace(second=0, microsecond=0) - 2 * MINUTE
    clock = Clock(opened_at + MINUTE)
    with RecordingServer() as server:
        _, alert = _sent_opening(store, server, clock, opened_at)
        with _listening(server, clock):
            again = AlertBook(store)
            again.open("billing.invoice-post", "erp", "Invoice", opened_at, SIGNAL)
            again.flush()
            time.sleep(QUIET_SECONDS)
    assert _received(server) == [(alert.alert_id, "opened")]
    assert [row[2] for row in _log(store)] == ["queued", "sent"]


def test_after_a_long_outage_a_resolution_left_queued_goes_out_and_an_old_opening_does_not(
    store,
):
    opened_at = datetime.now(UTC).replace(second=0, microsecond=0) - 10 * MINUTE
    clock = Clock(opened_at + MINUTE)
    with RecordingServer() as server:
        book, told = _sent_opening(store, server, clock, opened_at)
        with _listening(server, clock, started=False):
            book.resolve(told, opened_at + 2 * MINUTE)
            unheard = book.open("usage.usage-post", "erp", "UsageRecord", opened_at, SIGNAL)
            book.flush()
        # the process was down for three hours
        clock.now = opened_at + timedelta(hours=3)
        with _listening(server, clock):
            AlertBook(store).flush()  # the runner's start
            server.wait_for(2)
            time.sleep(QUIET_SECONDS)
    assert _received(server) == [(told.alert_id, "opened"), (told.alert_id, "resolved")]
    final = {(alert_id, event, outcome) for alert_id, event, outcome in _log(store)}
    assert (unheard.alert_id, "opened", "stale") in final
    assert (told.alert_id, "resolved", "sent") in final


def test_a_stop_leaves_what_it_could_not_deliver_queued_for_the_next_start(store):
    # a stop used to record what was still queued as dropped, and it was never sent
    opened_at = datetime.now(UTC).replace(second=0, microsecond=0) - 2 * MINUTE
    clock = Clock(opened_at + MINUTE)
    with RecordingServer() as server:
        routes = [route("webhook", server.url + "/hook", name="ops")]
        stopped = Notifier(routes, load_severity(), DASHBOARD, StoreRecorder(), clock=clock)
        lifecycle.add_listener(stopped.on_flush)
        book = AlertBook(store)
        alert = book.open("billing.invoice-post", "erp", "Invoice", opened_at, SIGNAL)
        book.flush()
        lifecycle.remove_listener(stopped.on_flush)
        stopped.stop(timeout_seconds=0)  # its worker never ran: nothing had a turn
        assert server.received == []
        with _listening(server, clock):
            AlertBook(store).flush()
            server.wait_for(1)
    assert _received(server) == [(alert.alert_id, "opened")]
    assert [row[2] for row in _log(store)] == ["queued", "queued", "sent"]


PREPARE_STORE = """
import sys
from datetime import datetime, timedelta
from seamwatch.settings import load_settings
from storage import open_store
from tests.lineage.spans import posted, published
from tests.rows import make_span_rows

store = open_store(load_settings(data_dir=sys.argv[1]))
at = datetime.fromisoformat(sys.argv[2]) + timedelta(seconds=10)
spans = published("INV-0", at=at) + posted("INV-0", at=at + timedelta(seconds=1))
spans += posted("INV-0", 2, at=at + timedelta(minutes=1))
store.insert_arrow("otel_traces", make_span_rows(spans))
store.close()
"""
PRINT_LOG = """
import sys
from seamwatch.settings import load_settings
from storage import open_store

store = open_store(load_settings(data_dir=sys.argv[1]))
sql = "SELECT event, outcome FROM " + store.table("notify_deliveries")
for event, outcome in store.query_rows(sql + " ORDER BY at, outcome = 'queued' DESC"):
    print(event, outcome)
"""
REPOSITORY = Path(__file__).resolve().parents[2]


def _python(*arguments: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", *arguments],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
        **options,
    )


def _detectors(data_dir: Path, notify_file: Path, *extra: str) -> list[str]:
    command = "from seamwatch.cli import app; app()"
    return [sys.executable, "-c", command, "detectors", "--data-dir", str(data_dir)] + [
        "--notify-file",
        str(notify_file),
        *extra,
    ]


def _restarted_once(data_dir: Path, notify_file: Path, env: dict[str, str]):
    """The detectors started again to catch up to now and exit, as they ran."""
    return subprocess.run(
        _detectors(data_dir, notify_file, "--once"),
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_a_message_being_retried_when_the_detectors_are_killed_arrives_once_after_restart(
    tmp_path,
):
    data_dir = tmp_path / "data"
    start = datetime.now(UTC).replace(second=0, microsecond=0) - 3 * MINUTE
    _python(PREPARE_STORE, str(data_dir), start.isoformat())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMWATCH_")}
    with RecordingServer([Answer(503)] * 1000) as server:
        notify_file = tmp_path / "notify.yaml"
        notify_file.write_text(
            f"destinations:\n  - {{name: ops, kind: webhook, url: '{server.url}/hook'}}\n"
        )
        detectors = subprocess.Popen(
            _detectors(data_dir, notify_file),
            cwd=REPOSITORY,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            server.wait_for(2, timeout_seconds=120)  # answered 503 twice: being retried
        finally:
            detectors.send_signal(signal.SIGKILL)
            detectors.wait(timeout=30)
        refused = len(server.received)
        server.answers.clear()

        restarted = _restarted_once(data_dir, notify_file, env)
        assert restarted.returncode == 0, restarted.stderr
    delivered = server.received[refused:]
    assert [r.json["event"] for r in delivered] == ["opened"]
    assert "before this start" in restarted.stderr
    assert "in the delivery log): 1 queued for delivery" in restarted.stderr
    assert {r.headers["X-Seamwatch-Delivery"] for r in server.received} == {
        delivered[0].headers["X-Seamwatch-Delivery"]
    }
    log = _python(PRINT_LOG, str(data_dir), env=env).stdout.splitlines()
    # queued when offered, each retry's step (as many as the kill let through), queued again
    # at the restart, then sent once
    assert log[-1] == "opened sent"
    assert len(log) >= 3 and set(log[:-1]) == {"opened queued"}


def test_an_event_time_with_microseconds_is_keyed_as_the_log_keeps_it(store):
    # the key rounded 12:00:00.000999 up to .001 while the log kept .000: an event
    # already sent looked unsettled, and a restart sent it again
    event_at = datetime(2026, 12, 1, 12, 0, 0, 999, tzinfo=UTC)
    StoreRecorder(store).record(
        [Outcome(event_at, "a1", "opened", event_at, "chat", "webhook", "sent", 1, 200)]
    )
    done = settled(store, event_at - timedelta(minutes=1))
    assert done == {("a1", "opened", epoch_millis(event_at), "chat")}
    assert epoch_millis(event_at) == 1_796_126_400_000  # 2026-12-01 12:00:00.000 UTC
