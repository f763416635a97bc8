"""The lineage, exceptions and executive pages, run headless with Streamlit's AppTest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import APP_PATH
from seamwatch.runtime import share_store
from tests.lineage.ledger import INVOICES, MAPPING_TEXT, ledger
from tests.lineage.spans import posted, published
from tests.rows import make_span_rows

PAGES = APP_PATH.parent / "views"
RUN_TIMEOUT_SECONDS = 30


def sharing(store, spans):
    """``store`` with ``spans`` in it, shared as the dashboard process shares its own."""
    st.cache_data.clear()
    st.cache_resource.clear()
    share_store(store)
    store.insert_arrow("otel_traces", make_span_rows(spans))
    yield store
    share_store(None)
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def shared(store):
    """The test store, holding one posted and one dropped invoice of an hour ago."""
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    spans = (
        published("INV-1", at=hour_ago)
        + posted("INV-1", at=hour_ago + timedelta(seconds=2))
        + published("INV-2", at=hour_ago)
        + published("INV-3", at=datetime.now(UTC) - timedelta(minutes=1))
    )
    yield from sharing(store, spans)


def run(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / name), default_timeout=RUN_TIMEOUT_SECONDS).run()


def test_lineage_page_shows_the_hops_of_a_key(shared):
    app = run("02_lineage.py")
    app.text_input(key="lineage_search_value").set_value("INV-1").run()

    assert not app.exception
    hops = app.dataframe[0].value
    assert hops["service"].tolist() == [
        "billing",
        "billing",
        "integration-api",
        "integration-api",
        "erp",
    ]
    assert "Flow map" in [tab.label for tab in app.tabs]


def test_lineage_page_explains_a_bad_trace_id(shared):
    app = run("02_lineage.py")
    app.selectbox(key="lineage_search_kind").set_value("Trace id")
    app.text_input(key="lineage_search_value").set_value("nope").run()

    assert not app.exception
    assert "is not a trace id" in app.error[0].value


def test_exceptions_page_lists_the_dropped_invoice(shared):
    app = run("03_exceptions.py")

    assert not app.exception
    findings = app.dataframe[0].value
    assert findings["business_key"].tolist() == ["INV-2"]
    assert findings["kind"].tolist() == ["Event never reached its consumer"]
    # the counts' labels fit a fifth of the page, the long words are their help: the labels
    # were cut to "Event never reached its con…"
    counts = {metric.label: (metric.value, metric.help) for metric in app.metric}
    assert counts["Never consumed"] == ("1", "Event never reached its consumer")
    assert max(len(label) for label in counts) <= 20


def test_executive_page_draws_the_kpis(shared):
    app = run("04_executive.py")

    assert not app.exception
    assert app.header[0].value == "Executive trends"
    [chart] = app.get("plotly_chart")
    # a tick a day, written as the day: one day of data drew ticks a millisecond apart
    axis = json.loads(chart.proto.spec)["layout"]["xaxis"]
    assert (axis["dtick"], axis["tickformat"]) == (86_400_000, "%b %d")


@pytest.fixture
def books(store):
    """The test store holding the ledger of euros, dollars, yen and no currency, two hours
    ago (from the start of an hour, so that its transactions begin on one day)."""
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    yield from sharing(store, ledger(start))


def test_exceptions_page_writes_each_currency_of_a_group(books):
    app = run("03_exceptions.py")

    assert not app.exception
    findings, groups = app.dataframe[0].value, app.dataframe[1].value
    amounts = dict(zip(findings["business_key"], findings["amount"], strict=True))
    assert (amounts["INV-J1"], amounts["INV-N1"]) == ("120,000 JPY", "80.50 (currency unknown)")
    mapping = groups.set_index(["flow", "exception_category"]).loc[(INVOICES, "mapping")]
    assert mapping["amount"] == MAPPING_TEXT
    assert "amount_by_currency" not in groups


def test_executive_page_draws_revenue_at_risk_one_chart_per_currency(books):
    app = run("04_executive.py")
    app.selectbox(key="executive_kpi").set_value("revenue_at_risk_by_currency").run()

    assert not app.exception
    titles = [
        json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in app.get("plotly_chart")
    ]
    assert titles == [
        "Revenue at risk (EUR)",
        "Revenue at risk (JPY)",
        "Revenue at risk (USD)",
        "Revenue at risk (currency unknown)",
    ]
    weeks = app.dataframe[0].value
    at_risk = weeks[(weeks["kpi"] == "Revenue at risk") & (weeks["flow"] == INVOICES)]
    assert at_risk[["currency", "this week"]].values.tolist() == [
        ["EUR", "1,250.50 EUR"],
        ["JPY", "125,000 JPY"],
        ["USD", "99.99 USD"],
        ["unknown", "100.00"],
    ]


@pytest.fixture
def young_store(store):
    """Two days of a young store: a clean posting the day before yesterday, then an invoice of
    4,218.47 EUR that failed and was never posted, and a clean posting an hour ago."""
    now = datetime.now(UTC)
    amount = {"business.amount": "4218.47"}
    mapping = ("mapping", "no ERP tax code for DE-RC-B2B")
    spans = (
        published("INV-1", at=now - timedelta(days=2))
        + posted("INV-1", at=now - timedelta(days=2) + timedelta(seconds=2))
        + published("INV-2", at=now - timedelta(hours=3), **amount)
        + posted("INV-2", at=now - timedelta(hours=3), failure=mapping, **amount)
        + published("INV-3", at=now - timedelta(hours=1))
        + posted("INV-3", at=now - timedelta(hours=1) + timedelta(seconds=2))
    )
    yield from sharing(store, spans)


def test_executive_week_over_week_sums_money_and_writes_units(young_store):
    app = run("04_executive.py")

    assert not app.exception
    weeks = app.dataframe[0].value.set_index(["kpi", "currency"])
    assert weeks.loc[("Revenue at risk", "EUR"), "this week"] == "4,218.47 EUR"
    assert weeks.loc[("Transactions", ""), "this week"] == "3"
    assert weeks.loc[("Exception rate", ""), "this week"] == "33.33%"
    assert weeks.loc[("Sync latency p50", ""), "this week"] == "2.4 s"
    # a young store has no last week: a dash, not the text None
    assert set(weeks["last week"]) == {"—"}


@pytest.fixture
def redelivered(store):
    """INV-2000154 posted 1,693.4 s after it was published, then a redelivery the ERP rejected
    with 409 because the invoice was already posted."""
    start = datetime.now(UTC) - timedelta(hours=2)
    rejected = ("duplicate", "409 Conflict: INV-2000154 was already posted")
    spans = (
        published("INV-2000154", at=start)
        + posted("INV-2000154", at=start + timedelta(seconds=1693.04))
        + posted("INV-2000154", attempt=2, at=start + timedelta(minutes=40), failure=rejected)
    )
    yield from sharing(store, spans)


def test_lineage_page_shows_a_rejected_redelivery_as_no_failure(redelivered):
    app = run("02_lineage.py")
    app.text_input(key="lineage_search_value").set_value("INV-2000154").run()

    assert not app.exception
    assert "posted" in app.markdown[0].value
    assert not app.error
    assert "rejected by" in app.info[0].value
    assert "not a failure" in app.info[0].value
    assert "409 Conflict: INV-2000154 was already posted" in app.info[0].value
    latency = [metric for metric in app.metric if metric.label == "Sync latency"]
    assert latency[0].value == "28.2 min"
    # no hop has a derived value, so the note about derived values is not shown
    assert not [caption for caption in app.caption if "derived" in caption.value]
