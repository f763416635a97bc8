"""The executive page's week over week: KPIs over each week's transactions, written with units."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from dashboard.kpi_tables import week_over_week
from lineage.kpis import weekly_kpis
from tests.lineage.spans import START, posted, published
from tests.rows import make_span_rows

DAY = timedelta(days=1)
UNTIL = START + 3 * DAY


@pytest.fixture
def week(store):
    """Day 1: two clean postings; day 2: one failed invoice of 4,218.47 EUR never posted, one
    posted by a replay 20 minutes later, one clean; day 3: one clean (the newest span)."""
    mapping = ("mapping", "no ERP tax code for DE-RC-B2B")
    spans = (
        published("INV-A")
        + posted("INV-A")
        + published("INV-B")
        + posted("INV-B")
        + published("INV-C", at=START + DAY, **{"business.amount": "4218.47"})
        + posted("INV-C", at=START + DAY, failure=mapping, **{"business.amount": "4218.47"})
        + published("INV-D", at=START + DAY)
        + posted("INV-D", at=START + DAY, failure=mapping)
        + posted("INV-D", attempt=2, at=START + DAY + timedelta(minutes=20), replay=True)
        + published("INV-E", at=START + DAY)
        + posted("INV-E", at=START + DAY + timedelta(seconds=2))
        + published("INV-LAST", at=START + 2 * DAY)
        + posted("INV-LAST", at=START + 2 * DAY + timedelta(seconds=2))
    )
    store.insert_arrow("otel_traces", make_span_rows(spans))
    return store


def table(store) -> dict[str, tuple[str, str]]:
    weeks = week_over_week(pd.DataFrame(weekly_kpis(store, UNTIL)["weeks"]))
    return {
        (kpi if not currency else f"{kpi} {currency}"): (now, before)
        for kpi, currency, now, before in weeks[
            ["kpi", "currency", "this week", "last week"]
        ].itertuples(index=False)
    }


def test_a_week_sums_money_and_counts_and_weighs_rates(week):
    values = table(week)

    # the daily values were 0, 4,218.47 and 0; their mean (1,406.16) is no amount of anything
    assert values["Revenue at risk EUR"] == ("4,218.47 EUR", "—")
    assert values["Transactions"] == ("6", "—")
    # INV-C and INV-D failed, of 6: daily rates 0, 2/3, 0 would average to 22.22%
    assert values["Exception rate"] == ("33.33%", "—")
    # judged: all six; posted exactly once: all but INV-C
    assert values["Invoice reconciliation accuracy"] == ("83.33%", "—")


def test_a_week_takes_percentiles_over_its_transactions(week):
    values = table(week)

    # posted: A, B, E, LAST after 2.36 s and D after 20 min; the median of daily medians
    # (2.36 s, 601 s, 2.36 s) would agree here, but the p95 over the week is D's 20 min
    assert values["Sync latency p50"] == ("2.4 s", "—")
    assert values["Sync latency p95"][0].endswith(" min")
    assert values["Replay recovery p50"] == ("20.0 min", "—")


def test_a_week_without_data_reads_a_dash_not_none(week):
    weeks = week_over_week(pd.DataFrame(weekly_kpis(week, UNTIL)["weeks"]))

    assert set(weeks["last week"]) == {"—"}
    assert "None" not in weeks.to_string()
