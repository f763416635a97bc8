"""The text of ``seamwatch reconcile``."""

from __future__ import annotations

import pytest

from lineage.report import reconciliation_text


def test_the_reconciliation_says_it_judged_as_of_the_newest_span():
    # "judged at" a time before the window's end read as a clock that had gone wrong
    document = {
        "transactions": 1200,
        "target": "erp",
        "since": "2026-12-04T01:00:00.000Z",
        "until": "2026-12-05T01:20:00.000Z",
        "as_of": "2026-12-05T01:16:28.344Z",
        "as_of_basis": "newest_span",
        "counts": {"dropped": 0, "duplicate": 0},
        "findings": [],
    }
    header = reconciliation_text(document).splitlines()[0]
    # times as the rest of the CLI writes them, not 2026-12-04T01:00:00.000Z
    assert header == (
        "Reconciled 1,200 transactions to erp started 2026-12-04 01:00 UTC .. "
        "2026-12-05 01:20 UTC (judged as of the newest span stored, 2026-12-05 01:16 UTC)"
    )


# a reconciliation of an hour without transactions
EMPTY = {
    "transactions": 0,
    "target": "erp",
    "since": "2026-12-06T00:29:10.000Z",
    "until": "2026-12-06T01:29:10.000Z",
    "as_of": "2026-12-06T01:29:10.258Z",
    "counts": {"dropped": 0},
    "findings": [],
}


@pytest.mark.parametrize(
    ("basis", "judged"),
    [
        (
            "now_no_span",
            "now, {}: no span of an integration flow stored in the window or the day before it",
        ),
        ("now_newest_span_later", "now, {}: the newest span stored is later than now"),
    ],
)
def test_a_reconciliation_judged_as_of_now_says_so_and_why(basis, judged):
    # with no span stored, the current time was called "the newest span stored"
    as_of = "2026-12-06 01:29 UTC"
    header = reconciliation_text({**EMPTY, "as_of_basis": basis}).splitlines()[0]

    assert header.endswith(f"(judged as of {judged.format(as_of)})")
    assert "newest span stored," not in header


def test_a_finding_in_yen_is_written_without_decimals():
    # "120,000.00 JPY": the yen has no minor unit
    finding = {
        "kind": "dropped",
        "business_key": "INV-2000412",
        "flow": "billing.invoice-post",
        "source": "billing",
        "target": "erp",
        "amount": 120000.0,
        "currency": "JPY",
        "diagnosis": "billing published the event but no consumer received it.",
    }
    document = {
        "transactions": 1,
        "target": "erp",
        "since": "2026-12-04T01:00:00.000Z",
        "until": "2026-12-05T01:20:00.000Z",
        "as_of": "2026-12-05T01:16:28.344Z",
        "counts": {"dropped": 1},
        "findings": [finding, {**finding, "amount": 1.235, "currency": "KWD"}],
    }
    lines = reconciliation_text(document).splitlines()
    assert lines[2].endswith("billing -> erp  120,000 JPY")
    assert lines[4].endswith("billing -> erp  1.235 KWD")


def test_a_reconciliation_without_any_transaction_says_so():
    document = {**EMPTY, "targets_in_window": []}
    assert reconciliation_text(document).splitlines()[-1] == (
        "  No transaction with a business key started in the window, to any target."
    )
