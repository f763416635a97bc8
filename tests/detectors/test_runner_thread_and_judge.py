"""The runner thread beside the receiver, the lineage checks, and the simulator's judgement."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from collector.service import Collector
from detectors.runner import DetectorRunner, RunnerThread, seconds_to_next_evaluation
from detectors.severity import load_severity
from detectors.simulator_judge import (
    IncidentVerdict,
    Judgement,
    _verdict,
    format_judgement,
    read_labels,
    simulate_and_judge,
)
from sample_data.incidents import PlannedIncident
from seamwatch.settings import Settings
from tests.rows import make_span_rows

FLOW = "billing.invoice-post"


def _posting(at: datetime, key: str, failed: bool = False, trace: str | None = None) -> dict:
    span = {
        "timestamp": at,
        "service": "erp",
        "kind": "Server",
        "status": "Error" if failed else "Unset",
        "StatusMessage": "unmapped tax code" if failed else "",
        "duration_ms": 200.0,
        "attributes": {
            "integration.flow": FLOW,
            "integration.target": "erp",
            "integration.stage": "post",
            "business.object": "Invoice",
            "business.key": key,
            "business.amount": "100.50",
            "correlation.id": f"corr-{key}",
        },
    }
    if failed:
        span["attributes"]["integration.exception.category"] = "mapping"
    if trace:
        span["TraceId"] = trace
    return span


def _clean_then_burst(end: datetime, clean: int = 60, burst: int = 5) -> list[dict]:
    """An hour of clean postings ending ``burst`` minutes before ``end``, then failures."""
    spans = []
    first = end - timedelta(minutes=clean + burst)
    for minute in range(clean + burst):
        for i in range(6):
            failed = minute >= clean and i < 3
            at = first + timedelta(minutes=minute, seconds=i)
            spans.append(_posting(at, f"INV-{minute}-{i}", failed))
    return spans


def test_a_long_catch_up_logs_how_far_it_is(store, monkeypatch, caplog):
    # `seamwatch detectors` said nothing while it caught up on a week
    monkeypatch.setattr("detectors.runner.CATCH_UP_PROGRESS_SECONDS", 0.0)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store.insert_arrow("otel_traces", make_span_rows(_clean_then_burst(now)))
    runner = DetectorRunner(store, chunk=timedelta(minutes=20))

    with caplog.at_level("INFO", logger="detectors.runner"):
        report = runner.catch_up(now)

    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Catching")]
    assert report.minutes == 65
    assert len(progress) == 3  # after each 20 minutes but the last chunk
    assert re.fullmatch(
        r"Catching up: evaluated to .* UTC, 20 of 65 minute\(s\) \(30%\)", progress[0]
    )
    assert any("learns each flow's history before" in r.getMessage() for r in caplog.records)


def test_runner_thread_evaluates_beside_the_receiver_and_stops(store, tmp_path):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store.insert_arrow("otel_traces", make_span_rows(_clean_then_burst(now - timedelta(minutes=2))))
    settings = Settings(
        data_dir=tmp_path, otlp_http_host="127.0.0.1", otlp_http_port=0, otlp_grpc_port=-1
    )
    collector = Collector(store, settings)
    thread = RunnerThread(store, delay=timedelta(minutes=1), interval_seconds=0.1)
    collector.start()
    try:
        thread.start()
        deadline = time.monotonic() + 60
        alerts: list[tuple] = []
        while time.monotonic() < deadline and not alerts:
            time.sleep(0.2)
            alerts = store.query_rows(
                f"SELECT flow, kind FROM {store.table('alerts')} FINAL WHERE state = 'open'"
            )
        began = time.monotonic()
        thread.stop(timeout_seconds=10)
        stopped_in = time.monotonic() - began
    finally:
        thread.stop(timeout_seconds=10)
        collector.stop()
    assert not thread._thread.is_alive()
    assert stopped_in < 10
    assert (FLOW, "error_rate") in alerts or (FLOW, "exception_category") in alerts
    cursor = store.query_rows(
        f"SELECT max(evaluated_until) FROM {store.table('detector_state')} FINAL"
    )[0][0]
    assert cursor is not None


@pytest.mark.parametrize(
    ("clock", "wait"),
    [
        ("10:04:10", 20.0),  # the minute to 10:04 is due at 10:04:30
        ("10:04:29.900", 0.1),
        ("10:04:30", 60.0),  # just judged: the next one ends at 10:05
        ("10:04:31", 59.0),
        ("10:05:00", 30.0),
    ],
)
def test_live_evaluation_waits_for_the_minute_to_be_thirty_seconds_past_its_end(clock, wait):
    now = datetime.fromisoformat(f"2025-03-03T{clock}+00:00")
    assert seconds_to_next_evaluation(now, timedelta(seconds=30)) == pytest.approx(wait)


def test_a_second_posting_of_one_key_opens_a_duplicate_alert_within_its_minute(store):
    start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    spans = [_posting(start + timedelta(minutes=m, seconds=5), f"INV-{m}") for m in range(0, 30)]
    # INV-20 is posted again, in a trace of its own, at 09:31:10
    spans.append(_posting(start + timedelta(minutes=31, seconds=10), "INV-20", trace="f" * 32))
    store.insert_arrow("otel_traces", make_span_rows(spans))
    DetectorRunner(store).catch_up(start + timedelta(minutes=40))
    rows = store.query_rows(
        f"SELECT kind, opened_at, top_error FROM {store.table('alerts')} FINAL "
        "WHERE kind = 'duplicate_posting'"
    )
    assert len(rows) == 1
    kind, opened_at, text = rows[0]
    assert opened_at.replace(tzinfo=UTC) == start + timedelta(minutes=31)
    assert "INV-20" in text


MONDAY_MORNING = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


def _planned(kind: str, flow: str, after: int, minutes: int, intensity: float) -> PlannedIncident:
    """An incident ``after`` minutes into a run from ``MONDAY_MORNING``, lasting ``minutes``."""
    start = MONDAY_MORNING + timedelta(minutes=after)
    return PlannedIncident(kind, flow, start, start + timedelta(minutes=minutes), intensity)


def test_judgement_of_a_short_simulated_run_with_planned_incidents(tmp_path):
    start = MONDAY_MORNING
    plan = [
        _planned("duplicate_postings", FLOW, 180, 30, 0.4),
        _planned("dropped_events", "payments.payment-apply", 190, 40, 0.5),
    ]
    judgement = simulate_and_judge(
        load_severity(None), 4 / 24, 7, start=start, work_dir=tmp_path, incident_plan=plan
    )
    kinds = judgement.by_kind()
    assert set(kinds) == {"duplicate_postings", "dropped_events"}
    for row in kinds.values():
        assert row["injected"] == 1
        assert row["caught_in_time"] == 1
    dropped = next(v for v in judgement.incidents if v.kind == "dropped_events")
    # caught once its first event is overdue: the deadline counts the 30-minute objective
    assert dropped.deadline_minutes > 30
    # labels start at the first affected transaction, which the judge finds in the lineage
    for verdict in judgement.incidents:
        assert 1 <= verdict.affected_within_deadline <= verdict.affected_keys
        # every time in the verdict is written like the labels' (the JSON once mixed "+00:00")
        for moment in (verdict.start, verdict.caught_at, verdict.first_evidence):
            assert moment is not None and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]{8}\.\d{3}Z", moment)
    # four hours include the detectors' warm-up; at most one alert outside the incidents
    assert sum(judgement.false_alerts.values()) <= 1
    # delays keep two decimals, so 2.2 and 3.36 read alike and 4.96 never reads as 5
    text = format_judgement(judgement)
    assert len(re.findall(r"caught after \d+\.\d\d min", text)) == 2
    assert not re.search(r"\d+\.\d min|\d+\.\d{3,} min", text)
    # an in-time verdict names its deadline: a dropped event caught after 35 min is in time
    assert f"(in time, deadline {dropped.deadline_minutes:g})" in text
    assert "(in time, deadline 5)" in text


def test_a_runner_restarted_every_hour_raises_the_alerts_of_the_run_judged(tmp_path):
    start = MONDAY_MORNING
    plan = [_planned("missing_master_data", FLOW, 180, 40, 0.3)]
    judgement = simulate_and_judge(
        load_severity(None),
        5 / 24,
        7,
        start=start,
        work_dir=tmp_path,
        incident_plan=plan,
        restart_every=timedelta(hours=1),
    )
    restarted = judgement.restarted
    assert restarted is not None and restarted.restarts == 4
    assert restarted.alerts == judgement.alerts_opened >= 1
    assert (restarted.same, restarted.only_uninterrupted, restarted.only_restarted) == (
        restarted.alerts,
        [],
        [],
    )
    assert (
        f"Restarted every 1 h (4 restarts): {restarted.alerts} of {restarted.alerts} alerts the "
        "same as without a restart." in format_judgement(judgement)
    )
    assert judgement.as_dict()["restarted"]["alerts_the_same"] == restarted.alerts


def test_the_judge_reads_the_labels_of_a_run_that_had_no_incident(tmp_path):
    # the labels file of such a run was left empty; it now says no incident happened
    start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # inside a run's quiet first hours
    judgement = simulate_and_judge(load_severity(None), 0.01, 7, start=start, work_dir=tmp_path)
    [line] = (tmp_path / "labels.jsonl").read_text().splitlines()
    assert json.loads(line)["no_incident"] is True
    assert read_labels(tmp_path / "labels.jsonl") == []
    assert judgement.incidents == []
    assert "No incident was injected" in format_judgement(judgement)


def test_a_run_without_incidents_says_there_was_nothing_to_judge():
    # a quarter hour's run printed "Objectives met." although nothing had been judged
    judgement = Judgement(simulated_days=0.001)
    text = format_judgement(judgement)
    assert "Objectives" not in text
    assert text.endswith(
        "No incident was injected in 0.001 simulated day(s); nothing to judge: run at least "
        "1 day (--days 1), which injects 2 to 4 incidents after the run's first 3 hours.\n"
    )
    assert judgement.as_dict()["passed"] is None


def test_incidents_are_listed_in_the_order_they_started():
    # labels are written as incidents end, so a 07:53 duplicate was listed before a 07:33 burst
    def verdict(kind: str, start: str) -> IncidentVerdict:
        return IncidentVerdict(
            kind, "billing.invoice-post", "erp", "critical", start, start, None, None
        )

    judgement = Judgement(
        simulated_days=1.0,
        incidents=[
            verdict("duplicate_postings", "2025-03-09T07:53:00.000Z"),
            verdict("mapping_error_burst", "2025-03-09T07:33:00.000Z"),
        ],
    )
    listed = [
        line.split()[1] for line in format_judgement(judgement).splitlines() if "missed" in line
    ]
    assert listed == ["mapping_error_burst", "duplicate_postings"]


def test_a_late_incident_shows_its_evidence_and_how_often_clean_traffic_showed_as_much():
    def verdict(kind: str, delay: float, lookalikes: int, clean_days: float) -> IncidentVerdict:
        found = IncidentVerdict(
            kind,
            "billing.invoice-post",
            "erp",
            "critical",
            "2025-03-09T07:33:00.000Z",
            "",
            "x",
            delay,
        )
        found.evidence, found.lookalikes, found.clean_days = (
            f"1 {kind} thing",
            lookalikes,
            clean_days,
        )
        return found

    judgement = Judgement(
        simulated_days=3.0,
        incidents=[
            verdict("mapping_error_burst", 11.0, 4, 2.48),  # late, as ordinary as 4 in 2.5 days
            verdict("erp_latency_drift", 14.0, 0, 0.0),  # late, no clean traffic to compare with
            verdict("missing_master_data", 2.0, 9, 2.5),  # in time
        ],
    )
    text = format_judgement(judgement)

    assert (
        "showed 1 mapping_error_burst thing; the flow's clean traffic showed as much 4 time(s) in "
        "2.5 day(s)" in text
    )
    assert "showed 1 erp_latency_drift thing; no clean traffic of the flow to compare with" in text
    assert "missing_master_data thing" not in text  # in time: nothing to explain
    assert judgement.as_dict()["verdicts"][0]["lookalikes"] == 4


def _drift_label(kind: str = "erp_latency_drift") -> dict:
    return {
        "kind": kind,
        "flow": "billing.invoice-post",
        "target": "erp",
        "fault_start": "2025-03-04T13:30:00.000Z",
        "start": "2025-03-04T13:38:30.000Z",
        "end": "2025-03-04T14:30:00.000Z",
        "affected_keys": [],
    }


def _opened_at(at: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "at": [pd.Timestamp(at, tz=UTC)],
            "flow": ["billing.invoice-post"],
            "target": ["erp"],
            "event": ["opened"],
        }
    )


def test_a_drift_alerted_before_its_label_starts_is_caught_with_no_delay():
    # a busy flow's pooled test saw a drift at 13:36, before its postings left the normal
    # spread (13:38): the judge credited only a timeout escalation 24 minutes later
    severity = load_severity(None)
    verdict = _verdict(None, _drift_label(), _opened_at("2025-03-04 13:36"), severity)
    assert verdict.caught_at is not None
    assert verdict.delay_minutes == 0.0
    # a fault that does nothing until a transaction needs it is credited from its label's start
    burst = _verdict(
        None, _drift_label("mapping_error_burst"), _opened_at("2025-03-04 13:36"), severity
    )
    assert burst.caught_at is None


def test_critical_incidents_are_told_apart_by_the_evidence_of_their_first_minutes():
    # a late drift with one slow posting in its first minutes is bound by what the spans
    # carried; a late burst with three failures is the detectors' own shortfall
    def verdict(tier: str, delay: float | None, affected: int) -> IncidentVerdict:
        start = "2025-03-04T10:00:00.000Z"
        return IncidentVerdict(
            "mapping_error_burst",
            "billing.invoice-post",
            "erp",
            tier,
            start,
            start,
            None if delay is None else start,
            delay,
            affected_within_deadline=affected,
        )

    judgement = Judgement(
        simulated_days=7.0,
        incidents=[
            verdict("critical", 17.9, 1),
            verdict("critical", None, 0),
            verdict("critical", 0.5, 1),
            verdict("critical", 1.2, 4),
            verdict("critical", 6.0, 3),
            verdict("high", 9.0, 2),
        ],
    )
    assert judgement.as_dict()["critical_by_evidence"] == {
        "at_most_one_affected": {"incidents": 3, "caught_in_time": 1},
        "two_or_more_affected": {"incidents": 2, "caught_in_time": 1},
    }
    assert format_judgement(judgement).splitlines()[1] == (
        "Of the critical ones, 1/2 in time with two or more affected transactions in their "
        "first 5 min, 1/3 with one or none (a single failure or slow posting is also an "
        "ordinary day's)."
    )
