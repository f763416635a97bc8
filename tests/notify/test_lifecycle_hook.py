"""Alert books in this process notify through the lifecycle hook; outcomes land in the store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from detectors import lifecycle
from detectors.lifecycle import AlertBook, Signal
from detectors.runner import DetectorRunner
from detectors.severity import load_severity
from notify.outbox import Notifier
from notify.records import DELIVERIES_TABLE, StoreRecorder
from seamwatch.cli import app
from tests.lineage.spans import posted, published
from tests.notify.helpers import DASHBOARD, FAST, route
from tests.notify.receiver import Answer, RecordingServer
from tests.rows import QUIET_RETURN_MINUTE, failing_after_a_quiet_hour, make_span_rows

MINUTE = timedelta(minutes=1)
SIGNAL = Signal("error_rate", "error_rate", 12.0, 0.001, 0.2, "error_rate from 0.10% to 20.00%")


def _notifier(server: RecordingServer, recorder: StoreRecorder) -> Notifier:
    routes = [route("webhook", server.url + "/hook", name="ops")]
    return Notifier(routes, load_severity(), DASHBOARD, recorder, policy=FAST)


def _outcomes(store) -> list[tuple]:
    """The final outcomes in the delivery log (each went through ``queued`` first)."""
    return store.query_rows(
        f"SELECT event, destination, kind, outcome, attempts, http_status "
        f"FROM {store.table(DELIVERIES_TABLE)} WHERE outcome != 'queued' ORDER BY at, event"
    )


def test_opened_and_resolved_alerts_are_delivered_and_logged(store):
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    with RecordingServer([Answer(503)]) as server:
        notifier = _notifier(server, StoreRecorder())
        notifier.start()
        lifecycle.add_listener(notifier.on_flush)
        try:
            book = AlertBook(store)
            alert = book.open("billing.invoice-post", "erp", "Invoice", now, SIGNAL)
            book.observe(alert, now, SIGNAL, 40, 40, 5000.0, "tax code not mapped")
            book.flush()
            book.resolve(alert, now + timedelta(minutes=2))
            book.flush()
            opened, resolved = server.wait_for(3)[1:]
        finally:
            lifecycle.remove_listener(notifier.on_flush)
            notifier.stop(timeout_seconds=2)
    assert opened.json["event"] == "opened"
    assert opened.json["alert"]["affected_transactions"] == 40
    assert resolved.json["event"] == "resolved"
    assert _outcomes(store) == [
        ("opened", "ops", "webhook", "sent", 2, 200),
        ("resolved", "ops", "webhook", "sent", 1, 200),
    ]


def test_a_signal_that_settles_and_fires_again_on_an_open_alert_is_not_notified(store):
    # like peaks, they stay in alert_events and on the dashboard: on-call heard of the
    # signal when it joined, and the alert stayed open
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    mapping = Signal("exception_category", "category:mapping", 9.0, 0.001, 0.3, "mapping: 3")
    with RecordingServer() as server:
        notifier = _notifier(server, StoreRecorder())
        notifier.start()
        lifecycle.add_listener(notifier.on_flush)
        try:
            book = AlertBook(store)
            alert = book.open("billing.invoice-post", "erp", "Invoice", now, SIGNAL, mapping)
            book.flush()
            book.ease(alert, now + MINUTE, mapping)
            book.flush()
            book.escalate(alert, now + 2 * MINUTE, mapping)
            book.flush()
            book.resolve(alert, now + 3 * MINUTE)
            book.flush()
            got = server.wait_for(2)
            # an eased or recurred message would have been sent before the resolution's
        finally:
            lifecycle.remove_listener(notifier.on_flush)
            notifier.stop(timeout_seconds=2)
    assert [request.json["event"] for request in got] == ["opened", "resolved"]
    assert len(server.received) == 2
    assert [row[0] for row in _outcomes(store)] == ["opened", "resolved"]


def test_after_a_restart_a_resolution_goes_where_the_opening_went(store):
    opened_at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    with RecordingServer() as server:
        first = _notifier(server, StoreRecorder())
        first.start()
        lifecycle.add_listener(first.on_flush)
        book = AlertBook(store)
        alert = book.open("billing.invoice-post", "erp", "Invoice", opened_at, SIGNAL)
        first.submit([])  # nothing yet: the opening is 3 hours old and stays unsent
        book.flush()
        lifecycle.remove_listener(first.on_flush)
        first.stop(timeout_seconds=2)
        assert server.received == []
        # Pretend the opening went out before the restart.
        store.command(
            f"INSERT INTO {store.table(DELIVERIES_TABLE)} "
            "(at, alert_id, event, event_at, destination, kind, outcome) VALUES "
            "(now64(3), {id:String}, 'opened', now64(3), 'ops', 'webhook', 'sent')",
            {"id": alert.alert_id},
        )

        second = _notifier(server, StoreRecorder())
        second.start()
        lifecycle.add_listener(second.on_flush)
        try:
            again = AlertBook(store)
            reopened = again.load_open()[("billing.invoice-post", "erp")]
            again.resolve(reopened, opened_at + timedelta(hours=1))
            again.flush()
            (got,) = server.wait_for(1)
        finally:
            lifecycle.remove_listener(second.on_flush)
            second.stop(timeout_seconds=2)
    assert got.json["event"] == "resolved"
    assert [row[3] for row in _outcomes(store)] == ["stale", "sent", "sent"]


def test_a_duplicate_posting_reaches_chat_with_its_currency_and_its_findings_said_once(store):
    # Slack showed "Money at risk 1,250.50" and a "Top error" line repeating "What changed"
    start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    at = start + timedelta(seconds=10)
    spans = published("INV-0", at=at) + posted("INV-0", at=at + timedelta(seconds=1))
    store.insert_arrow("otel_traces", make_span_rows(spans + posted("INV-0", 2, at=at + MINUTE)))
    with RecordingServer() as server:
        routes = [route("slack", server.url + "/services/T/B/x", name="finance")]
        clock = lambda: start + timedelta(minutes=3)  # noqa: E731 - the events are live
        notifier = Notifier(routes, load_severity(), DASHBOARD, StoreRecorder(), clock=clock)
        notifier.start()
        lifecycle.add_listener(notifier.on_flush)
        try:
            DetectorRunner(store, chunk=MINUTE).catch_up(start + timedelta(minutes=3))
            (got,) = server.wait_for(1)
        finally:
            lifecycle.remove_listener(notifier.on_flush)
            notifier.stop(timeout_seconds=2)
    text = json.dumps(got.json)
    assert "posted twice to erp, amount 1,250.50 EUR; INV-0" in text
    assert "*Money at risk*\\n1,250.50 EUR" in text
    assert text.count("posted twice") == 1
    assert "Top error" not in text


def test_an_alert_opening_with_several_kinds_is_one_message_without_nan_everywhere(store):
    # each destination got an opening and an "escalation" 13 to 25 ms apart, the second
    # saying "error_rate from nan% to 100.00%"
    start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    store.insert_arrow("otel_traces", make_span_rows(failing_after_a_quiet_hour(start)))
    end = start + timedelta(minutes=QUIET_RETURN_MINUTE + 5)
    with RecordingServer() as server:
        routes = [
            route("slack", server.url + "/services/T/B/x", name="finance"),
            route("webhook", server.url + "/hook", name="ops"),
        ]
        clock = lambda: end  # noqa: E731 - the events are live
        notifier = Notifier(routes, load_severity(), DASHBOARD, StoreRecorder(), clock=clock)
        notifier.start()
        lifecycle.add_listener(notifier.on_flush)
        try:
            DetectorRunner(store, chunk=MINUTE).catch_up(end)
            server.wait_for(2)
        finally:
            lifecycle.remove_listener(notifier.on_flush)
            notifier.stop(timeout_seconds=2)
    assert len(server.received) == 2  # one message each
    webhook, slack = sorted(server.received, key=lambda got: got.path)
    assert webhook.json["event"] == "opened"
    # a critical flow failing every posting spends its error budget in the same minute
    assert webhook.json["alert"]["kinds"] == ["exception_category", "error_rate", "error_budget"]
    assert (
        "; error_rate 100.00% (no earlier value to compare with); "
        in (webhook.json["alert"]["what_changed"])
    )
    assert slack.json["text"].startswith("P")
    assert " opened: billing.invoice-post -> erp" in slack.json["text"]
    for got in (slack, webhook):
        assert not re.search(r"\b(nan|inf|none)\b", json.dumps(got.json), re.IGNORECASE)


def test_notify_test_and_check_commands_say_what_happened(tmp_path, monkeypatch):
    monkeypatch.delenv("SEAMWATCH_NOTIFY_FILE", raising=False)
    with RecordingServer([Answer(404, body=b"no such hook")]) as server:
        config = tmp_path / "notify.yaml"
        config.write_text(
            "destinations:\n"
            f"  - {{name: gone, kind: slack, url: '{server.url}/T/B/secret-token'}}\n"
            f"  - {{name: ops, kind: webhook, url: '{server.url}/hook', min_priority: P1}}\n"
        )
        runner = CliRunner()
        tested = runner.invoke(app, ["notify", "test", "--notify-file", str(config)])
        checked = runner.invoke(app, ["notify", "check", "--notify-file", str(config)])
        sample = server.wait_for(2)[1].json
    assert tested.exit_code == 1
    assert tested.output.splitlines() == [
        "gone (slack at 127.0.0.1): opened message NOT delivered after 1 attempt: destination "
        "'gone' (slack at 127.0.0.1) answered HTTP 404: no such hook",
        "ops (webhook at 127.0.0.1): opened message delivered, HTTP 200 (1 attempt).",
    ]
    assert sample["test"] is True
    assert sample["summary"].startswith("[TEST] ")
    assert checked.exit_code == 0
    assert "ops: webhook at 127.0.0.1; low tier and up, P1 and up, all flows" in checked.output
    assert "secret-token" not in tested.output + checked.output


def test_a_broken_severity_file_stops_the_detectors_and_the_stack_at_start(tmp_path):
    # both started and answered 400 on every alerts request instead
    broken = tmp_path / "sev.yaml"
    broken.write_text("default_tier: high\ntiers:\n  high: {weight: -1}\n")
    env = {**os.environ, "SEAMWATCH_SEVERITY_FILE": str(broken)}
    env.pop("SEAMWATCH_NOTIFY_FILE", None)
    data = ["--data-dir", str(tmp_path / "data")]
    ports = ["--otlp-http-port", "0", "--otlp-grpc-port", "-1", "--no-dashboard"]
    for command in (["detectors", *data], ["up", *data, *ports]):
        result = subprocess.run(
            [sys.executable, "-c", "from seamwatch.cli import app; app()", *command],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "line 3, field tiers.high.weight" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "clickhouse").exists()  # up checked before opening a store


def test_the_detectors_log_where_notifications_go(tmp_path):
    # the line was logged before the command set up its logging, so it never showed
    data_dir = tmp_path / "data"
    made = "from seamwatch.settings import load_settings\nfrom storage import open_store\n"
    made += f"open_store(load_settings(data_dir={str(data_dir)!r})).close()\n"
    subprocess.run([sys.executable, "-c", made], check=True, timeout=120)
    notify_file = tmp_path / "notify.yaml"
    notify_file.write_text(
        "destinations:\n  - name: ops\n    kind: webhook\n    url: http://127.0.0.1:9/hook\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", "from seamwatch.cli import app; app()", "detectors", "--once"]
        + ["--data-dir", str(data_dir), "--notify-file", str(notify_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "INFO    notify.outbox: Notifications go to 1 destination(s): ops (webhook)" in (
        result.stderr
    )
