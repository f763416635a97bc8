"""Silences and acknowledgements on stored alerts: what is refused and what is marked silenced."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from detectors.alert_actions import (
    _SILENCE_SCHEMA,
    SILENCES_TABLE,
    AlertActionError,
    acknowledge,
    active_silences,
    add_silence,
    cancel_silence,
    list_alerts,
)
from detectors.lifecycle import AlertBook, Signal
from detectors.severity import load_severity

ERRORS = Signal("error_rate", "error_rate", 8.0, 0.0, 0.5)


def record_alert(store, flow: str, opened_at: datetime, resolved_at: datetime | None = None):
    """Store one error-rate alert of ``flow`` on erp, resolved at ``resolved_at`` if given."""
    book = AlertBook(store)
    alert = book.open(flow, "erp", "Invoice", opened_at, ERRORS)
    if resolved_at is not None:
        book.resolve(alert, resolved_at)
    book.flush()
    return alert


def test_a_silence_marks_open_alerts_not_those_resolved_before_it(store):
    now = datetime.now(UTC)
    resolved = record_alert(
        store, "billing.old", now - timedelta(hours=5), now - timedelta(hours=3)
    )
    ongoing = record_alert(store, "billing.new", now - timedelta(minutes=10))
    silence = add_silence(store, timedelta(hours=1), flow="billing.*")

    marks = {a["alert_id"]: a["silenced_by"] for a in list_alerts(store, load_severity(), "all")}

    assert marks == {resolved.alert_id: None, ongoing.alert_id: silence["silence_id"]}


@pytest.mark.parametrize("field", ["flow", "target", "kind"])
def test_an_empty_pattern_is_refused_not_read_as_any(store, field):
    with pytest.raises(AlertActionError, match=f"{field} is empty"):
        add_silence(store, timedelta(hours=1), **{field: ""})
    assert active_silences(store) == []


@pytest.mark.parametrize("days", [366, 100_000])
def test_a_silence_lasts_at_most_a_year(store, days):
    with pytest.raises(AlertActionError, match=f"at most 365 days, got {days:,} days"):
        add_silence(store, timedelta(days=days))
    assert active_silences(store) == []


def test_a_silence_of_a_year_expires_when_it_says(store):
    silence = add_silence(store, timedelta(days=365))
    [stored] = active_silences(store)
    assert stored["expires_at"][:23] == silence["expires_at"][:23]


def test_ending_a_silence_keeps_its_times_without_a_warning(store):
    # 100000 days, as once accepted, overflowed the column into 1716 with stray nanoseconds
    now = datetime.now(UTC)
    row = {
        "silence_id": "overflowed",
        **{"flow": "*", "target": "*", "kind": "*", "reason": "", "created_by": ""},
        **{"created_at": now, "expires_at": now + timedelta(days=100_000)},
        **{"cancelled": 0, "version": 1},
    }
    store.insert_arrow(SILENCES_TABLE, pa.Table.from_pylist([row], _SILENCE_SCHEMA))
    silence = add_silence(store, timedelta(hours=1))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cancel_silence(store, "overflowed")
        cancel_silence(store, silence["silence_id"])

    rows = store.query_rows(
        f"SELECT cancelled, created_at FROM {store.table(SILENCES_TABLE)} FINAL "
        "WHERE silence_id = {id:String}",
        {"id": silence["silence_id"]},
    )
    assert rows[0][0] == 1
    assert rows[0][1].isoformat()[:23] == silence["created_at"][:23]


def test_an_acknowledgement_needs_a_name(store):
    alert = record_alert(store, "billing.invoice-post", datetime.now(UTC))
    with pytest.raises(AlertActionError, match="by .who acknowledges. is empty"):
        acknowledge(store, alert.alert_id, "")


def test_the_silenceable_kinds_are_the_kinds_the_runner_raises():
    from detectors.alert_actions import ALERT_KINDS
    from detectors.runner import EXCEPTION_CATEGORY, FINDING_KINDS, LATENCY, SIGNALS

    raised = {LATENCY, EXCEPTION_CATEGORY, *FINDING_KINDS, *(kind for _, kind in SIGNALS)}
    assert set(ALERT_KINDS) == raised


def test_money_at_risk_is_listed_in_cents(store):
    # a float sum once printed as 63168.549999999996
    book = AlertBook(store)
    now = datetime.now(UTC)
    alert = book.open("billing.sum", "erp", "Invoice", now, ERRORS)
    book.observe(alert, now, ERRORS, 3, 3, 0.1 + 0.2 + 63168.25, "422")
    book.flush()

    [listed] = list_alerts(store, load_severity(), "all")

    assert listed["money_at_risk"] == 63168.55
