"""Look-alikes: clean windows of a flow that showed as much as an incident's first minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detectors.lookalikes import LookalikeCounter
from storage.schema import TRACES_TABLE
from tests.rows import make_span_rows

RUN_START = datetime(2025, 3, 3, tzinfo=UTC)
RUN_END = RUN_START + timedelta(days=2)
FLOW = "billing.invoice-post"
GRACE = timedelta(minutes=30)


def _posting(at: datetime, key: str, duration_ms: float = 100, category: str = "") -> dict:
    attributes = {
        "integration.flow": FLOW,
        "integration.target": "erp",
        "integration.stage": "post",
        "business.key": key,
    }
    if category:
        attributes["integration.exception.category"] = category
    return {
        "timestamp": at,
        "kind": "Client",
        "duration_ms": duration_ms,
        "status": "Error" if category else "Unset",
        "attributes": attributes,
    }


def _label(kind: str, start: datetime, minutes: int = 60) -> dict:
    return {
        "kind": kind,
        "flow": FLOW,
        "target": "erp",
        "start": start.isoformat(),
        "fault_start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
    }


def _hours(hours: float, minutes: float = 0) -> datetime:
    return RUN_START + timedelta(hours=hours, minutes=minutes)


def test_a_lone_failure_is_matched_by_lone_failures_after_no_more_in_their_day(store):
    spans = [
        _posting(_hours(2), "A", category="mapping"),  # alone, none in its day before: as much
        _posting(_hours(20), "INC", category="mapping"),  # the incident's first, after 2 h's
        # alone after the incident: its day counts the failures outside incidents, only 2 h's
        _posting(_hours(22), "F", category="mapping"),
        # two failures minutes apart, alone, after 22 h's only in their day: one window
        _posting(_hours(27), "D", category="mapping"),
        _posting(_hours(27, 3), "E", category="mapping"),
        # with two other transactions begun in its five minutes: less
        _posting(_hours(30), "B", category="mapping"),
        _posting(_hours(30, 1), "B1"),
        _posting(_hours(30, 2), "B2"),
        # alone, but after four failures in its day before: less
        _posting(_hours(40), "C", category="mapping"),
    ]
    store.insert_arrow(TRACES_TABLE, make_span_rows(spans))
    incident = _label("mapping_error_burst", _hours(20))
    counter = LookalikeCounter(store, [incident], RUN_START, RUN_END, GRACE)

    found = counter.count(incident)

    assert found.evidence == (
        "1 mapping failure(s) and 0 other transaction(s) begun, after 1 such failure(s) in the "
        "day before"
    )
    assert found.windows == 3
    clean_days = 2 - 90 / (24 * 60)  # the incident's hour and its grace are not clean
    assert found.clean_days == pytest.approx(clean_days)


def test_a_failure_counts_when_its_span_ends_not_when_its_transaction_began(store):
    # a failed root span starts with its transaction, minutes before the failing posting
    spans = [
        _posting(_hours(19, 50), "INC", duration_ms=10.5 * 60_000, category="mapping"),
        _posting(_hours(5, 50), "A", duration_ms=10.5 * 60_000, category="mapping"),
    ]
    store.insert_arrow(TRACES_TABLE, make_span_rows(spans))
    incident = _label("mapping_error_burst", _hours(20))
    counter = LookalikeCounter(store, [incident], RUN_START, RUN_END, GRACE)

    found = counter.count(incident)

    assert found.evidence.startswith("1 mapping failure(s) and 0 other transaction(s)")
    assert found.windows == 1


def test_a_slow_posting_is_matched_only_by_as_few_calls_as_slow_or_slower(store):
    spans = [_posting(_hours(0, minute), f"N{minute}") for minute in range(0, 48 * 60, 10)]
    spans += [
        _posting(_hours(20, 3), "INC", duration_ms=400),  # the incident: 4x the usual 100 ms
        _posting(_hours(5, 1), "S1", duration_ms=450),  # alone in its 5 minutes and slower
        _posting(_hours(7, 1), "S2", duration_ms=350),  # alone but faster
        _posting(_hours(9, 1), "S3", duration_ms=900),  # slower, with a normal call 2 min on
        _posting(_hours(9, 3), "S3b", duration_ms=100),
    ]
    store.insert_arrow(TRACES_TABLE, make_span_rows(spans))
    incident = _label("erp_latency_drift", _hours(20, 2))
    counter = LookalikeCounter(store, [incident], RUN_START, RUN_END, GRACE)

    found = counter.count(incident)

    assert found.evidence == "1 posting call(s) to erp, the slowest 4.0x the usual 100 ms"
    assert found.windows == 1


def test_kinds_judged_per_transaction_have_no_lookalike_count(store):
    incident = _label("duplicate_postings", _hours(20))
    counter = LookalikeCounter(store, [incident], RUN_START, RUN_END, GRACE)

    assert counter.count(incident) is None
