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


def _without_and_with_a_restart(store, restart_at: datetime, end: datetime) -> tuple:
    """What a run up to ``end`` stores, then what one stopped at ``restart_at`` and started
    again stores instead."""
    DetectorRunner(store).catch_up(end)
    uninterrupted = _stored(store)
    _forget_everything_evaluated(store)
    DetectorRunner(store).catch_up(restart_at)
    DetectorRunner(store).catch_up(end)
    return uninterrupted, _stored(store)


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
    uninterrupted, restarted = _without_and_with_a_restart(
        young_store, START + timedelta(minutes=restart_after), END
    )

    assert restarted == uninterrupted
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
    uninterrupted, restarted = _without_and_with_a_restart(
        store, START + timedelta(minutes=INCIDENT_MINUTE + restart_after), end
    )

    assert len(_categories_alerted(uninterrupted)) == alerts_expected
    assert all(
        categories == ["master_data_missing"]
        for _, categories in _categories_alerted(uninterrupted)
    )
    assert restarted == uninterrupted


@pytest.mark.parametrize("restart_after", [20, 70])
def test_an_alert_open_at_a_restart_resolves_when_it_would_have_without_one(store, restart_after):
    # a restart reopened the alert's alarms with no calm minutes counted: the error rate's two
    # calm hours started again, and the alert resolved up to two hours later
    burst = CLEAN_MINUTES
    end = START + timedelta(minutes=burst + 300)
    _store_postings(store, burst + 300, 6, {minute: 3 for minute in range(burst, burst + 5)})
    uninterrupted, restarted = _without_and_with_a_restart(
        store, START + timedelta(minutes=burst + restart_after), end
    )

    (alert,) = uninterrupted[0]
    assert alert[1] == "resolved" and "error_rate" in alert[2]
    assert restarted == uninterrupted


# The incident above, stronger: three of six invoices a minute fail on a missing customer for
# three minutes, which raises the error rate with the category. The category's alarm settles
# about 45 minutes later; the error rate's two calm hours hold the alert open an hour longer.
STRONG_INCIDENT = {INCIDENT_MINUTE + minute: 3 for minute in range(3)}


def _events_named(stored: tuple[list[tuple], list[tuple]]) -> list[str]:
    _, events = stored
    return [event for _, _, event, *_ in events]


@pytest.mark.parametrize(
    "restart_after",
    [
        60,  # the category has settled, the alert is open
        180,  # the alert has resolved
    ],
)
def test_a_restart_learns_a_category_that_settled_before_its_alert_as_without_one(
    store, restart_after
):
    # the category was taken to stay in alarm until its alert resolved: after a restart, its
    # failures between were left out of the history, and one more such failure seven hours
    # after the incident, six after the category settled, was still its incident's tail
    # (within six hours of its alarm) where the uninterrupted run alerted on it as new
    lone_minute = INCIDENT_MINUTE + 7 * 60
    _store_postings(store, lone_minute + 40, 6, {**STRONG_INCIDENT, lone_minute: 1})
    end = START + timedelta(minutes=lone_minute + 40)
    uninterrupted, restarted = _without_and_with_a_restart(
        store, START + timedelta(minutes=INCIDENT_MINUTE + restart_after), end
    )

    first, second = sorted(uninterrupted[0], key=lambda alert: alert[4])  # by opening
    assert first[2] == "exception_category,error_rate" and second[2] == "exception_category"
    assert _events_named(uninterrupted)[:-2] == ["opened", "peaked", "peaked", "eased", "resolved"]
    assert restarted == uninterrupted


@pytest.mark.parametrize(
    "restart_after",
    [
        60,  # the category has settled, the alert is open
        100,  # the category is back in alarm
        200,  # it has settled again
    ],
)
def test_a_category_back_in_alarm_after_a_restart_is_told_as_without_one(store, restart_after):
    # a category that settled and fired again on the same alert left no event of either,
    # and a restart in between reopened its latch as if it had never settled
    back = INCIDENT_MINUTE + 75
    end = START + timedelta(minutes=INCIDENT_MINUTE + 5 * 60)
    _store_postings(store, INCIDENT_MINUTE + 5 * 60, 6, {**STRONG_INCIDENT, back: 3, back + 1: 3})
    uninterrupted, restarted = _without_and_with_a_restart(
        store, START + timedelta(minutes=INCIDENT_MINUTE + restart_after), end
    )

    (alert,) = uninterrupted[0]
    assert alert[3] == "master_data_missing"
    assert [name for name in _events_named(uninterrupted) if name != "peaked"] == [
        "opened",
        "eased",
        "recurred",
        "eased",
        "resolved",
    ]
    assert restarted == uninterrupted
