"""A stop during a catch-up: prompt, and no minute lost or evaluated twice after a restart."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from detectors import runner as runner_module
from detectors.runner import DetectorRunner, RunnerThread, SeriesState
from tests.rows import invoice_postings, make_span_rows

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
CLEAN_MINUTES = 60
BURST_MINUTES = 5
END = START + timedelta(minutes=CLEAN_MINUTES + BURST_MINUTES)
# the burst's alert opens at its first minute; the stop comes two minutes into it
STOPPED_IN = START + timedelta(minutes=CLEAN_MINUTES + 2)


@pytest.fixture
def burst_store(store):
    """An hour of clean invoice postings, then five minutes where half of them fail."""
    spans = []
    for minute in range(CLEAN_MINUTES + BURST_MINUTES):
        spans += invoice_postings(START, minute, 6, 3 if minute >= CLEAN_MINUTES else 0)
    store.insert_arrow("otel_traces", make_span_rows(spans))
    return store


def _stored(store) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """What the runner wrote: alerts, their events and its position."""
    alerts = store.query_rows(
        "SELECT alert_id, state, kinds, opened_at, updated_at, resolved_at, affected, failed, "
        f"money_at_risk, top_error FROM {store.table('alerts')} FINAL ORDER BY alert_id"
    )
    events = store.query_rows(
        "SELECT alert_id, at, event, kind, detail, count() "
        f"FROM {store.table('alert_events')} GROUP BY ALL ORDER BY at, event"
    )
    cursor = store.query_rows(f"SELECT evaluated_until FROM {store.table('detector_state')} FINAL")
    return alerts, events, cursor


def _forget_everything_evaluated(store) -> None:
    for table in ("alerts", "alert_events", "detector_state"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")


def _stop_while_evaluating(monkeypatch, stop: threading.Event, minute: datetime) -> None:
    """Set ``stop`` in the middle of the evaluation of ``minute``, as a signal may come."""
    apply = DetectorRunner._apply

    def applying(self, state, at, *args, **kwargs):
        if at == minute:
            stop.set()
        return apply(self, state, at, *args, **kwargs)

    monkeypatch.setattr(DetectorRunner, "_apply", applying)


def test_a_stop_mid_catch_up_keeps_whole_minutes_and_a_restart_evaluates_the_rest_once(
    burst_store, monkeypatch
):
    # a stop waited for the whole chunk (up to six hours of minutes) to be evaluated
    DetectorRunner(burst_store).catch_up(END)
    uninterrupted = _stored(burst_store)
    _forget_everything_evaluated(burst_store)
    stop = threading.Event()
    _stop_while_evaluating(monkeypatch, stop, STOPPED_IN)

    stopped = DetectorRunner(burst_store).catch_up(END, stop)
    monkeypatch.undo()
    restarted = DetectorRunner(burst_store).catch_up(END)

    # the minute under way when the stop came is finished and recorded, no later one begun
    assert stopped.evaluated_until == STOPPED_IN + timedelta(minutes=1)
    assert stopped.minutes == CLEAN_MINUTES + 3
    assert stopped.opened == 1
    assert restarted.minutes == BURST_MINUTES - 3
    assert restarted.opened == 0
    # the alert, each of its events once, and the position: as if no stop had come
    assert _stored(burst_store) == uninterrupted
    alerts, events, _ = uninterrupted
    assert len(alerts) == 1
    assert [event[2] for event in events].count("opened") == 1
    assert all(event[-1] == 1 for event in events)


def test_a_stop_during_the_warm_up_reads_no_more_of_the_week_and_writes_nothing(
    burst_store, monkeypatch
):
    # a restart learned the whole week before it looked at the stop
    DetectorRunner(burst_store).catch_up(START + timedelta(minutes=30))
    before = _stored(burst_store)
    stop = threading.Event()
    reads: list[tuple[datetime, datetime]] = []
    read_minutes = runner_module.read_minutes

    def reading(store, start, end):
        reads.append((start, end))
        stop.set()
        return read_minutes(store, start, end)

    monkeypatch.setattr(runner_module, "read_minutes", reading)
    runner = DetectorRunner(burst_store)

    stopped = runner.catch_up(END, stop)
    monkeypatch.undo()

    assert len(reads) == 1  # the week's first day, of seven
    assert stopped.minutes == 0
    assert stopped.evaluated_until == START + timedelta(minutes=30)
    assert runner.series == {}
    assert _stored(burst_store) == before
    # the same runner, asked again without a stop, starts over from the stored position
    resumed = runner.catch_up(END)
    assert resumed.minutes == CLEAN_MINUTES + BURST_MINUTES - 30
    assert resumed.opened == 1


def test_the_runner_thread_stops_mid_chunk_within_seconds(store, monkeypatch):
    # `seamwatch detectors` and `up` waited for the chunk in progress (30 s at most) on a stop
    first = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=2)
    store.insert_arrow("otel_traces", make_span_rows(invoice_postings(first, 0, 6, 0)))
    evaluating = threading.Event()
    step = SeriesState.step

    def slow_step(self, *args, **kwargs):
        # each minute takes 50 ms: a six-hour chunk 18 s
        evaluating.set()
        time.sleep(0.05)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(SeriesState, "step", slow_step)
    thread = RunnerThread(store, delay=timedelta(minutes=1))
    thread.start()
    try:
        assert evaluating.wait(60)
        began = time.monotonic()
        thread.stop(timeout_seconds=30)
        stopped_in = time.monotonic() - began
    finally:
        thread.stop(timeout_seconds=30)
    monkeypatch.undo()

    assert stopped_in < 5
    assert not thread._thread.is_alive()
    cursor = thread.runner.cursor
    assert cursor is not None and first < cursor < first + runner_module.DEFAULT_CHUNK
    # a restart takes up exactly where the stop left off
    until = first + timedelta(hours=8)
    assert DetectorRunner(store).catch_up(until).minutes == (until - cursor) // timedelta(minutes=1)


def test_a_held_runner_thread_judges_nothing_until_released_and_stops_while_held(store):
    # in a demo the runner overtook the backfill: it judged hours of history before their
    # spans arrived, and never judged them again
    first = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    store.insert_arrow("otel_traces", make_span_rows(invoice_postings(first, 0, 6, 0)))
    hold = threading.Event()
    thread = RunnerThread(store, delay=timedelta(minutes=1), interval_seconds=0.1, hold=hold)
    thread.start()
    try:
        time.sleep(1.5)
        assert thread.runner.cursor is None  # nothing judged while held
        hold.set()
        deadline = time.monotonic() + 60
        while thread.runner.cursor is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert thread.runner.cursor is not None
    finally:
        thread.stop(timeout_seconds=30)

    still_held = RunnerThread(store, delay=timedelta(minutes=1), hold=threading.Event())
    still_held.start()
    time.sleep(0.3)
    began = time.monotonic()
    still_held.stop(timeout_seconds=10)
    assert time.monotonic() - began < 2
    assert not still_held._thread.is_alive()
