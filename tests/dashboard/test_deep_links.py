"""The links in chat messages: the Alerts page opens on an alert, the Lineage page on a flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import APP_PATH
from detectors.alert_actions import add_silence, list_alerts
from detectors.lifecycle import AlertBook, Signal
from detectors.severity import load_severity
from seamwatch.times import readable_utc, table_time
from tests.rows import make_span_rows

ALERTS_PAGE = APP_PATH.parent / "views" / "05_alerts.py"
LINEAGE_PAGE = APP_PATH.parent / "views" / "02_lineage.py"
RUN_TIMEOUT_SECONDS = 30
# Every test runs against the test store, registered as the dashboard process registers its own.
pytestmark = pytest.mark.usefixtures("shared")
ERRORS = Signal("error_rate", "error_rate", 8.0, 0.01, 0.4)


def open_page(page, **query) -> AppTest:
    """Run ``page`` as a browser that followed a link with ``query`` would."""
    app = AppTest.from_file(str(page), default_timeout=RUN_TIMEOUT_SECONDS)
    app.query_params.update(query)
    return app.run()


def record_alert(store, flow: str, resolved: bool = False, by_currency=None):
    """Store an error-rate alert of ``flow`` on erp that affected 12 invoices worth 3,400
    (EUR unless ``by_currency`` splits it otherwise)."""
    book = AlertBook(store)
    opened_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    alert = book.open(flow, "erp", "Invoice", opened_at, ERRORS)
    book.observe(alert, opened_at, ERRORS, 12, 12, 3400.0, "422 invalid tax code")
    alert.money_by_currency = by_currency if by_currency is not None else {"EUR": 3400.0}
    if resolved:
        book.resolve(alert, opened_at + timedelta(minutes=10))
    book.flush()
    return alert


def page_text(app: AppTest) -> str:
    return "\n".join(str(element.value) for element in app.markdown)


@pytest.mark.parametrize("resolved", [False, True], ids=["open", "resolved"])
def test_a_linked_alert_opens_in_a_panel_above_the_tabs(store, resolved):
    alert = record_alert(store, "billing.invoice-post", resolved=resolved)
    record_alert(store, "order-to-cash.order-submit")

    app = open_page(ALERTS_PAGE, alert_id=alert.alert_id)

    assert not app.exception
    assert not app.error
    [ranked] = [
        a for a in list_alerts(store, load_severity(), "all") if a["alert_id"] == alert.alert_id
    ]
    label = ranked["priority_label"]
    assert app.subheader[0].value == f"{label} · billing.invoice-post → erp"
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Priority"] == f"{label} ({ranked['priority']:.1f})"
    assert metrics["Transactions affected"] == "12"
    facts = page_text(app)
    assert "**Money at risk:** 3,400.00 EUR" in facts
    assert "**Top error:** 422 invalid tax code" in facts
    assert "**What changed:** error rate 1.00% → 40.00%" in facts
    assert ("**Resolved:** still open" in facts) == (not resolved)
    assert "(./lineage?flow=billing.invoice-post)" in facts
    events = app.dataframe[0].value
    expected = ["opened", "resolved"] if resolved else ["opened"]
    assert events["event"].tolist() == expected
    # written as every table of the product writes UTC times; it showed "...13:02:00+00:00"
    assert events["at"].tolist()[0] == table_time(alert.opened_at)
    assert f"**Opened:** {readable_utc(alert.opened_at)}" in facts
    assert len(app.tabs) == 3


def test_money_at_risk_names_its_currencies_side_by_side_never_added_up(store):
    # the page showed one number, "3,400.00", the sum of yen and euros
    mixed = record_alert(store, "billing.invoice-post", by_currency={"JPY": 3000.0, "EUR": 400.0})
    record_alert(store, "order-to-cash.order-submit", by_currency={})

    app = open_page(ALERTS_PAGE, alert_id=mixed.alert_id)

    assert not app.exception
    # with the figure the priority weighed, in the default file's reporting currency
    both = "400.00 EUR + 3,000 JPY (mixed currencies) ≈ 418.60 EUR"
    assert f"**Money at risk:** {both}" in page_text(app)
    [table] = [frame.value for frame in app.dataframe if "money_text" in frame.value]
    shown = dict(zip(table["flow"], table["money_text"], strict=True))
    assert shown == {
        "billing.invoice-post": both,
        "order-to-cash.order-submit": "3,400.00 (currency unknown) (not converted to EUR)",
    }
    assert "money_at_risk" not in table.columns  # no column that adds them up


def test_silences_in_force_show_when_they_expire_in_utc_as_the_cli_does(store):
    record_alert(store, "billing.invoice-post")
    now = datetime.now(UTC).replace(microsecond=0)
    add_silence(store, timedelta(hours=2), flow="billing.*", created_by="ana", now=now)

    app = open_page(ALERTS_PAGE)

    assert not app.exception
    [silences] = [frame.value for frame in app.dataframe if "expires_at" in frame.value]
    assert silences["expires_at"].tolist() == [table_time(now + timedelta(hours=2))]
    assert silences["created_by"].tolist() == ["ana"]


def test_a_silence_of_one_category_shows_its_category_as_its_kind(store):
    add_silence(store, timedelta(hours=2), flow="billing.*", kind="category:mapping")

    app = open_page(ALERTS_PAGE)

    assert not app.exception
    [silences] = [frame.value for frame in app.dataframe if "expires_at" in frame.value]
    assert silences["kind"].tolist() == ["category:mapping"]


def test_an_alert_of_several_kinds_names_them_and_says_which_one_changed(store):
    # the table listed "latency, error_rate" beside a change of the error rate, and the kind
    # of a category alert as "exception_category", whichever category it was
    book = AlertBook(store)
    opened_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    slow = Signal("latency", "latency_shift", 5.0, 800.0, 4000.0)
    alert = book.open("billing.invoice-post", "erp", "Invoice", opened_at, slow)
    book.escalate(alert, opened_at, ERRORS)
    mapping = Signal("exception_category", "category:mapping", 6.0, 0.001, 0.08)
    book.escalate(alert, opened_at, mapping)
    book.flush()

    app = open_page(ALERTS_PAGE, alert_id=alert.alert_id)

    assert not app.exception
    [alerts] = [frame.value for frame in app.dataframe if "change" in frame.value]
    assert list(alerts["kinds"][0]) == ["latency", "error_rate", "category:mapping"]
    change = "error_rate (strongest): error rate 1.00% → 40.00%"
    assert alerts["change"].tolist() == [change]
    facts = page_text(app)  # markdown: the underscores are escaped
    assert r"**Kinds:** latency + error\_rate + category:mapping" in facts
    assert "**What changed:** " + change.replace("_", r"\_") in facts


def test_an_unknown_alert_id_says_so_and_the_page_still_works(store):
    record_alert(store, "billing.invoice-post")

    app = open_page(ALERTS_PAGE, alert_id="0123456789abcdef")

    assert not app.exception
    assert not app.error
    [warning] = app.warning
    assert warning.value == (
        "No alert with id 0123456789abcdef; it may be older than the history kept."
    )
    assert not app.subheader
    assert app.tabs[0].label == "Open (1)"


def test_a_linked_flow_lists_its_failed_transactions_newest_first(store):
    now = datetime.now(UTC)
    flow = {"integration.flow": "billing.invoice-post"}
    spans = [
        failed_span(flow, "INV-1", now - timedelta(hours=2), "422 invalid tax code"),
        failed_span(flow, "INV-2", now - timedelta(minutes=5), "504 gateway timeout"),
        failed_span(flow, "INV-OLD", now - timedelta(days=2), "too old to show"),
        {"attributes": {**flow, "business.key": "INV-3"}, "timestamp": now},
        failed_span({"integration.flow": "other"}, "ORD-1", now, "another flow"),
    ]
    store.insert_arrow("otel_traces", make_span_rows(spans))

    app = open_page(LINEAGE_PAGE, flow="billing.invoice-post")

    assert not app.exception
    assert not app.error
    assert app.subheader[0].value == "Recent failed transactions of billing.invoice-post"
    table = app.dataframe[0].value
    assert table["business_key"].tolist() == ["INV-2", "INV-1"]
    assert table["error"].tolist() == ["504 gateway timeout", "422 invalid tax code"]
    assert set(table["status"]) == {"Error"}
    assert any("Transaction search" in caption.value for caption in app.caption)


def test_a_linked_flow_without_failures_gets_a_caption(store):
    flow = {"integration.flow": "billing.invoice-post"}
    store.insert_arrow(
        "otel_traces", make_span_rows([{"attributes": {**flow, "business.key": "INV-3"}}])
    )

    app = open_page(LINEAGE_PAGE, flow="billing.invoice-post")

    assert not app.exception
    assert not app.error
    assert app.subheader[0].value == "Recent failed transactions of billing.invoice-post"
    assert app.caption[0].value == (
        "No failed transactions of billing.invoice-post in the last 24 hours."
    )


def test_a_link_to_a_flow_the_store_never_saw_says_so_and_names_those_it_holds(store):
    # a mistyped flow read like a flow without failures
    spans = [
        {"attributes": {"integration.flow": name, "business.key": "K-1"}}
        for name in ("billing.invoice-post", "usage.usage-post")
    ]
    store.insert_arrow("otel_traces", make_span_rows(spans))

    app = open_page(LINEAGE_PAGE, flow="billing.invoice-psot")

    assert not app.exception
    assert not app.error
    assert app.caption[0].value == (
        "No flow named billing.invoice-psot in the lineage index (flows are named by the "
        "spans' integration.flow). Flows it holds: billing.invoice-post, usage.usage-post."
    )


def test_a_link_to_a_flow_before_any_span_says_the_index_holds_none():
    app = open_page(LINEAGE_PAGE, flow="no-such.flow")

    assert not app.exception
    assert app.caption[0].value == (
        "No flow named no-such.flow: the lineage index holds no flow yet."
    )


def failed_span(attributes: dict, business_key: str, at: datetime, error: str) -> dict:
    """A failed server span of a transaction in the lineage index."""
    return {
        "attributes": {**attributes, "business.key": business_key},
        "timestamp": at,
        "status": "Error",
        "StatusMessage": error,
    }


def test_text_from_the_link_is_shown_as_written_not_as_markdown(store):
    # an id of "**x** [y](http://...)" once showed bold text and a working link to that site
    app = open_page(ALERTS_PAGE, alert_id="**x** [pay here](http://127.0.0.1:1/) " + "A" * 5000)

    assert not app.exception
    [warning] = app.warning
    assert warning.value.startswith(r"No alert with id \*\*x\*\* \[pay here\](http:\/\/127")
    assert len(warning.value) < 200  # a 5,000-character id is cut
    lineage = open_page(LINEAGE_PAGE, flow="**x**")
    assert lineage.subheader[0].value == r"Recent failed transactions of \*\*x\*\*"


def test_a_category_alert_says_what_changed_in_shares_of_transactions(store):
    # it once read "category:mapping 0 tx/min → 0 tx/min"
    book = AlertBook(store)
    opened_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    mapping = Signal("exception_category", "category:mapping", 9.0, 0.0011, 0.0829)
    alert = book.open("usage.usage-post", "erp", "UsageRecord", opened_at, mapping)
    book.flush()

    app = open_page(ALERTS_PAGE, alert_id=alert.alert_id)

    assert "**What changed:** mapping failures 0.11% → 8.29% of transactions" in page_text(app)


def test_the_escaping_examples_hold():
    import doctest

    import dashboard.text

    assert doctest.testmod(dashboard.text).failed == 0


def test_a_silenced_alert_says_who_silenced_it_until_when_and_why(store):
    # it showed the silence's id alone
    alert = record_alert(store, "billing.invoice-post")
    now = datetime.now(UTC).replace(microsecond=0)
    silence = add_silence(
        store, timedelta(hours=2), flow="billing.*", reason="ERP upgrade", created_by="ana", now=now
    )

    app = open_page(ALERTS_PAGE, alert_id=alert.alert_id)

    assert not app.exception
    until = readable_utc(now + timedelta(hours=2))
    expected = f"**Silenced:** by ana until {until}: ERP upgrade (silence {silence['silence_id']})"
    assert expected in page_text(app)
