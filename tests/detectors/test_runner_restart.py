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
        "SELECT alert_id, state, arrayStringConcat(kinds, ','), "
        "arrayStringConcat(categories, ','), opened_at, resolved_at, signal, top_error "
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
    _store_postings(store, CLEAN_MINUTES + 30, 6, {LONE_FAILURE_MINUTE: 1})
    return store


def _store_postings(store, minutes: int, per_minute: int, failing: dict[int, int]) -> None:
    """``per_minute`` invoice postings a minute for ``minutes`` minutes from ``START``; in the
    minutes ``failing`` names, that many fail on a missing customer (``master_data_missing``)."""
    spans = []
    for minute in range(minutes):
        failed = failing.get(minute, 0)
        postings = invoice_postings(START, minute, per_minute, failed)
        for span in postings[:failed]:
            span["attributes"]["integration.exception.category"] = "master_data_missing"
            span["StatusMessage"] = "customer C-77 not found"
        spans += postings
    store.insert_arrow("otel_traces", make_span_rows(spans))


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


# A flow with more than a day of postings and no master-data failure, then an incident: two
# invoices fail on a missing customer in one minute. The category is new to the flow, so the
# alarm opens on them and takes them back out of the usual rate; it settles half an hour later.
INCIDENT_MINUTE = 26 * 60


def _lone_failure_store(store, lone_after: int):
    """The incident above, then one more such failure ``lone_after`` minutes after it."""
    lone_minute = INCIDENT_MINUTE + lone_after
    _store_postings(store, lone_minute + 40, 3, {INCIDENT_MINUTE: 2, lone_minute: 1})
    return START + timedelta(minutes=lone_minute + 40)


def _categories_alerted(stored: tuple[list[tuple], list[tuple]]) -> list[tuple[str, list[str]]]:
    alerts, _ = stored
    return [
        (str(opened_at), categories.split(",")) for _, _, _, categories, opened_at, *_ in alerts
    ]


@pytest.mark.parametrize(
    ("lone_after", "alerts_expected"),
    [
        # within six hours of the incident's alarm, one more failure is its tail, not news
        (3 * 60, 1),
        # after that the category, whose incident failures were taken back, is new again
        (8 * 60, 2),
    ],
)
@pytest.mark.parametrize("restart_after", [10, 90])
def test_a_restart_learns_the_alarms_of_stored_alerts_as_the_uninterrupted_run_did(
    store, lone_after, alerts_expected, restart_after
):
    # the warm-up learned every failure before the restart: the incident's two failures,
    # taken back when its alarm opened, became the usual rate, and the failure eight hours
    # later was no longer new to the flow (a missed alert); nor did it know the quiet hours
    end = _lone_failure_store(store, lone_after)
    DetectorRunner(store).catch_up(end)
    uninterrupted = _stored(store)
    _forget_everything_evaluated(store)

    DetectorRunner(store).catch_up(START + timedelta(minutes=INCIDENT_MINUTE + restart_after))
    DetectorRunner(store).catch_up(end)

    assert len(_categories_alerted(uninterrupted)) == alerts_expected
    assert all(
        categories == ["master_data_missing"]
        for _, categories in _categories_alerted(uninterrupted)
    )
    assert _stored(store) == uninterrupted


@pytest.mark.parametrize("restart_after", [20, 70])
def test_an_alert_open_at_a_restart_resolves_when_it_would_have_without_one(store, restart_after):
    # a restart reopened the alert's alarms with no calm minutes counted: the error rate's two
    # calm hours started again, and the alert resolved up to two hours later
    burst = CLEAN_MINUTES
    end = START + timedelta(minutes=burst + 300)
    _store_postings(store, burst + 300, 6, {minute: 3 for minute in range(burst, burst + 5)})
    DetectorRunner(store).catch_up(end)
    uninterrupted = _stored(store)
    _forget_everything_evaluated(store)

    DetectorRunner(store).catch_up(START + timedelta(minutes=burst + restart_after))
    DetectorRunner(store).catch_up(end)

    (alert,) = uninterrupted[0]
    assert alert[1] == "resolved" and "error_rate" in alert[2]
    assert _stored(store) == uninterrupted
