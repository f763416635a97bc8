"""A restart between two catch-ups: the runner goes on as if it had never stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detectors.runner import DetectorRunner
from tests.rows import invoice_postings, make_span_rows

START = datetime(2025, 3, 3, 9, 3, tzinfo=UTC)
CLEAN_MINUTES = 200
LONE_FAILURE_MINUTE = CLEAN_MINUTES
END = START + timedelta(minutes=CLEAN_MINUTES + 30)


def _stored(store) -> tuple[list[tuple], list[tuple]]:
    """The alerts the runner wrote and their events."""
    alerts = store.query_rows(
        "SELECT alert_id, state, kinds, categories, opened_at, resolved_at, signal, top_error "
        f"FROM {store.table('alerts')} FINAL ORDER BY alert_id"
    )
    events = store.query_rows(
        "SELECT alert_id, at, event, kind, detail "
        f"FROM {store.table('alert_events')} GROUP BY ALL ORDER BY at, event"
    )
    return alerts, events


def _forget_everything_evaluated(store) -> None:
    for table in ("alerts", "alert_events", "detector_state"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")


@pytest.fixture
def young_store(store):
    """A flow's first hours of clean invoice postings, then one posting that fails on missing
    master data: too young a flow for a category to count as new to it."""
    spans = []
    for minute in range(CLEAN_MINUTES + 30):
        failing = 1 if minute == LONE_FAILURE_MINUTE else 0
        postings = invoice_postings(START, minute, 6, failing)
        for span in postings[:failing]:
            span["attributes"]["integration.exception.category"] = "master_data_missing"
            span["StatusMessage"] = "customer C-77 not found"
        spans += postings
    store.insert_arrow("otel_traces", make_span_rows(spans))
    return store


@pytest.mark.parametrize("restart_after", [30, 120, 185])
def test_a_restart_of_a_young_flow_opens_no_alert_the_uninterrupted_run_does_not(
    young_store, restart_after
):
    # the warm-up learned each series from the start of the day-long read it first showed up
    # in: hours of empty minutes before the flow's first posting made a three-hour-old flow
    # look a day old, and its first master-data failure looked new to it and alerted
    DetectorRunner(young_store).catch_up(END)
    uninterrupted = _stored(young_store)
    _forget_everything_evaluated(young_store)

    DetectorRunner(young_store).catch_up(START + timedelta(minutes=restart_after))
    DetectorRunner(young_store).catch_up(END)

    assert _stored(young_store) == uninterrupted
    assert uninterrupted[0] == []
