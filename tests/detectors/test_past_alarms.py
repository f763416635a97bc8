"""The category alarms a restart reads back from the stored alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from detectors.alert_text import names_category, settled_signals, settled_text
from detectors.lifecycle import AlertBook, Signal
from detectors.past_alarms import CategoryAlarm, alarms_at, category_alarms, eased_signals

OPENED = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


def _minute(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(moment.replace(tzinfo=None))


def _category(name: str, text: str) -> Signal:
    return Signal("exception_category", f"category:{name}", 6.0, 0.001, 0.2, text)


def test_a_category_joining_later_is_in_alarm_from_its_escalation_to_the_resolution(store):
    book = AlertBook(store)
    latency = Signal("latency", "latency_shift", 5.0, 200.0, 900.0, "posting calls slower")
    alert = book.open("billing.invoice-post", "erp", "Invoice", OPENED, latency)
    joined = OPENED + timedelta(minutes=20)
    book.escalate(
        alert,
        joined,
        _category("timeout", "timeout failures: 4 of 30 transactions in 5 min (usual 0.1%)"),
        _category("mapping", "mapping is new to this flow (no such failure ...): 1 of 9"),
    )
    book.resolve(alert, OPENED + timedelta(hours=2))
    book.flush()

    found = category_alarms(store, OPENED - timedelta(days=7), OPENED + timedelta(days=1))

    assert sorted(found[("billing.invoice-post", "erp")], key=lambda a: a.category) == [
        CategoryAlarm("mapping", _minute(joined), _minute(OPENED + timedelta(hours=2))),
        CategoryAlarm("timeout", _minute(joined), _minute(OPENED + timedelta(hours=2))),
    ]


def test_an_open_alert_holds_its_category_for_ever_and_one_outside_the_window_is_not_read(store):
    book = AlertBook(store)
    book.open(
        "usage.usage-post",
        "erp",
        "Usage",
        OPENED,
        _category("mapping", "mapping failures: 3 of 40"),
    )
    old = book.open(
        "payments.payment-apply",
        "erp",
        "Payment",
        OPENED - timedelta(days=9),
        _category("mapping", "mapping failures: 2 of 9"),
    )
    book.resolve(old, OPENED - timedelta(days=8))
    book.flush()

    found = category_alarms(store, OPENED - timedelta(days=7), OPENED + timedelta(days=1))

    assert found == {("usage.usage-post", "erp"): [CategoryAlarm("mapping", _minute(OPENED))]}
    later = _minute(OPENED + timedelta(days=30))
    assert alarms_at(found[("usage.usage-post", "erp")], later) == (
        frozenset({"mapping"}),
        frozenset(),
    )
    assert alarms_at(found[("usage.usage-post", "erp")], _minute(OPENED)) == (
        frozenset(),
        frozenset({"mapping"}),
    )


def test_an_event_names_a_category_only_at_the_start_of_one_of_its_parts():
    text = "latency up 4x; mapping_code failures: 2 of 9; order mapping failures: 1"
    assert names_category(text, "mapping_code")
    assert not names_category(text, "mapping")
    assert names_category("x; mapping is new to this flow (no such failure)", "mapping")


def test_a_category_that_settles_and_fires_again_is_in_alarm_twice(store):
    # a category was taken to stay in alarm until its alert resolved, though its own alarm
    # settled while the error rate held the alert open: a restart left the failures of that
    # gap out of the history, where the uninterrupted run learned them
    book = AlertBook(store)
    mapping = _category("mapping", "mapping failures: 4 of 30 transactions in 5 min")
    error_rate = Signal("error_rate", "error_rate", 7.0, 0.001, 0.2)
    alert = book.open("billing.invoice-post", "erp", "Invoice", OPENED, mapping, error_rate)
    eased, back = OPENED + timedelta(minutes=40), OPENED + timedelta(minutes=70)
    book.ease(alert, eased, mapping)
    book.escalate(alert, back, _category("mapping", "mapping failures: 3 of 20 (again)"))
    book.ease(alert, back + timedelta(minutes=35), mapping)
    book.resolve(alert, OPENED + timedelta(hours=2))
    book.flush()

    found = category_alarms(store, OPENED - timedelta(days=7), OPENED + timedelta(days=1))

    alarms = found[("billing.invoice-post", "erp")]
    assert alarms == [
        CategoryAlarm("mapping", _minute(OPENED), _minute(eased)),
        CategoryAlarm("mapping", _minute(back), _minute(back + timedelta(minutes=35))),
    ]
    in_the_gap = _minute(eased + timedelta(minutes=1))
    assert alarms_at(alarms, in_the_gap) == (frozenset(), frozenset())
    assert alarms_at(alarms, _minute(eased)) == (frozenset({"mapping"}), frozenset())
    assert alarms_at(alarms, _minute(back)) == (frozenset(), frozenset({"mapping"}))
    after = _minute(back + timedelta(minutes=50))  # the error rate holds the alert, not mapping
    assert alarms_at(alarms, after) == (frozenset(), frozenset())


def test_a_category_back_in_alarm_on_an_open_alert_holds_for_ever(store):
    book = AlertBook(store)
    mapping = _category("mapping", "mapping failures: 4 of 30 transactions in 5 min")
    latency = Signal("latency", "latency_shift", 5.0, 200.0, 900.0, "posting calls slower")
    alert = book.open("billing.invoice-post", "erp", "Invoice", OPENED, latency, mapping)
    book.ease(alert, OPENED + timedelta(minutes=40), mapping, latency)
    back = OPENED + timedelta(minutes=50)
    book.escalate(alert, back, _category("mapping", "mapping failures: 3 of 20 (again)"))
    book.flush()

    found = category_alarms(store, OPENED - timedelta(days=7), OPENED + timedelta(days=1))

    assert found[("billing.invoice-post", "erp")][-1] == CategoryAlarm("mapping", _minute(back))
    assert eased_signals(store, [alert.alert_id]) == {
        alert.alert_id: frozenset({"category:mapping", "latency_shift"})
    }
    assert alert.eased == {"latency_shift"}


def test_what_settled_reads_back_by_signal_and_is_not_evidence():
    signals = ["category:mapping", "category:timeout failures", "error_rate", "latency_shift"]
    detail = "; ".join(settled_text(signal) for signal in signals)
    assert detail == (
        "mapping failures settled; timeout failures failures settled; error_rate settled; "
        "latency settled"
    )
    assert settled_signals(detail) == signals
    # a resolution's words, as written now and before
    resolution = "every signal back to its usual range (at its worst it scored 7.1)"
    assert settled_signals(resolution) == []
    assert settled_signals("settled after peak score 7.1") == []
    assert not names_category(detail, "mapping")
