"""The error-budget burn: a flow judged against its tier's budget, not its own past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from typer.testing import CliRunner

from detectors.alert_actions import list_alerts
from detectors.alert_text import alert_summary
from detectors.budget_burn import BudgetBurn, burn_rate, slow_calls, spent_failures
from detectors.runner import BUDGET_LATCH, DetectorRunner
from detectors.severity import load_severity
from seamwatch.cli import app
from tests.detectors.helpers import without_error_budgets
from tests.rows import invoice_postings, make_span_rows

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
THRESHOLD = BUDGET_LATCH.threshold


def _first_alarm(burn: BudgetBurn, minutes: list[tuple[float, float]], budget: float | None):
    """The index of the first minute whose score reaches the runner's threshold, else None."""
    for index, (transactions, failed) in enumerate(minutes):
        if burn.step(transactions, failed, budget).score >= THRESHOLD:
            return index
    return None


def test_a_critical_flow_failing_from_its_first_call_alarms_at_its_third_failure():
    assert _first_alarm(BudgetBurn(), [(1, 1)] * 10, budget=0.001) == 2


def test_a_medium_flow_needs_ten_failures_in_a_row_and_a_low_one_seventeen():
    # the medium budget (2 %) alarms above 28.8 %; the low one (5 %) above half, not 72 %
    assert _first_alarm(BudgetBurn(), [(1, 1)] * 30, budget=0.02) == 9
    assert _first_alarm(BudgetBurn(), [(1, 1)] * 30, budget=0.05) == 16


def test_two_failures_among_a_night_s_three_transactions_are_not_judged():
    burn = BudgetBurn()
    for transactions, failed in [(1, 1), (1, 0), (1, 1)]:
        found = burn.step(transactions, failed, budget=0.001)
    assert found.score == 0.0
    assert (found.failures, found.transactions) == (2, 3)


def test_a_tier_without_a_budget_is_not_judged():
    assert _first_alarm(BudgetBurn(), [(5, 5)] * 60, budget=None) is None


def test_a_recovered_flow_scores_nothing_while_its_hour_still_holds_the_failures():
    burn = BudgetBurn()
    for _ in range(10):
        burn.step(2, 2, budget=0.001)
    assert burn.score(0.001).score > THRESHOLD
    for _ in range(5):
        found = burn.step(2, 0, budget=0.001)
    assert found.score == 0.0
    assert found.failures == 20  # still in the hour


def _last(minutes: list[tuple[float, float]], budget: float = 0.001):
    """What a flow's burn says after ``minutes`` of (transactions, failed), by default on a
    critical flow's budget."""
    burn = BudgetBurn()
    for transactions, failed in minutes:
        found = burn.step(transactions, failed, budget=budget)
    return found


def test_a_quiet_flow_failing_each_transaction_that_comes_is_still_burning():
    assert _last(([(1, 1)] + [(0, 0)] * 6) * 4).score > THRESHOLD


def test_a_flow_that_recovered_then_went_quiet_is_not_judged_again_on_its_hour():
    # an ERP slowdown's timeouts, then clean orders every few minutes, then five minutes
    # without any: the hour's failures opened the alarm again once it had settled
    found = _last([(1, 1)] * 10 + [(1, 0), (0, 0)] * 15 + [(0, 0)] * 5)
    assert found.failures == 10
    assert found.score == 0.0


def test_the_hour_forgets_minutes_older_than_sixty():
    found = _last([(1, 1)] * 5 + [(0, 0)] * 60)
    assert (found.failures, found.transactions, found.score) == (0, 0, 0.0)


def test_a_critical_flow_at_its_usual_one_percent_never_alarms():
    # a simulated fortnight of a busy critical flow failing 1 % of its transactions: under
    # the 1.44 % that 14.4 times the 0.1 % budget allows, so no minute may reach the threshold
    rng = np.random.default_rng(7)
    transactions = rng.poisson(3.0, 14 * 24 * 60)
    failed = rng.binomial(transactions, 0.01)
    burn = BudgetBurn()
    minutes = zip(transactions, failed, strict=True)
    scores = [burn.step(n, k, budget=0.001).score for n, k in minutes]
    assert max(scores) < THRESHOLD
    assert max(scores) > 0.0  # the hours with three failures were judged


def test_a_critical_flow_failing_ten_percent_alarms_within_the_hour():
    rng = np.random.default_rng(11)
    transactions = rng.poisson(3.0, 60)
    failed = rng.binomial(transactions, 0.10)
    found = _first_alarm(BudgetBurn(), list(zip(transactions, failed, strict=True)), budget=0.001)
    assert found is not None and found < 60


def test_rejected_redeliveries_do_not_spend_the_budget():
    categories = {"duplicate": ["INV-1", "INV-2"], "mapping": ["INV-2", "INV-3"]}
    # INV-1 was only rejected as a duplicate; INV-2 also failed on a mapping
    assert spent_failures(3.0, categories) == 2.0
    assert spent_failures(3.0, {"mapping": ["INV-3"]}) == 3.0
    assert spent_failures(1.0, {"duplicate": ["INV-1"]}) == 0.0


def _failing_new_pair(minutes: int, per_minute: int = 2) -> list[dict]:
    """An hour of clean invoice postings, then a health signal sent to the ERP (a flow and
    target never seen together) failing every call on missing master data."""
    spans = []
    for minute in range(60):
        spans += invoice_postings(START, minute, 3, 0)
    for minute in range(60, 60 + minutes):
        for i in range(per_minute):
            spans.append(
                {
                    "timestamp": START + timedelta(minutes=minute, seconds=i * 60 // per_minute),
                    "status": "Error",
                    "StatusMessage": "customer C-77 not found",
                    "attributes": {
                        "integration.flow": "support.health-signal",
                        "integration.target": "erp",
                        "integration.stage": "post",
                        "integration.exception.category": "master_data_missing",
                        "business.key": f"HS-{minute}-{i}",
                    },
                }
            )
    return spans


def test_a_flow_and_target_failing_from_the_first_call_open_a_budget_alert(store):
    # fourteen failures in 98 s of a new low-tier pair raised nothing: the detectors that
    # learn a flow's usual behaviour took its usual failure rate from the prior
    store.insert_arrow("otel_traces", make_span_rows(_failing_new_pair(minutes=12)))

    DetectorRunner(store).catch_up(START + timedelta(minutes=72))

    [alert] = list_alerts(store, load_severity(), "open")
    assert (alert["flow"], alert["target"]) == ("support.health-signal", "erp")
    assert alert["tier"] == "low"
    assert alert["kind"] == "error_budget"
    # two failures a minute from 10:00: eighteen of eighteen by 10:08, beyond chance at the
    # half that the low tier's budget (5 %, times 14.4, at most 50 %) allows
    assert alert["opened_at"] == "2025-03-03T10:08:00.000Z"
    assert alert_summary(alert).startswith(
        "failed transactions 100.00% against the tier's error budget of 5.00%"
    )
    # the failures it opened on are the alert's: all 24 of the 12 minutes, not the 8 since
    assert (alert["failed"], alert["affected"]) == (24, 24)


def test_without_a_budget_the_same_failures_raise_nothing(store):
    store.insert_arrow("otel_traces", make_span_rows(_failing_new_pair(minutes=12)))

    DetectorRunner(store, severity=without_error_budgets()).catch_up(START + timedelta(minutes=72))

    assert list_alerts(store, load_severity(), "open") == []


def test_a_restart_during_the_burn_keeps_one_alert_counting_each_failure_once(store):
    store.insert_arrow("otel_traces", make_span_rows(_failing_new_pair(minutes=30)))

    DetectorRunner(store).catch_up(START + timedelta(minutes=75))
    DetectorRunner(store).catch_up(START + timedelta(minutes=90))

    [alert] = list_alerts(store, load_severity(), "all")
    assert alert["state"] == "open"
    assert alert["kinds"] == ["error_budget"]
    assert alert["failed"] == 2 * 30


def test_the_detectors_refuse_to_start_on_a_broken_severity_file(tmp_path, monkeypatch):
    broken = tmp_path / "severity.yaml"
    broken.write_text("tiers:\n  critical:\n    weight: heavy\n")
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(broken))

    result = CliRunner().invoke(app, ["detectors", "--once", "--data-dir", str(tmp_path / "d")])

    assert result.exit_code == 2, result.output
    assert "Error: Invalid severity file:" in result.output
    assert "line 3, field tiers.critical.weight" in result.output
    assert "Traceback" not in result.output


def test_a_budget_of_zero_alarms_at_the_third_failure():
    assert _first_alarm(BudgetBurn(), [(10, 1)] * 5, budget=0.0) == 2


def test_posting_calls_slower_than_the_objective_are_counted_slow():
    assert slow_calls([1999.0, 2000.0, 2000.5, 8000.0], 2000.0) == 2
    assert slow_calls([8000.0], None) == 0


def _postings_taking(minutes: range, duration_ms: int, key: str) -> list[dict]:
    """Two invoice postings a minute, seen from the caller, that take ``duration_ms`` each and
    succeed."""
    spans = []
    for minute in minutes:
        for i, span in enumerate(invoice_postings(START, minute, 2, 0)):
            span["duration_ms"] = duration_ms
            span["kind"] = "Client"  # the caller's span of the posting call
            span["attributes"]["business.key"] = f"{key}-{minute}-{i}"
            spans.append(span)
    return spans


def test_an_invoice_flow_slow_from_its_first_call_opens_a_latency_objective_alert(store):
    # every posting took 3 s against the critical objective of 2 s: the flow's own past
    # holds no faster call, so only the objective tells it is slow
    store.insert_arrow("otel_traces", make_span_rows(_postings_taking(range(20), 3000, "INV")))

    DetectorRunner(store).catch_up(START + timedelta(minutes=20))

    [alert] = list_alerts(store, load_severity(), "open")
    assert alert["kind"] == "latency_objective"
    # two slow calls a minute: four of four score 7.4 against the 1.44 % allowed, in minute 1
    assert alert["opened_at"] == "2025-03-03T09:01:00.000Z"
    assert alert["affected"] == 2 * 19  # every transaction of the alert's minutes was slowed
    assert alert_summary(alert) == (
        "posting calls slower than the tier's latency objective 100.00% against the tier's "
        "error budget of 0.10%"
    )


def test_calls_within_the_objective_raise_nothing(store):
    store.insert_arrow("otel_traces", make_span_rows(_postings_taking(range(20), 1900, "INV")))

    DetectorRunner(store).catch_up(START + timedelta(minutes=20))

    assert list_alerts(store, load_severity(), "all") == []


def test_a_budget_of_zero_settles_once_the_failures_stop():
    # no failure is allowed, so no minute could fail "under" the budget: the alarm stayed
    # open for as long as the hour held the failures
    found = _last([(2, 2)] * 5 + [(2, 0)] * 5, budget=0.0)
    assert found.failures == 10
    assert found.score == 0.0


def test_a_budget_of_one_lets_every_transaction_fail():
    assert _first_alarm(BudgetBurn(), [(5, 5)] * 60, budget=1.0) is None
    assert burn_rate(0.6) == 0.6  # a budget above the half is judged at itself


def test_a_category_burst_on_a_flow_without_history_names_no_usual_rate(store):
    # the escalation said "usual rate 50.000%": the prior it was scored at, not the flow's
    store.insert_arrow("otel_traces", make_span_rows(_failing_new_pair(12, per_minute=4)))

    DetectorRunner(store).catch_up(START + timedelta(minutes=72))

    events = store.table("alert_events")
    details = [row[0] for row in store.query_rows(f"SELECT detail FROM {events} FINAL")]
    assert any(
        "master_data_missing failures: " in detail
        and "(the flow has no history to compare with)" in detail
        for detail in details
    ), details
    assert not any("usual rate 50" in detail for detail in details)
