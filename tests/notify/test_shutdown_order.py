"""A stopping command stops its notifier while the store is still open."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detectors.runner import DetectorRunner, RunReport
from notify.records import DELIVERIES_TABLE
from seamwatch import runtime
from seamwatch.cli import app
from tests.detectors.test_alert_actions import record_alert
from tests.notify.receiver import Answer, RecordingServer

REPOSITORY = Path(__file__).resolve().parents[2]


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


def test_a_delivery_in_flight_when_running_detectors_get_sigint_is_recorded(tmp_path):
    # the same, in the process a user stops: the outcome went to a closed store
    data_dir = tmp_path / "data"
    setup = (
        "import sys\n"
        "from datetime import UTC, datetime, timedelta\n"
        "from seamwatch.settings import load_settings\n"
        "from storage import open_store\n"
        "from tests.detectors.test_alert_actions import record_alert\n"
        "from tests.rows import make_span_rows\n"
        "store = open_store(load_settings(data_dir=sys.argv[1]))\n"
        "now = datetime.now(UTC).replace(microsecond=0)\n"
        "flow = {'integration.flow': 'billing.invoice-post'}\n"
        "span = {'timestamp': now - timedelta(minutes=5), 'attributes': flow}\n"
        "store.insert_arrow('otel_traces', make_span_rows([span]))\n"
        "record_alert(store, 'billing.invoice-post', now - timedelta(minutes=2))\n"
        "store.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", setup, str(data_dir)], cwd=REPOSITORY, timeout=120, check=True
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SEAMWATCH_")}
    with RecordingServer([Answer(delay_seconds=3.0)]) as server:
        notify_file = tmp_path / "notify.yaml"
        notify_file.write_text(
            f"destinations:\n  - {{name: ops, kind: webhook, url: '{server.url}/hook'}}\n"
        )
        detectors = subprocess.Popen(
            [sys.executable, "-m", "seamwatch", "detectors", "--data-dir", str(data_dir)]
            + ["--notify-file", str(notify_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        try:
            server.wait_for(1, timeout_seconds=90)  # the opening the start resumes, in flight
        finally:
            detectors.send_signal(signal.SIGINT)
            _, logged = detectors.communicate(timeout=60)
    listed = subprocess.run(
        [sys.executable, "-m", "seamwatch", "notify", "log", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=True,
    )

    assert detectors.returncode == 0, logged
    [delivery] = json.loads(listed.stdout)
    assert (delivery["event"], delivery["outcome"], delivery["http_status"]) == (
        "opened",
        "sent",
        200,
    )
    assert "Could not record" not in logged


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
