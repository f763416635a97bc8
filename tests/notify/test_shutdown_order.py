"""A stopping command stops its notifier while the store is still open."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from detectors.runner import DetectorRunner, RunReport
from notify.records import DELIVERIES_TABLE
from seamwatch import runtime
from seamwatch.cli import app
from tests.detectors.test_alert_actions import record_alert
from tests.notify.receiver import Answer, RecordingServer


@pytest.fixture
def signal_handlers():
    """The command installs its own SIGINT and SIGTERM handlers; the suite's come back."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_a_delivery_in_flight_when_the_detectors_stop_is_recorded(
    store, chdb_data_dir, tmp_path, monkeypatch, caplog, signal_handlers
):
    # the notifier stopped after the store had closed: the message went out, but its
    # outcome was lost with "The embedded store was closed." and it stayed queued
    # whole seconds: the delivery log keeps milliseconds
    opened_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)

    def catch_up(runner, until, stop=None):
        record_alert(runner.store, "billing.invoice-post", opened_at)  # queues its opening
        return RunReport(evaluated_until=until)

    monkeypatch.setattr(DetectorRunner, "catch_up", catch_up)
    monkeypatch.setenv("SEAMWATCH_DATABASE", store.database)
    with RecordingServer([Answer(delay_seconds=2.0)]) as server:
        notify_file = tmp_path / "notify.yaml"
        notify_file.write_text(
            f"destinations:\n  - {{name: ops, kind: webhook, url: '{server.url}/hook'}}\n"
        )
        with caplog.at_level(logging.WARNING):
            result = CliRunner().invoke(
                app,
                ["detectors", "--once", "--data-dir", str(chdb_data_dir)]
                + ["--notify-file", str(notify_file)],
            )
        received = server.wait_for(1)

    assert result.exit_code == 0, result.output
    assert received[0].json["event"] == "opened"
    outcomes = store.query_rows(
        f"SELECT event, destination, outcome, attempts, http_status "
        f"FROM {store.table(DELIVERIES_TABLE)} ORDER BY at, outcome DESC"
    )
    assert outcomes == [("opened", "ops", "queued", 0, 0), ("opened", "ops", "sent", 1, 200)]
    assert "Could not record" not in caplog.text


def test_callbacks_run_before_the_store_closes_last_registered_first(caplog):
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("boom")

    runtime.before_store_closes(lambda: ran.append("first"))
    forget = runtime.before_store_closes(lambda: ran.append("forgotten"))
    runtime.before_store_closes(broken)
    forget()

    runtime.store_closing()
    runtime.store_closing()  # each runs once

    assert ran == ["broken", "first"]
    assert "Stopping before the store closes failed" in caplog.text
