"""Reconciliation finds each kind of loss by business key, and nothing in healthy traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lineage.kpis import kpis
from lineage.reconcile import ReconcileError, reconcile, recorded_exceptions
from lineage.report import reconciliation_text
from tests.lineage.spans import START, posted, published
from tests.rows import make_span_rows

LATER = START + timedelta(hours=3)
WINDOW = {"since": START - timedelta(minutes=1), "until": START + timedelta(hours=4)}


def insert(store, spans):
    store.insert_arrow("otel_traces", make_span_rows(spans))


@pytest.fixture
def traffic(store):
    """One transaction of each story; the newest span is at LATER, so all but one are due."""
    md = ("master_data_missing", "Item SKU-9 not found or inactive in the ERP item master")
    insert(
        store,
        published("INV-OK")
        + posted("INV-OK")
        + published("INV-DROP")
        + published("INV-DUP")
        + posted("INV-DUP")
        + posted("INV-DUP", attempt=2, at=START + timedelta(minutes=3))
        + published("INV-MD")
        + posted("INV-MD", failure=md)
        + posted("INV-MD", attempt=2, at=START + timedelta(minutes=50), replay=True)
        + published("INV-FAIL")
        + posted("INV-FAIL", failure=("mapping", "no ERP tax code for DE-RC-B2B"))
        + published("INV-STUCK")
        + posted("INV-STUCK")[:1]
        + published("INV-REPLAYED")
        + posted("INV-REPLAYED", at=LATER - timedelta(minutes=5), consumer=False, replay=True)
        + published("INV-FRESH", at=LATER - timedelta(minutes=1))
        + published("INV-LAST", at=LATER)
        + posted("INV-LAST", at=LATER),
    )
    return store


def by_key(document):
    return {(f["business_key"], f["kind"]): f for f in document["findings"]}


def test_each_kind_of_finding_names_its_business_key(traffic):
    document = reconcile(traffic, **WINDOW)

    assert sorted(by_key(document)) == [
        ("INV-DROP", "dropped"),
        ("INV-DUP", "duplicate"),
        ("INV-FAIL", "failed"),
        ("INV-MD", "master_data_missing"),
        ("INV-REPLAYED", "dropped"),
        ("INV-STUCK", "stuck"),
    ]
    assert document["counts"] == {
        "dropped": 2,
        "duplicate": 1,
        "master_data_missing": 1,
        "failed": 1,
        "stuck": 1,
    }
    assert document["transactions"] == 9
    assert document["as_of"] == "2025-03-10T12:00:00.050Z"
    assert document["as_of_basis"] == "newest_span"


def test_findings_carry_flow_systems_amount_and_a_diagnosis(traffic):
    found = by_key(reconcile(traffic, **WINDOW))

    dropped = found[("INV-DROP", "dropped")]
    assert (dropped["flow"], dropped["source"], dropped["target"]) == (
        "billing.invoice-post",
        "billing",
        "erp",
    )
    assert (dropped["amount"], dropped["currency"]) == (1250.5, "EUR")
    assert dropped["diagnosis"] == (
        "billing published the event but no consumer received it; not posted to erp within 30 min."
    )
    assert found[("INV-DUP", "duplicate")]["postings"] == 2
    assert found[("INV-DUP", "duplicate")]["diagnosis"] == "Posted to erp 2 times; expected once."
    master = found[("INV-MD", "master_data_missing")]
    assert master["recovered"]
    assert master["recovery_seconds"] == pytest.approx(50 * 60 + 0.01 + 0.35 - 2.01)
    assert master["diagnosis"].startswith("Arrived before its master data (Item SKU-9 not found")
    assert found[("INV-FAIL", "failed")]["diagnosis"] == (
        "Failed at erp (mapping): no ERP tax code for DE-RC-B2B. Not posted to erp within 30 min."
    )
    assert (
        "last seen at integration-api (process erp.invoices)"
        in (found[("INV-STUCK", "stuck")]["diagnosis"])
    )
    assert found[("INV-REPLAYED", "dropped")]["recovered"]


def test_findings_are_recorded_once_however_often_reconciliation_runs(traffic):
    reconcile(traffic, **WINDOW)
    reconcile(traffic, **WINDOW)

    recorded = recorded_exceptions(traffic)

    assert len(recorded) == 6
    assert sorted(recorded.loc[recorded["kind"] == "dropped", "business_key"]) == [
        "INV-DROP",
        "INV-REPLAYED",
    ]
    # stored as UInt8, read back as booleans like a fresh reconciliation's findings
    assert sorted(recorded.loc[recorded["recovered"], "business_key"]) == ["INV-MD", "INV-REPLAYED"]
    assert recorded["recovered"].map(type).eq(bool).all()


def test_healthy_traffic_has_no_findings(store):
    spans = []
    for number in range(20):
        key = f"INV-{number}"
        at = START + timedelta(minutes=number)
        spans += published(key, at=at) + posted(key, at=at + timedelta(seconds=2))
    insert(store, spans)

    document = reconcile(store, **WINDOW)

    assert document["transactions"] == 20
    assert document["findings"] == []


def test_kpis_per_flow_and_day(traffic):
    [row] = kpis(traffic, **WINDOW)["kpis"]

    assert (row["period"], row["flow"], row["transactions"]) == (
        "2025-03-10",
        "billing.invoice-post",
        9,
    )
    assert row["exception_rate"] == pytest.approx(2 / 9)
    # Judged: everything but INV-FRESH; posted exactly once: OK, MD, REPLAYED, LAST.
    assert row["invoice_reconciliation_accuracy"] == pytest.approx(4 / 8)
    assert row["order_acceptance_accuracy"] is None
    # At risk: DROP, FAIL and STUCK unposted, plus one extra posting of DUP.
    assert row["revenue_at_risk_by_currency"] == [{"currency": "EUR", "amount": 4 * 1250.5}]
    assert row["sync_latency_p50_ms"] == pytest.approx(2360.0)


def test_a_window_that_ends_before_it_starts_is_refused(store):
    # the times were written as 2025-03-10T09:00:00+00:00, unlike every other message
    with pytest.raises(ReconcileError) as refused:
        reconcile(store, since=START, until=START - timedelta(hours=1))
    assert str(refused.value) == (
        "since (2025-03-10 09:00 UTC) must be before until (2025-03-10 08:00 UTC)."
    )
    with pytest.raises(ReconcileError, match=r"since \(2025-03-10T09:00:30.000Z\) must be"):
        reconcile(store, since=START + timedelta(seconds=30), until=START)


def test_a_target_without_transactions_names_those_the_window_has(traffic):
    # 'reconcile --target nosuch' reported 0 transactions with no hint of a typo
    document = reconcile(traffic, **WINDOW, target="nosuch", record=False)
    assert document["transactions"] == 0
    assert document["targets_in_window"] == ["erp"]
    assert reconciliation_text(document).splitlines()[-1] == (
        "  No transaction to nosuch started in the window; the window has transactions to "
        "erp (choose one with --target)."
    )
    assert "targets_in_window" not in reconcile(traffic, **WINDOW, record=False)


def test_a_window_without_spans_is_judged_as_of_now_and_says_so(store):
    # the text called the current time "the newest span stored" when there was none
    before = datetime.now(UTC)
    document = reconcile(store, since=before - timedelta(hours=1), until=None)

    assert document["as_of_basis"] == "now_no_span"
    as_of = datetime.fromisoformat(document["as_of"])
    assert before <= as_of <= datetime.now(UTC)


def test_a_newest_span_in_the_future_is_judged_as_of_now_and_says_so(store):
    later = datetime.now(UTC) + timedelta(days=2)
    insert(store, published("INV-AHEAD", at=later))
    before = datetime.now(UTC)

    document = reconcile(store, since=before - timedelta(hours=1), until=None)

    assert document["as_of_basis"] == "now_newest_span_later"
    assert before <= datetime.fromisoformat(document["as_of"]) <= datetime.now(UTC)


REJECTED = ("duplicate", "409 Conflict: INV-2000154 was already posted")


@pytest.fixture
def redelivered(store):
    """INV-2000154 posted, then a redelivery the ERP rejected with 409 after the posting;
    INV-RETRIED failed validation, was replayed and posted, then was redelivered and rejected;
    INV-EARLY-409 was rejected as a duplicate before any posting of it is known."""
    insert(
        store,
        published("INV-2000154")
        + posted("INV-2000154")
        + posted("INV-2000154", attempt=2, at=START + timedelta(minutes=2), failure=REJECTED)
        + published("INV-RETRIED")
        + posted("INV-RETRIED", failure=("validation", "due date before invoice date"))
        + posted("INV-RETRIED", attempt=2, at=START + timedelta(minutes=10), replay=True)
        + posted("INV-RETRIED", attempt=3, at=START + timedelta(minutes=12), failure=REJECTED)
        + published("INV-EARLY-409")
        + posted("INV-EARLY-409", failure=REJECTED)
        + posted("INV-EARLY-409", attempt=2, at=START + timedelta(minutes=4))
        + published("INV-LAST", at=LATER)
        + posted("INV-LAST", at=LATER),
    )
    return store


def test_a_redelivery_rejected_as_duplicate_after_posting_is_not_a_failure(redelivered):
    [row] = kpis(redelivered, **WINDOW)["kpis"]

    # Only INV-RETRIED failed before it posted (validation) and INV-EARLY-409 before its
    # posting; the 409s after a posting neither fail nor recover anything.
    assert row["exception_rate"] == pytest.approx(2 / 4)
    # INV-RETRIED: validation failure at START+2s, replay posted at START+10min+~0.36s;
    # INV-EARLY-409: 409 at START+2s, posted at START+4min+~0.36s. Never negative.
    assert row["replay_recovery_p50_minutes"] == pytest.approx((9.97 + 3.97) / 2, abs=0.01)
    assert row["invoice_reconciliation_accuracy"] == 1.0
    assert row["revenue_at_risk_by_currency"] == [{"currency": "EUR", "amount": 0.0}]
    assert reconcile(redelivered, **WINDOW)["findings"] == []


def test_a_posted_transaction_with_only_a_rejected_redelivery_recovers_nothing(store):
    insert(
        store,
        published("INV-2000154")
        + posted("INV-2000154")
        + posted("INV-2000154", attempt=2, at=START + timedelta(minutes=2), failure=REJECTED),
    )

    [row] = kpis(store, **WINDOW)["kpis"]

    assert row["replay_recovery_p50_minutes"] is None
    assert row["exception_rate"] == 0.0
