"""A restarted demo continues after the stored history instead of replaying the week."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from seamwatch.settings import Settings
from seamwatch.stack import (
    DemoOptions,
    DemoResume,
    _describe_timedelta,
    _print_banner,
    plan_demo_resume,
)
from tests.rows import make_span_rows


def test_empty_store_starts_from_scratch(store, tmp_path: Path):
    resume = plan_demo_resume(store, Settings(data_dir=tmp_path))
    assert (resume.history_end, resume.run_number) == (None, 0)


def test_each_restart_continues_after_history_with_a_new_run_number(store, tmp_path: Path):
    latest = datetime(2026, 12, 1, 10, 30, 0, 123456, tzinfo=UTC)
    store.insert_arrow(
        "otel_traces",
        make_span_rows(
            [
                {"service": "erp", "timestamp": latest - timedelta(hours=1)},
                {"service": "crm", "timestamp": latest},
                {"service": "not-simulated", "timestamp": latest + timedelta(days=1)},
            ]
        ),
    )
    settings = Settings(data_dir=tmp_path)

    first = plan_demo_resume(store, settings)
    second = plan_demo_resume(store, settings)

    assert first.history_end == latest
    assert (first.run_number, second.run_number) == (1, 2)


class _Collector:
    endpoint = "http://127.0.0.1:4318"
    grpc_endpoint = None


def test_the_banner_of_a_restarted_demo_says_it_continues(store, tmp_path: Path, capsys):
    latest = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    store.insert_arrow("otel_traces", make_span_rows([{"service": "crm", "timestamp": latest}]))
    settings = Settings(data_dir=tmp_path)
    demo = DemoOptions(seed=7, backfill=timedelta(days=7), labels_path=tmp_path / "labels.jsonl")

    _print_banner(settings, _Collector(), demo, plan_demo_resume(store, settings), False)
    _print_banner(settings, _Collector(), demo, DemoResume(None, 0), False)

    restarted, fresh = capsys.readouterr().out.split("Seamwatch is running.")[1:]
    assert "continuing after the stored history (to 2026-12-01 10:30 UTC)" in restarted
    assert "backfilling" not in restarted
    assert "backfilling 7 days of history" in fresh


def test_a_quick_backfill_reports_the_spans_it_generated(caplog):
    # a backfill done before its first report once logged "0 spans sent": sending lags behind
    from sample_data.simulator import SimProgress
    from seamwatch.stack import _ProgressLog

    now = datetime.now(UTC)
    progress = SimProgress(now, now - timedelta(hours=2), None, 1880, 0, 0, 421, 0, 1.2)
    with caplog.at_level("INFO", logger="seamwatch.stack"):
        _ProgressLog()(progress)
    assert caplog.messages == [
        "Backfill done: 1880 spans generated; the simulator now runs in real time"
    ]


def test_a_restart_with_nothing_to_backfill_says_so(caplog):
    # it logged "Backfill done: 0 spans generated" when the store already held the history
    from sample_data.simulator import SimProgress
    from seamwatch.stack import _ProgressLog

    now = datetime.now(UTC)
    progress = SimProgress(now, now, None, 0, 0, 0, 0, 0, 0.1)
    with caplog.at_level("INFO", logger="seamwatch.stack"):
        _ProgressLog()(progress)
    assert caplog.messages == ["Nothing to backfill; the simulator now runs in real time"]


def test_the_run_number_follows_the_stored_history_without_the_data_directory(store, tmp_path):
    # the runs were counted in the data directory alone: a store on a server, kept while the
    # directory was new, gave a restarted demo the run number, and the ids, of an earlier run
    latest = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    keys = [("SO-R4-100007", latest - timedelta(minutes=5)), ("INV-R3-2000001", latest)]
    store.insert_arrow(
        "otel_traces",
        make_span_rows(
            [
                {"service": "erp", "timestamp": at, "attributes": {"business.key": key}}
                for key, at in keys
            ]
        ),
    )
    resume = plan_demo_resume(store, Settings(data_dir=tmp_path / "new"))
    assert (resume.history_end, resume.run_number) == (latest, 5)


def test_the_backfill_is_delivered_once_the_present_is_reached_and_every_span_answered(caplog):
    from sample_data.simulator import SimProgress
    from seamwatch.stack import _BackfillGate

    now = datetime.now(UTC)
    start = now - timedelta(days=7)
    gate = _BackfillGate()
    with caplog.at_level("INFO", logger="seamwatch.stack"):
        gate(SimProgress(now - timedelta(days=3), start, None, 300_000, 290_000, 0, 1, 0, 60.0))
        assert not gate.delivered.is_set()  # four days of history still to generate
        gate(SimProgress(now, start, None, 700_000, 650_000, 0, 1, 0, 120.0))
        assert not gate.delivered.is_set()  # the present reached, 50,000 spans not answered
        gate(SimProgress(now, start, None, 700_400, 699_000, 1_000, 1, 0, 125.0))
        assert gate.delivered.is_set()  # those owed at the present answered (1,000 refused)
    assert caplog.messages == ["The backfill is delivered: the detectors catch up on it now"]


def test_a_backfill_never_fully_answered_still_lets_the_detectors_start(monkeypatch):
    from sample_data.simulator import SimProgress
    from seamwatch.stack import _BackfillGate

    now = datetime.now(UTC)
    gate = _BackfillGate()
    gate(SimProgress(now, now - timedelta(days=1), None, 100, 10, 0, 1, 0, 5.0))
    assert not gate.delivered.is_set()
    monkeypatch.setattr(_BackfillGate, "DELIVERY_WAIT", timedelta(0))
    gate(SimProgress(now, now - timedelta(days=1), None, 100, 10, 0, 1, 0, 6.0))
    assert gate.delivered.is_set()


@pytest.mark.parametrize(
    ("span", "said"),
    [
        (timedelta(days=7), "7 days"),
        # the banner said "backfilling 1 days of history"
        (timedelta(days=1), "1 day"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=90), "1.5 hours"),
    ],
)
def test_the_backfill_is_said_in_words(span, said):
    assert _describe_timedelta(span) == said
