"""The text of ``seamwatch reconcile``."""

from __future__ import annotations

from lineage.report import reconciliation_text


def test_the_reconciliation_says_it_judged_as_of_the_newest_span():
    # "judged at" a time before the window's end read as a clock that had gone wrong
    document = {
        "transactions": 1200,
        "target": "erp",
        "since": "2026-12-04T01:00:00.000Z",
        "until": "2026-12-05T01:20:00.000Z",
        "as_of": "2026-12-05T01:16:28.344Z",
        "counts": {"dropped": 0, "duplicate": 0},
        "findings": [],
    }
    header = reconciliation_text(document).splitlines()[0]
    assert header == (
        "Reconciled 1,200 transactions to erp started 2026-12-04T01:00:00.000Z .. "
        "2026-12-05T01:20:00.000Z (judged as of the newest span stored, "
        "2026-12-05T01:16:28.344Z)"
    )
