"""The detector runner over stored spans: alert lifecycle, catch-up, silences, API and CLI."""

from __future__ import annotations

import json
import math
import threading
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from detectors.alert_actions import (
    AlertActionError,
    acknowledge,
    add_silence,
    cancel_silence,
    list_alerts,
)
from detectors.alert_text import what_changed
from detectors.alerts_api import routes
from detectors.alerts_cli import format_alerts
from detectors.flow_series import read_minutes
from detectors.lifecycle import Alert, AlertBook, Signal, notified_events_since
from detectors.posting_watch import DROPPED, DUPLICATE_POSTING, Finding
from detectors.runner import DetectorRunner, Minute, category_counts, category_messages
from detectors.severity import load_severity
from seamwatch.cli import app
from seamwatch.times import utc_text
from tests.detectors.helpers import without_error_budgets
from tests.lineage.spans import posted, published
from tests.rows import (
    QUIET_RETURN_MINUTE,
    failing_after_a_quiet_hour,
    invoice_postings,
    make_span_rows,
)

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
FLOW = "billing.invoice-post"
CLEAN_MINUTES = 60
BURST_MINUTES = 5


def _spans(minute: int, count: int, failed: int) -> list[dict]:
    return invoice_postings(START, minute, count, failed)


@pytest.fixture
def burst_store(store):
    """An hour of clean invoice postings, then five minutes where half of them fail."""
    spans = []
    for minute in range(CLEAN_MINUTES):
        spans += _spans(minute, 6, 0)
    for minute in range(CLEAN_MINUTES, CLEAN_MINUTES + BURST_MINUTES):
        spans += _spans(minute, 6, 3)
    store.insert_arrow("otel_traces", make_span_rows(spans))
    return store


def _events(store) -> list[tuple]:
    return store.query_rows(
        f"SELECT event, kind FROM {store.table('alert_events')} FINAL ORDER BY at, event"
    )


def test_error_burst_opens_one_alert_at_its_first_minute(burst_store):
    end = START + timedelta(minutes=CLEAN_MINUTES + BURST_MINUTES)
    report = DetectorRunner(burst_store).catch_up(end)

    assert report.minutes == CLEAN_MINUTES + BURST_MINUTES
    assert report.opened == 1
    [alert] = list_alerts(burst_store, load_severity(), "open")
    assert alert["flow"] == FLOW
    assert alert["kind"] == "error_rate"
    assert alert["tier"] == "critical"
    assert alert["opened_at"] == utc_text(START + timedelta(minutes=CLEAN_MINUTES))
    assert alert["failed"] == 3 * BURST_MINUTES
    assert alert["money_at_risk"] == pytest.approx(100.5 * 3 * BURST_MINUTES)
    assert alert["top_error"] == "unmapped tax code"
    assert alert["baseline"] == 0.0 and alert["observed"] == 0.5
    assert ("opened", "error_rate") in _events(burst_store)


def test_a_transaction_that_fails_again_is_counted_once_by_its_alert(store):
    # each minute's failed transactions were added up, so a retried invoice counted again
    spans = []
    for minute in range(CLEAN_MINUTES):
        spans += _spans(minute, 6, 0)
    for minute in range(CLEAN_MINUTES, CLEAN_MINUTES + BURST_MINUTES):
        retried = _spans(minute, 6, 3)
        for i, span in enumerate(retried[:3]):
            span["attributes"]["business.key"] = f"INV-RETRIED-{i}"
        spans += retried
    store.insert_arrow("otel_traces", make_span_rows(spans))

    DetectorRunner(store).catch_up(START + timedelta(minutes=CLEAN_MINUTES + BURST_MINUTES))

    [alert] = list_alerts(store, load_severity(), "open")
    assert alert["kind"] == "error_rate"
    assert (alert["failed"], alert["affected"]) == (3, 3)
    assert alert["money_at_risk"] == pytest.approx(100.5 * 3)


def _burst(currency_of) -> list[dict]:
    """An hour of clean postings, then failures whose currency ``currency_of(i)`` gives."""
    spans = [span for minute in range(CLEAN_MINUTES) for span in _spans(minute, 6, 0)]
    for minute in range(CLEAN_MINUTES, CLEAN_MINUTES + BURST_MINUTES):
        for i, span in enumerate(_spans(minute, 6, 3)):
            currency = currency_of(i)
            if currency:
                span["attributes"]["business.currency"] = currency
            spans.append(span)
    return spans


@pytest.mark.parametrize(
    "currency_of, expected",
    [
        (lambda i: "EUR", {"EUR": 100.5 * 3 * BURST_MINUTES}),
        (lambda i: "EUR" if i else "USD", {"EUR": 100.5 * 2 * BURST_MINUTES, "USD": 100.5 * 5}),
        (lambda i: "", {"": 100.5 * 3 * BURST_MINUTES}),
    ],
)
def test_an_error_burst_alert_splits_its_money_by_the_failed_spans_currency(
    store, currency_of, expected
):
    store.insert_arrow("otel_traces", make_span_rows(_burst(currency_of)))
    runner = DetectorRunner(store)
    runner.catch_up(START + timedelta(minutes=CLEAN_MINUTES + BURST_MINUTES))

    alert = runner.book.open_alerts[(FLOW, "erp")]
    assert alert.money_by_currency == pytest.approx(expected)
    assert sum(alert.money_by_currency.values()) == pytest.approx(alert.money_at_risk)


def test_the_stored_alert_keeps_its_money_by_currency_for_every_reader(store):
    # the split lived in the runner's memory; the listing added euros and dollars up
    store.insert_arrow("otel_traces", make_span_rows(_burst(lambda i: "EUR" if i else "USD")))
    DetectorRunner(store).catch_up(START + timedelta(minutes=CLEAN_MINUTES + BURST_MINUTES))

    [alert] = list_alerts(store, load_severity(), "open")
    assert alert["money_at_risk"] == pytest.approx(100.5 * 3 * BURST_MINUTES)
    assert alert["money_by_currency"] == [
        {"currency": "EUR", "amount": 1005.0},
        {"currency": "USD", "amount": 502.5},
    ]
    # the built-in severity file's example rate: 1 USD = 0.92 EUR
    assert alert["money_text"] == "1,005.00 EUR + 502.50 USD (mixed currencies) ≈ 1,467.30 EUR"
    restarted = DetectorRunner(store).book.load_open()[(FLOW, "erp")]
    assert restarted.money_by_currency == pytest.approx({"EUR": 1005.0, "USD": 502.5})


def test_catch_up_after_restart_does_not_alert_twice(burst_store):
    end = START + timedelta(minutes=CLEAN_MINUTES + BURST_MINUTES)
    DetectorRunner(burst_store).catch_up(end - timedelta(minutes=3))
    restarted = DetectorRunner(burst_store)
    report = restarted.catch_up(end)

    assert report.minutes == 3
    assert report.opened == 0
    assert len(list_alerts(burst_store, load_severity(), "all")) == 1
    assert [e for e in _events(burst_store) if e[0] == "opened"] == [("opened", "error_rate")]
    assert restarted.catch_up(end).minutes == 0


def test_silence_and_acknowledgement_show_on_the_alert(burst_store):
    DetectorRunner(burst_store).catch_up(START + timedelta(minutes=CLEAN_MINUTES + 2))
    [alert] = list_alerts(burst_store, load_severity(), "open")
    silence = add_silence(burst_store, timedelta(hours=1), flow="billing.*", reason="deploy")
    acknowledge(burst_store, alert["alert_id"], "ana", "looking")

    [seen] = list_alerts(burst_store, load_severity(), "open")
    assert seen["silenced_by"] == silence["silence_id"]
    assert seen["acknowledged_by"] == "ana"

    cancel_silence(burst_store, silence["silence_id"])
    later = datetime.now(UTC) + timedelta(hours=2)
    assert list_alerts(burst_store, load_severity(), "open")[0]["silenced_by"] is None
    assert list_alerts(burst_store, load_severity(), "open", now=later)[0]["silenced_by"] is None


def test_bad_requests_raise_clear_errors(store):
    with pytest.raises(AlertActionError, match="state must be one of open, resolved, all"):
        list_alerts(store, load_severity(), "closed")
    with pytest.raises(AlertActionError, match="no alert with id 'nope'"):
        acknowledge(store, "nope", "ana")
    with pytest.raises(AlertActionError, match="at least a second, got 0 s"):
        add_silence(store, timedelta(0))
    with pytest.raises(AlertActionError) as raised:
        add_silence(store, timedelta(hours=1), kind="mapping")
    assert str(raised.value) == (
        "kind 'mapping' matches no alert kind; use one of latency, error_rate, volume, "
        "exception_category, error_budget, latency_objective, duplicate_posting, dropped, a glob "
        "of them, '*', or category:NAME for one failure category"
    )
    with pytest.raises(AlertActionError) as raised:
        add_silence(store, timedelta(hours=1), kind="error-budget")
    assert str(raised.value).startswith(
        "kind 'error-budget' matches no alert kind; did you mean error_budget? Otherwise use "
        "one of latency, "
    )
    with pytest.raises(AlertActionError, match="kind 'category: ' names no category"):
        add_silence(store, timedelta(hours=1), kind="category: ")


def test_api_serves_alerts_and_takes_acknowledgements(burst_store):
    DetectorRunner(burst_store).catch_up(START + timedelta(minutes=CLEAN_MINUTES + 2))
    client = TestClient(Starlette(routes=routes(burst_store)))

    listed = client.get("/api/v1/alerts", params={"state": "all"}).json()["alerts"]
    assert [a["flow"] for a in listed] == [FLOW]
    ack = client.post(f"/api/v1/alerts/{listed[0]['alert_id']}/ack", json={"by": "bo"})
    assert ack.status_code == 200 and ack.json()["acknowledged_by"] == "bo"
    assert client.get("/api/v1/alerts", params={"state": "x"}).status_code == 400
    # an id that names nothing is not found, not a bad request
    assert client.post("/api/v1/alerts/missing/ack", json={}).status_code == 404
    assert client.post("/api/v1/silences/missing/cancel", json={}).status_code == 404
    blank = client.post("/api/v1/silences", json={"seconds": 60, "flow": "   "})
    assert blank.status_code == 400 and "flow is empty" in blank.json()["error"]
    bogus = client.post("/api/v1/silences", json={"seconds": 60, "kind": "bogus"})
    assert bogus.status_code == 400 and "matches no alert kind" in bogus.json()["error"]
    made = client.post("/api/v1/silences", json={"seconds": 60, "kind": "error_*"}).json()
    assert made["created_by"] == "someone"
    assert client.post("/api/v1/silences", json={"seconds": "soon"}).status_code == 400


def test_cli_lists_alerts_as_json_and_refuses_bad_state(burst_store, chdb_data_dir, monkeypatch):
    DetectorRunner(burst_store).catch_up(START + timedelta(minutes=CLEAN_MINUTES + 2))
    monkeypatch.setenv("SEAMWATCH_DATABASE", burst_store.database)
    cli = CliRunner()

    listed = cli.invoke(app, ["alerts", "--json", "--data-dir", str(chdb_data_dir)])
    assert listed.exit_code == 0, listed.output
    assert [a["flow"] for a in json.loads(listed.output)] == [FLOW]

    bad = cli.invoke(app, ["alerts", "--state", "closed", "--data-dir", str(chdb_data_dir)])
    assert bad.exit_code == 2
    assert "Error: --state 'closed' is not one of open, resolved, all." in bad.output
    assert "Traceback" not in bad.output


def test_an_empty_list_says_which_alerts_there_are_none_of():
    from detectors.alerts_cli import format_alerts

    assert format_alerts([], "open") == "No open alerts (--state all lists every alert)."
    assert format_alerts([], "all") == "No alerts."


def _categorised(minute: int, mapping: int, name: str = "mapping") -> list[dict]:
    """Six postings; two rate-limited every minute (usual here), then ``mapping`` failures
    (of category ``name``)."""
    spans = _spans(minute, 6, 2 + mapping)
    for i, span in enumerate(spans[: 2 + mapping]):
        category = "rate_limit" if i < 2 else name
        span["StatusMessage"] = "429 Too Many Requests" if i < 2 else "unmapped tax code DE-RC"
        span["attributes"]["integration.exception.category"] = category
    return spans


def test_a_category_alert_quotes_an_error_of_its_category(store):
    # a mapping burst's alert once quoted the minute's most frequent error, a 429
    spans = []
    for minute in range(CLEAN_MINUTES * 4):
        spans += _categorised(minute, 0)
    for minute in range(CLEAN_MINUTES * 4, CLEAN_MINUTES * 4 + BURST_MINUTES):
        spans += _categorised(minute, 1)
    store.insert_arrow("otel_traces", make_span_rows(spans))

    DetectorRunner(store, severity=without_error_budgets()).catch_up(
        START + timedelta(minutes=CLEAN_MINUTES * 4 + BURST_MINUTES)
    )

    [alert] = list_alerts(store, load_severity(), "open")
    assert alert["signal"] == "category:mapping"
    assert alert["top_error"] == "unmapped tax code DE-RC"


def test_a_stop_ends_a_long_catch_up_between_chunks_and_the_rest_follows_later(burst_store):
    # a shutdown once waited for the whole first week's catch-up (145 s, cut off at 30 s)
    end = START + timedelta(minutes=CLEAN_MINUTES + BURST_MINUTES)
    stop = threading.Event()
    stop.set()
    stopped = DetectorRunner(burst_store, chunk=timedelta(minutes=10)).catch_up(end, stop)
    assert stopped.minutes == 0

    resumed = DetectorRunner(burst_store, chunk=timedelta(minutes=10)).catch_up(end)
    assert resumed.minutes == CLEAN_MINUTES + BURST_MINUTES
    assert resumed.opened == 1


def test_a_duplicate_posting_alert_quotes_the_finding_not_the_minutes_errors(store):
    # an alert on an invoice posted twice once quoted an unrelated validation error
    runner = DetectorRunner(store)
    state = runner._series(FLOW, "erp", "Invoice")
    unrelated = "422 INV-7: field 'paymentTerms' is invalid"
    twice = Finding(DUPLICATE_POSTING, FLOW, "erp", {"INV-1": 100.5}, currencies={"INV-1": "EUR"})
    for minute, findings in enumerate(({DUPLICATE_POSTING: twice}, {})):
        values = Minute(transactions=5.0, failed=1.0, top_error=unrelated)
        onsets, active = state.step(values, findings)
        at = START + timedelta(minutes=minute)
        runner._apply(state, at, values, onsets, active, findings)
        alert = runner.book.open_alerts[(FLOW, "erp")]
        assert alert.top_error == (
            "1 billing.invoice-post transaction(s) posted twice to erp since the alert opened, "
            "amount 100.50 EUR; INV-1"
        )


def _found(kind: str, **amounts: float) -> dict[str, Finding]:
    currencies = dict.fromkeys(amounts, "EUR")
    return {kind: Finding(kind, FLOW, "erp", dict(amounts), "billing", currencies)}


def _alert_of(store, minutes: list[tuple[dict, dict]], currency: str) -> Alert:
    """The open alert after ``minutes`` of (findings, failed amounts in ``currency``)."""
    runner = DetectorRunner(store)
    state = runner._series(FLOW, "erp", "Invoice")
    for minute, (findings, failed) in enumerate(minutes):
        values = Minute(
            transactions=5.0,
            failed=len(failed),
            failed_amounts=failed,
            failed_currencies=dict.fromkeys(failed, currency),
        )
        onsets, active = state.step(values, findings)
        runner._apply(state, START + timedelta(minutes=minute), values, onsets, active, findings)
    return runner.book.open_alerts[(FLOW, "erp")]


def test_a_finding_alert_counts_each_transaction_once_and_names_them_all(store):
    # an alert read "posted twice: INV-2003372; amount 10,062.56" while it counted 32
    # transactions and 232,588.44: the text named the latest minute's key alone
    minutes = [
        (_found(DUPLICATE_POSTING, **{"INV-1": 100.5}), {"INV-7": 40.0}),
        (_found(DUPLICATE_POSTING, **{"INV-2": 200.0}), {"INV-7": 40.0}),  # failed again
        (_found(DROPPED, **{"INV-1": 100.5, "INV-3": 9.5}), {}),  # INV-1 counted already
        ({}, {}),
    ]
    alert = _alert_of(store, minutes, "USD")
    assert alert.affected == 4  # INV-1, INV-2, INV-3 and INV-7, each once
    assert alert.money_at_risk == pytest.approx(100.5 + 200.0 + 9.5 + 40.0)
    assert alert.failed == 1
    # the money is in two currencies: split, never added up
    assert alert.money_by_currency == {"EUR": pytest.approx(310.0), "USD": 40.0}
    # the dropped events are the alert's peak, so its text names them first
    assert alert.signal == DROPPED
    assert alert.top_error == (
        "2 billing.invoice-post transaction(s) published by billing but not consumed within "
        "5 min since the alert opened, amount 110.00 EUR; latest first: INV-3, INV-1; "
        "2 billing.invoice-post transaction(s) posted twice to erp since the alert opened, "
        "amount 300.50 EUR; latest first: INV-2, INV-1; "
        "also 1 failed transaction(s), amount 40.00 USD; "
        "4 transaction(s) in all"  # INV-1 is in both findings
    )


@pytest.mark.parametrize("failed_first", [True, False])
def test_a_transaction_posted_twice_that_failed_is_one_affected_and_one_failed(store, failed_first):
    # an alert read "29 ... posted twice ...; also 2 failed transaction(s)" over
    # "failed": 3, "affected": 31: one of the 29 had failed too, which the text did not
    # say; had it failed after it was found, it was not counted as failed at all
    opening = (_found(DUPLICATE_POSTING, **{"INV-2": 50.0}), {})
    twice = (_found(DUPLICATE_POSTING, **{"INV-1": 100.0}), {})
    failures = ({}, {"INV-1": 100.0, "INV-9": 7.0})
    minutes = [opening, failures, twice] if failed_first else [opening, twice, failures]
    alert = _alert_of(store, minutes, "EUR")
    assert (alert.affected, alert.failed) == (3, 2)  # INV-1, INV-2, INV-9; INV-1, INV-9
    assert alert.money_at_risk == pytest.approx(157.0)
    assert alert.top_error.endswith(
        "also 1 failed transaction(s), amount 7.00 EUR; "
        "1 of the transactions above failed too (2 failed in all)"
    )


def _posted_twice(keys: int) -> list[dict]:
    """Invoices published and posted at minute i, and posted again a minute later."""
    spans = []
    for i in range(keys):
        key, at = f"INV-{i}", START + timedelta(minutes=i, seconds=10)
        spans += published(key, at=at) + posted(key, at=at + timedelta(seconds=1))
        spans += posted(key, attempt=2, at=at + timedelta(minutes=1))
    return spans


@pytest.mark.parametrize("restarted_at_minute", [None, 3])
def test_a_duplicate_posting_alert_adds_up_over_minutes_and_restarts(store, restarted_at_minute):
    store.insert_arrow("otel_traces", make_span_rows(_posted_twice(4)))
    end = START + timedelta(minutes=10)
    if restarted_at_minute:
        DetectorRunner(store).catch_up(START + timedelta(minutes=restarted_at_minute))
    runner = DetectorRunner(store)
    runner.catch_up(end)

    [alert] = list_alerts(store, load_severity(), "open")
    assert alert["kind"] == DUPLICATE_POSTING
    assert alert["affected"] == 4
    assert alert["money_at_risk"] == 4 * 1250.50
    assert alert["top_error"] == (
        "4 billing.invoice-post transaction(s) posted twice to erp since the alert opened, "
        "amount 5,002.00 EUR; latest first: INV-3, INV-2, INV-1, INV-0"
    )
    # the spans' business.currency, counted again from the spans after a restart
    assert runner.book.open_alerts[(FLOW, "erp")].money_by_currency == {"EUR": 4 * 1250.50}


def test_a_category_alert_keeps_its_quote_through_minutes_without_its_category(store):
    # a minute of 429s alone once replaced a mapping alert's quote with "429 Too Many Requests"
    spans = []
    burst_end = CLEAN_MINUTES * 4 + BURST_MINUTES
    for minute in range(CLEAN_MINUTES * 4):
        spans += _categorised(minute, 0)
    for minute in range(CLEAN_MINUTES * 4, burst_end):
        spans += _categorised(minute, 1)
    for minute in range(burst_end, burst_end + 3):
        spans += _categorised(minute, 0)
    store.insert_arrow("otel_traces", make_span_rows(spans))

    DetectorRunner(store, severity=without_error_budgets()).catch_up(
        START + timedelta(minutes=burst_end + 3)
    )

    [alert] = list_alerts(store, load_severity(), "open")
    assert alert["signal"] == "category:mapping"
    assert alert["top_error"] == "unmapped tax code DE-RC"


UNIT_SEPARATOR = "\x1f"


def test_category_names_holding_the_unit_separator_are_read_whole(store):
    # the minutes carry "category \x1f transaction" items: "tax\x1fcode" was read as "tax"
    names = [f"tax{UNIT_SEPARATOR}code", "100%", "%1F", f"{UNIT_SEPARATOR}lead"]
    spans = _spans(0, len(names), len(names))
    for name, span in zip(names, spans, strict=True):
        span["attributes"]["integration.exception.category"] = name
        span["StatusMessage"] = f"failed{UNIT_SEPARATOR}{name}"
    store.insert_arrow("otel_traces", make_span_rows(spans))

    [minute] = read_minutes(store, START, START + timedelta(minutes=1)).to_dict("records")

    keys = [span["attributes"]["business.key"] for span in spans]
    assert category_counts(minute["failed_categories"]) == {
        name: [key] for name, key in zip(names, keys, strict=True)
    }
    assert category_messages(minute["category_errors"]) == {
        name: f"failed{UNIT_SEPARATOR}{name}" for name in names
    }


def _category_burst_alert(store, name: str) -> dict:
    """The open alert the runner raises on a burst of failures of category ``name``."""
    spans = []
    for minute in range(CLEAN_MINUTES * 4):
        spans += _categorised(minute, 0, name)
    for minute in range(CLEAN_MINUTES * 4, CLEAN_MINUTES * 4 + BURST_MINUTES):
        spans += _categorised(minute, 1, name)
    store.insert_arrow("otel_traces", make_span_rows(spans))
    DetectorRunner(store, severity=without_error_budgets()).catch_up(
        START + timedelta(minutes=CLEAN_MINUTES * 4 + BURST_MINUTES)
    )
    [alert] = list_alerts(store, load_severity(), "open")
    return alert


def test_a_category_alert_names_a_category_holding_the_unit_separator(store):
    name = f"vendor{UNIT_SEPARATOR}mapping"
    alert = _category_burst_alert(store, name)
    assert alert["signal"] == f"category:{name}"
    assert alert["top_error"] == "unmapped tax code DE-RC"


def test_a_runner_alert_is_silenced_by_its_category_as_the_table_names_it(store):
    # the name holds the unit separator, which the minutes' items percent-encode
    name = f"Vendor{UNIT_SEPARATOR}Mapping"
    alert = _category_burst_alert(store, name)

    other = add_silence(store, timedelta(hours=1), kind="category:rate_limit")
    assert list_alerts(store, load_severity(), "open")[0]["silenced_by"] is None
    silence = add_silence(store, timedelta(hours=1), kind=f"category:{name.lower()}")

    assert alert["categories"] == [name]
    assert f"  category:{name}  " in format_alerts([alert]).splitlines()[1]
    [listed] = list_alerts(store, load_severity(), "open")
    assert listed["silenced_by"] == silence["silence_id"] != other["silence_id"]


def _quotes(store, minutes: list[tuple[Signal, Minute]]) -> list[str]:
    """The alert's quote after each of ``minutes`` (its strongest signal and values)."""
    runner = DetectorRunner(store)
    state = runner._series(FLOW, "erp", "Invoice")
    quotes = []
    for offset, (signal, values) in enumerate(minutes):
        onsets = [signal] if offset == 0 else []
        runner._apply(state, START + timedelta(minutes=offset), values, onsets, [signal])
        quotes.append(runner.book.open_alerts[(FLOW, "erp")].top_error)
    return quotes


def test_a_latency_alert_quotes_a_timeout_never_the_minutes_validation_error(store):
    # an ERP slowdown's alert once quoted "422 ...: field 'paymentTerms' is invalid"
    slow = Signal("latency", "latency_shift", 6.0, 400.0, 2600.0)
    invalid = "422 INV-7: field 'paymentTerms' is invalid"
    timeout = "ERP did not answer POST /api/v1/arInvoices within 8s"
    quotes = _quotes(
        store,
        [
            (slow, Minute(failed=1.0, top_error=invalid, category_errors={"validation": invalid})),
            (
                slow,
                Minute(
                    failed=2.0,
                    top_error=invalid,
                    category_errors={"validation": invalid, "timeout": timeout},
                ),
            ),
            (slow, Minute(failed=1.0, top_error=invalid, category_errors={"validation": invalid})),
        ],
    )
    assert quotes == ["", timeout, timeout]


def test_a_category_alert_keeps_its_quote_when_a_weaker_error_rate_leads_a_minute(store):
    # a master_data_missing alert once quoted a validation error: the error rate led a later
    # minute, under the category's peak, and the quote followed it
    missing = "Customer CUST-10518 is not active in the ERP"
    invalid = "422 INV-7: field 'paymentTerms' is invalid"
    both = {"master_data_missing": missing, "validation": invalid}
    quotes = _quotes(
        store,
        [
            (
                Signal("exception_category", "category:master_data_missing", 9.0, 0.0, 0.2),
                Minute(failed=3.0, top_error=missing, category_errors=both),
            ),
            (
                Signal("error_rate", "error_rate", 6.0, 0.01, 0.2),
                Minute(failed=4.0, top_error=invalid, category_errors=both),
            ),
            (
                Signal("error_rate", "error_rate", 12.0, 0.01, 0.3),
                Minute(failed=5.0, top_error=invalid, category_errors=both),
            ),
        ],
    )
    # the error rate's own error once it is the peak the alert names
    assert quotes == [missing, missing, invalid]


def test_dropped_events_found_37_minutes_apart_stay_one_alert(store):
    # a dropped-events incident on a quiet payments flow went 37 minutes between two findings:
    # its alert resolved after 30 and a second one opened for the same incident 7 minutes later
    runner = DetectorRunner(store)
    state = runner._series(FLOW, "erp", "Invoice")
    found_at = {0: _found(DROPPED, **{"INV-1": 10.0}), 37: _found(DROPPED, **{"INV-2": 20.0})}
    opened = set()
    for minute in range(38):
        findings = found_at.get(minute, {})
        values = Minute(transactions=1.0)
        onsets, active = state.step(values, findings)
        runner._apply(state, START + timedelta(minutes=minute), values, onsets, active, findings)
        opened |= {alert.alert_id for alert in runner.book.open_alerts.values()}
    assert len(opened) == 1
    assert runner.book.open_alerts[(FLOW, "erp")].affected == 2


def test_a_second_category_joining_an_alert_is_an_escalation(store):
    # a timeout burst during a mapping incident joined its alert without an event, so chat
    # never heard of it and on-call saw only the mapping failures
    book = AlertBook(store)
    mapping = Signal("exception_category", "category:mapping", 6.0, 0.001, 0.2, "mapping: 3 of 9")
    timeouts = Signal("exception_category", "category:timeout", 5.0, 0.001, 0.3, "timeout: 4 of 9")
    alert = book.open(FLOW, "erp", "Invoice", START, mapping)
    book.escalate(alert, START, mapping)  # the opening signal is not news
    book.escalate(alert, START + timedelta(minutes=3), timeouts)
    book.escalate(alert, START + timedelta(minutes=4), timeouts)  # nor is it twice
    book.flush()
    assert _events(store) == [
        ("opened", "exception_category"),
        ("escalated", "exception_category"),
    ]
    assert alert.categories == ["mapping", "timeout"]


def test_a_signal_that_settles_while_its_alert_stays_open_is_eased_then_recurred(store):
    # a category that settled and fired again on the same alert left no trace: a restart
    # could not tell when it had been in alarm
    book = AlertBook(store)
    mapping = Signal("exception_category", "category:mapping", 6.0, 0.001, 0.2, "mapping: 3 of 9")
    timeouts = Signal("exception_category", "category:timeout", 5.0, 0.001, 0.3, "timeout: 4 of 9")
    error_rate = Signal("error_rate", "error_rate", 8.0, 0.01, 0.3)
    alert = book.open(FLOW, "erp", "Invoice", START, mapping, timeouts, error_rate)
    book.ease(alert, START + timedelta(minutes=40), timeouts, mapping)
    book.ease(alert, START + timedelta(minutes=41))  # nothing settled: no event
    book.escalate(alert, START + timedelta(minutes=50), error_rate)  # open all along
    book.escalate(alert, START + timedelta(minutes=60), mapping)
    book.escalate(alert, START + timedelta(minutes=61), mapping)  # back already
    book.flush()

    assert store.query_rows(
        f"SELECT event, kind, detail FROM {store.table('alert_events')} FINAL ORDER BY at"
    ) == [
        (
            "opened",
            "exception_category",
            "mapping: 3 of 9; timeout: 4 of 9; error_rate from 1.00% to 30.00%",
        ),
        ("eased", "exception_category", "timeout failures settled; mapping failures settled"),
        ("recurred", "exception_category", "mapping: 3 of 9"),
    ]
    assert alert.eased == {"category:timeout"}
    assert alert.kinds == ["exception_category", "error_rate"]
    assert alert.categories == ["mapping", "timeout"]
    # neither is notified: on-call heard of both categories, and the alert never closed
    assert [row["event"] for row in notified_events_since(store, START)] == ["opened"]


def _notified(store) -> list[tuple]:
    return store.query_rows(
        f"SELECT at, event, kind, detail FROM {store.table('alert_events')} FINAL "
        "WHERE event IN ('opened', 'escalated') ORDER BY at, event"
    )


def test_failures_after_a_quiet_hour_open_one_alert_with_every_kind_and_no_nan(store):
    # the error rate, with no rate in the last hour to compare with, joined the mapping
    # alert in the minute it opened: a second message, "error_rate from nan% to 100.00%"
    store.insert_arrow("otel_traces", make_span_rows(failing_after_a_quiet_hour(START)))
    opened_at = START + timedelta(minutes=QUIET_RETURN_MINUTE)

    DetectorRunner(store).catch_up(opened_at + timedelta(minutes=5))

    assert _notified(store) == [
        (
            opened_at,
            "opened",
            "exception_category",
            "mapping failures: 6 of 6 transactions in 15 min (usual rate 1.000%); "
            "error_rate 100.00% (no earlier value to compare with); "
            "6 of 6 transactions failed in the last 60 min (100.00%), against the critical "
            "tier's error budget of 0.10% (alerting from 1.44%)",
        )
    ]
    [alert] = list_alerts(store, load_severity(), "open")
    assert alert["kinds"] == ["exception_category", "error_rate", "error_budget"]
    assert alert["categories"] == ["mapping"]


def test_one_minute_s_onsets_open_together_and_a_later_minute_s_escalate(store):
    runner = DetectorRunner(store)
    state = runner._series(FLOW, "erp", "Invoice")
    errors = Signal("error_rate", "error_rate", 8.0, math.nan, 1.0)
    mapping = Signal("exception_category", "category:mapping", 10.0, 0.01, 1.0, "mapping: 6 of 6")
    slow = Signal("latency", "latency_shift", 6.0, 210.0, 2600.0, "calls slow")
    timeouts = Signal("exception_category", "category:timeout", 5.0, 0.01, 0.3, "timeout: 2 of 6")
    quiet = Signal("volume", "volume", 5.5, 6.0, 0.0)
    for offset, onsets in enumerate([[errors, mapping], [slow], [timeouts, quiet]]):
        at = START + timedelta(minutes=offset)
        runner._apply(state, at, Minute(transactions=6.0), onsets, onsets)
    runner.book.flush()

    assert [row[1:] for row in _notified(store)] == [
        (
            "opened",
            "exception_category",
            "mapping: 6 of 6; error_rate 100.00% (no earlier value to compare with)",
        ),
        ("escalated", "latency", "calls slow"),
        # one escalation for the minute, led by its strongest news
        ("escalated", "volume", "volume from 6 to 0; timeout: 2 of 6"),
    ]
    alert = runner.book.open_alerts[(FLOW, "erp")]
    assert alert.kinds == ["exception_category", "error_rate", "latency", "volume"]
    assert alert.categories == ["mapping", "timeout"]


@pytest.mark.parametrize("baseline", [math.nan, None])
def test_what_changed_says_there_is_no_earlier_rate_rather_than_nan(baseline):
    # stored as NaN, listed by the API as null: "error rate nan% → 100.00%", or "error_rate"
    alert = {"signal": "error_rate", "kind": "error_rate", "baseline": baseline, "observed": 1.0}
    assert what_changed(alert) == "error rate 100.00% (no earlier value to compare with)"
    volume = {"signal": "volume", "baseline": baseline, "observed": 0.0}
    assert what_changed(volume) == "volume 0 tx/min (no earlier value to compare with)"


def test_a_finding_alert_says_its_count_is_its_worst_minutes():
    # beside a quote of "2 ... posted twice ... since the alert opened", "duplicate posting:
    # 1 transaction(s)" read as a contradiction
    alert = {"signal": "duplicate_posting", "baseline": 0.0, "observed": 1.0}
    assert what_changed(alert) == "duplicate posting: 1 transaction(s) in its worst minute"


def test_the_top_error_is_the_posting_span_s_not_the_caller_s_wrapper(store):
    # every alert quoted the receiving span's "posting failed", never what the ERP refused
    spans = []
    for i in range(3):
        key = {"integration.flow": FLOW, "integration.target": "erp", "business.key": f"I-{i}"}
        spans += [
            {
                "timestamp": START + timedelta(seconds=i),
                "status": "Error",
                "StatusMessage": "posting failed",
                "attributes": {**key, "integration.stage": "receive"},
            },
            {
                "timestamp": START + timedelta(seconds=i),
                "status": "Error",
                "StatusMessage": "ERP rejected document: field TaxCode invalid",
                "kind": "Client",
                "attributes": {**key, "integration.stage": "post"},
            },
        ]
    spans.append(
        {
            "timestamp": START + timedelta(minutes=1),
            "status": "Error",
            "StatusMessage": "posting failed",
            "attributes": {"integration.flow": FLOW, "integration.target": "erp"},
        }
    )
    store.insert_arrow("otel_traces", make_span_rows(spans))

    minutes = read_minutes(store, START, START + timedelta(minutes=2))

    assert minutes["top_error"].tolist() == [
        "ERP rejected document: field TaxCode invalid",
        "posting failed",  # a flow without stages: every span posts
    ]
