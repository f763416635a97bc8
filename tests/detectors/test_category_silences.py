"""Silences of one failure category: what they cover, how names compare, what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detectors.alert_actions import AlertActionError, active_silences, add_silence, list_alerts
from detectors.lifecycle import AlertBook, Signal
from detectors.severity import load_severity
from tests.detectors.test_alert_actions import ERRORS, record_alert


def _category(name: str, score: float = 9.0) -> Signal:
    return Signal("exception_category", f"category:{name}", score, 0.001, 0.08)


def record_category_alert(store, flow: str, *categories: str, joined: Signal | None = None):
    """An open alert of ``flow`` on erp opened by the first of ``categories``; the others,
    and ``joined``, join it a minute later."""
    book = AlertBook(store)
    opened_at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    first, *others = categories
    alert = book.open(flow, "erp", "Invoice", opened_at, _category(first))
    for signal in [*(_category(name) for name in others), *([joined] if joined else [])]:
        book.escalate(alert, opened_at + timedelta(minutes=1), signal)
    book.flush()
    return alert


def _silenced_by(store) -> dict[str, str | None]:
    return {a["alert_id"]: a["silenced_by"] for a in list_alerts(store, load_severity())}


def test_a_silence_of_one_category_marks_only_the_alerts_of_that_category(store):
    # --kind category:mapping was refused; exception_category silenced every category
    mapping = record_category_alert(store, "billing.invoice-post", "mapping")
    timeout = record_category_alert(store, "billing.payment-post", "timeout")
    errors = record_alert(store, "billing.credit-post", datetime.now(UTC))

    silence = add_silence(store, timedelta(hours=2), flow="billing.*", kind="category:mapping")

    assert (silence["kind"], silence["category"]) == ("exception_category", "mapping")
    assert _silenced_by(store) == {
        mapping.alert_id: silence["silence_id"],
        timeout.alert_id: None,
        errors.alert_id: None,
    }
    [listed] = [s for s in active_silences(store) if s["silence_id"] == silence["silence_id"]]
    assert listed["category"] == "mapping"


@pytest.mark.parametrize("written", ["Mapping", "category:MAPPING ", "CATEGORY:mapping"])
def test_a_category_is_compared_as_the_detectors_compare_it(store, written):
    alert = record_category_alert(store, "billing.invoice-post", "mapping")
    kind = written if written.lower().startswith("category:") else f"category:{written}"
    silence = add_silence(store, timedelta(hours=1), kind=kind)
    assert _silenced_by(store) == {alert.alert_id: silence["silence_id"]}


def test_a_category_name_with_odd_characters_is_compared_whole(store):
    # span attributes are free text: a name may hold the unit separator, %, * or a colon
    odd = "tax\x1fcode: 100% [EU]*"
    alert = record_category_alert(store, "billing.invoice-post", odd)
    record_category_alert(store, "billing.payment-post", "tax")

    silence = add_silence(store, timedelta(hours=1), kind=f"category:{odd}")
    glob = add_silence(store, timedelta(hours=1), kind="category:tax*")

    assert _silenced_by(store)[alert.alert_id] == silence["silence_id"]
    assert glob["silence_id"] not in _silenced_by(store).values()
    [warning] = glob["warnings"][:1]
    assert warning.startswith("category 'tax*' is compared whole, not as a glob")


def test_an_alert_of_two_categories_needs_both_silenced(store):
    alert = record_category_alert(store, "billing.invoice-post", "mapping", "timeout")

    mapping = add_silence(store, timedelta(hours=1), kind="category:mapping")
    assert _silenced_by(store) == {alert.alert_id: None}

    add_silence(store, timedelta(hours=1), kind="category:timeout")
    assert _silenced_by(store) == {alert.alert_id: mapping["silence_id"]}


def test_another_kind_joining_does_not_end_a_category_silence(store):
    # a mapping burst raises the error rate too: that is the same failures seen another way
    alert = record_category_alert(store, "billing.invoice-post", "mapping", joined=ERRORS)
    silence = add_silence(store, timedelta(hours=1), kind="category:mapping")
    assert _silenced_by(store) == {alert.alert_id: silence["silence_id"]}


def test_a_category_silence_of_a_category_never_seen_warns(store):
    record_category_alert(store, "billing.invoice-post", "mapping", "master_data_missing")

    silence = add_silence(store, timedelta(hours=1), kind="category:maping")

    assert silence["warnings"] == [
        "category 'maping' matches none of the 2 categories seen in the store "
        "(mapping, master_data_missing); the silence is kept and applies if such a category "
        "appears"
    ]
    assert add_silence(store, timedelta(hours=1), kind="category:Mapping")["warnings"] == []


def test_a_category_silence_of_every_alert_is_refused_with_all(store):
    with pytest.raises(AlertActionError, match="takes no flow, target or kind"):
        add_silence(store, timedelta(hours=1), kind="category:mapping", everything=True)
