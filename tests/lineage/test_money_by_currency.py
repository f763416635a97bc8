"""Every reader of money keeps it by currency: KPIs, failures by flow and category, flow
health, the API and the command line, over a store of euros, dollars, yen and transactions
that name no currency."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from dashboard.kpi_tables import money_rows, week_over_week
from lineage.api import routes
from lineage.exceptions import exception_summary
from lineage.flows import flow_health
from lineage.kpis import kpis, weekly_kpis
from lineage.lookup import LineageQuery, lineage
from lineage.reconcile import reconcile
from lineage.report import lineage_text, reconciliation_text
from storage import Store
from storage.schema import migrate
from tests.lineage.ledger import (
    INVOICE_RISK,
    INVOICES,
    MAPPING_AMOUNTS,
    MAPPING_TEXT,
    PAYMENTS,
    ledger,
)
from tests.lineage.spans import START, posted, published
from tests.older_schema import older_store
from tests.rows import make_span_rows
from tests.storage.test_server_store import server_port  # noqa: F401 - a fixture, found by name

WINDOW = {"since": START - timedelta(minutes=1), "until": START + timedelta(hours=2)}
CURRENCY_VERSION = 14


def insert(store, spans):
    store.insert_arrow("otel_traces", make_span_rows(spans))


@pytest.fixture
def books(store):
    insert(store, ledger(START))
    return store


def kpis_by_flow(store):
    return {row["flow"]: row for row in kpis(store, **WINDOW)["kpis"]}


def test_revenue_at_risk_is_kept_by_currency(books):
    rows = kpis_by_flow(books)

    # before, one number: 126,450.49 of euros, yen, dollars and unknown money added up
    assert rows[INVOICES]["revenue_at_risk_by_currency"] == INVOICE_RISK
    # a clean flow shows nothing at risk in each currency it deals in
    assert rows[PAYMENTS]["revenue_at_risk_by_currency"] == [{"currency": "USD", "amount": 0.0}]
    assert "revenue_at_risk" not in rows[INVOICES]


def test_a_key_that_travels_two_flows_risks_money_only_in_the_one_that_failed(store):
    order = {"flow": "order.submit", "business.object": "SalesOrder"}
    insert(
        store,
        published("DOC-7")
        + posted("DOC-7", failure=("mapping", "no tax code"))
        # the order's own trace: ids of another attempt, so not a copy of the invoice's
        + posted("DOC-7", attempt=5, at=START + timedelta(seconds=5), **order)
        + published("LAST", at=START + timedelta(hours=1)),
    )

    rows = kpis_by_flow(store)

    # before, the failed invoice's amount was counted again in the order flow
    assert rows["order.submit"]["revenue_at_risk_by_currency"] == [
        {"currency": "EUR", "amount": 0.0}
    ]
    assert rows[INVOICES]["revenue_at_risk_by_currency"] == [{"currency": "EUR", "amount": 1250.5}]


def test_failures_by_flow_and_category_name_each_currency(books):
    groups = exception_summary(books, WINDOW["since"], WINDOW["until"])
    mapping = groups.set_index(["flow", "exception_category"]).loc[(INVOICES, "mapping")]

    assert mapping["transactions"] == 4
    assert mapping["amount_by_currency"] == MAPPING_AMOUNTS
    assert mapping["amount"] == MAPPING_TEXT
    assert mapping["sample_keys"] == "INV-E1, INV-J2, INV-N2, INV-U1"
    # the message of the failed call, though the key's other spans carry none
    assert mapping["example_error"] == "no ERP tax code for DE-RC-B2B"


def test_failures_without_an_amount_show_a_dash(store):
    insert(store, posted("INV-9", failure=("timeout", "slow"), **{"business.amount": ""}))

    [group] = exception_summary(store, WINDOW["since"], WINDOW["until"]).to_dict("records")

    assert (group["amount"], group["amount_by_currency"]) == ("—", [])


def test_flow_health_keeps_the_rollups_amounts_by_currency(store):
    insert(store, _priced_spans())

    [health] = flow_health(store, START, START + timedelta(minutes=5)).to_dict("records")

    assert health["amount_by_currency"] == [
        {"currency": "EUR", "amount": 300.25},
        {"currency": "JPY", "amount": 120000.0},
        {"currency": None, "amount": 7.5},
    ]
    assert health["failed_amount_by_currency"] == [{"currency": "JPY", "amount": 120000.0}]


def _priced_spans():
    """Spans of one flow: two in euros, a failed one in yen, one of no currency, one with no
    amount at all."""
    spans = []
    for amount, currency, status in (
        ("100.25", "EUR", "Unset"),
        ("200", "EUR", "Unset"),
        ("120000", "JPY", "Error"),
        ("7.5", None, "Unset"),
        (None, "USD", "Unset"),
    ):
        attributes = {"integration.flow": "o2c"}
        if amount is not None:
            attributes["business.amount"] = amount
        if currency is not None:
            attributes["business.currency"] = currency
        spans.append({"attributes": attributes, "timestamp": START, "status": status})
    return spans


@pytest.fixture(params=["embedded", "server"])
def previous_store(request, chdb_data_dir, monkeypatch) -> Iterator[Store]:
    """A new database migrated with every version but the rollups' currencies."""

    def applied(migration):
        return migration.version != CURRENCY_VERSION

    with older_store(request, chdb_data_dir, monkeypatch, applied) as store:
        yield store


def test_rollups_of_before_the_split_read_as_money_of_an_unknown_currency(previous_store):
    spans = _priced_spans()
    insert(previous_store, spans[:1])

    migrate(previous_store)
    migrate(previous_store)  # a second run changes nothing
    insert(previous_store, spans[1:])
    [health] = flow_health(previous_store, START, START + timedelta(minutes=5)).to_dict("records")

    assert health["spans"] == 5
    # the euros rolled up before the split lost their currency, not their amount
    assert health["amount_by_currency"] == [
        {"currency": "EUR", "amount": 200.0},
        {"currency": "JPY", "amount": 120000.0},
        {"currency": None, "amount": 107.75},
    ]


def test_the_api_serves_money_by_currency(books):
    client = TestClient(Starlette(routes=routes(books)))
    window = {"since": "2025-03-10T08:59:00Z", "until": "2025-03-10T11:00:00Z"}

    answer = client.get("/api/v1/kpis", params=window).json()
    flows = client.get("/api/v1/flows", params=window).json()["flows"]

    invoices = next(row for row in answer["kpis"] if row["flow"] == INVOICES)
    assert invoices["revenue_at_risk_by_currency"] == INVOICE_RISK
    health = next(flow for flow in flows if flow["flow"] == INVOICES)
    assert [part["currency"] for part in health["amount_by_currency"]] == [
        "EUR",
        "JPY",
        "USD",
        None,
    ]
    assert "amount" not in health


def test_the_command_line_names_the_currency_of_every_amount(books):
    findings = reconciliation_text(reconcile(books, **WINDOW, record=False))
    hops = lineage_text(lineage(books, LineageQuery(key="INV-N1")))

    assert "INV-J1           billing.invoice-post           billing -> erp  120,000 JPY" in (
        findings
    )
    assert "billing -> erp  80.50 (currency unknown)" in findings
    assert "amount 80.50 (currency unknown)" in hops


def test_the_executive_tables_keep_one_row_per_currency(books):
    import pandas as pd

    frame = pd.DataFrame(kpis(books, **WINDOW)["kpis"])

    money = money_rows(frame, "revenue_at_risk_by_currency")
    weeks = week_over_week(pd.DataFrame(weekly_kpis(books, WINDOW["until"])["weeks"]))

    invoices = money[money["flow"] == INVOICES]
    assert invoices["currency"].tolist() == ["EUR", "JPY", "USD", "unknown"]
    assert invoices["amount"].tolist() == [1250.5, 125000.0, 99.99, 100.0]
    at_risk = weeks[weeks["kpi"] == "Revenue at risk"]
    assert at_risk[["flow", "currency", "this week"]].values.tolist() == [
        [INVOICES, "EUR", "1,250.50 EUR"],
        [INVOICES, "JPY", "125,000 JPY"],
        [INVOICES, "USD", "99.99 USD"],
        [INVOICES, "unknown", "100.00"],
        [PAYMENTS, "USD", "0.00 USD"],
    ]
    assert set(weeks.loc[weeks["kpi"] != "Revenue at risk", "currency"]) == {""}
