"""SEAMWATCH_EVALUATION_DELAY_SECONDS: how long after a minute ends the detectors judge it."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from detectors.alerts_cli import _evaluate_until_stopped
from seamwatch.cli import app
from seamwatch.settings import Settings
from storage import TRACES_TABLE
from tests.rows import invoice_postings, make_span_rows

MINUTE = timedelta(minutes=1)


def test_the_evaluation_delay_is_a_setting(monkeypatch):
    assert Settings().evaluation_delay == timedelta(seconds=30)
    monkeypatch.setenv("SEAMWATCH_EVALUATION_DELAY_SECONDS", "600")
    assert Settings().evaluation_delay == timedelta(minutes=10)


@pytest.mark.parametrize("value", ["-1", "3601"])
@pytest.mark.parametrize("command", [["detectors", "--once"], ["up"], ["collector"]])
def test_a_delay_out_of_range_is_one_clear_error(cli, monkeypatch, command, value):
    monkeypatch.setenv("SEAMWATCH_EVALUATION_DELAY_SECONDS", value)
    result = cli.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: Invalid settings:",
        f"  evaluation_delay_seconds (SEAMWATCH_EVALUATION_DELAY_SECONDS) = '{value}': must be "
        "from 0 to 3600 seconds: how long after a minute ends the detectors judge it; set it a "
        "little longer than your senders take to export their spans (default 30)",
    ]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_delay_that_is_no_number_is_called_so(cli, monkeypatch, value):
    # a NaN was called out of range, as if it were a number
    monkeypatch.setenv("SEAMWATCH_EVALUATION_DELAY_SECONDS", value)
    result = cli.invoke(app, ["detectors", "--once"])
    assert result.exit_code == 2, result.output
    problem = "a number, not NaN" if value == "nan" else "a finite number"
    assert (
        f"evaluation_delay_seconds (SEAMWATCH_EVALUATION_DELAY_SECONDS) = '{value}': "
        f"Input should be {problem}"
    ) in result.stderr


def test_once_judges_the_minutes_the_delay_has_passed(cli, store, chdb_data_dir, monkeypatch):
    # it judged every minute up to 30 s ago, whatever the detectors' delay was meant to be
    first = datetime.now(UTC).replace(second=0, microsecond=0) - 20 * MINUTE
    spans = [span for minute in range(21) for span in invoice_postings(first, minute, 6, 0)]
    store.insert_arrow(TRACES_TABLE, make_span_rows(spans))
    monkeypatch.setenv("SEAMWATCH_EVALUATION_DELAY_SECONDS", "600")

    before = datetime.now(UTC)
    result = cli.invoke(app, ["detectors", "--once", "--data-dir", str(chdb_data_dir)])
    after = datetime.now(UTC)

    assert result.exit_code == 0, result.output
    evaluated = int(re.search(r"Evaluated (\d+) minute", result.stdout).group(1))
    # the minutes that ended at least ten minutes before the run
    judged_by = [(moment - timedelta(minutes=10) - first) // MINUTE for moment in (before, after)]
    assert judged_by[0] <= evaluated <= judged_by[1]


def test_the_running_detectors_say_their_delay(store, capsys):
    stopped = threading.Event()
    stopped.set()
    _evaluate_until_stopped(store, None, stopped, timedelta(seconds=90))
    assert capsys.readouterr().out.splitlines()[0] == (
        "Detectors running; each minute is evaluated 90 s after it ends "
        "(SEAMWATCH_EVALUATION_DELAY_SECONDS). Press Ctrl-C to stop."
    )
