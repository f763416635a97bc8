"""Messages rank with the severity in force, the same source the alert listings use."""

from __future__ import annotations

from datetime import UTC, datetime

from detectors.severity import SeveritySource, severity_in_force
from notify.outbox import Notifier
from notify.service import start_notifications
from seamwatch.settings import load_settings
from tests.detectors.test_severity_in_force import GOOD, NEGATIVE_WEIGHT, rewrite
from tests.notify.helpers import DASHBOARD, FAST, ListRecorder, make_alert, route
from tests.notify.receiver import RecordingServer


def _opened(notifier: Notifier, store, alert_id: str) -> None:
    """Hand the notifier one flush: the opening, just now, of an invoice flow's alert."""
    now = datetime.now(UTC).replace(microsecond=0)
    alert = make_alert(alert_id=alert_id, opened_at=now, updated_at=now)
    event = {"alert_id": alert_id, "event": "opened", "at": now, "kind": alert.kind}
    notifier.on_flush(store, [alert], [event])


def test_a_changed_severity_file_ranks_the_next_message(store, tmp_path):
    # messages kept the tiers of the file as it was when the process started
    path = tmp_path / "sev.yaml"
    rewrite(path, GOOD.format(tier="critical"))
    source = SeveritySource(path)
    with RecordingServer() as server:
        routes = [route("webhook", server.url + "/hook", name="ops")]
        notifier = Notifier(routes, source, DASHBOARD, ListRecorder(), policy=FAST)
        notifier.start()
        try:
            _opened(notifier, store, "a000000000000001")
            server.wait_for(1)
            rewrite(path, GOOD.format(tier="low"))
            _opened(notifier, store, "a000000000000002")
            server.wait_for(2)
            rewrite(path, NEGATIVE_WEIGHT)
            _opened(notifier, store, "a000000000000003")
            messages = server.wait_for(3)
        finally:
            notifier.stop(timeout_seconds=2)
    # the flow is ranked by the default tier; a broken edit leaves the last good file in force
    assert [message.json["alert"]["tier"] for message in messages] == ["critical", "low", "low"]


def test_notifications_and_alert_listings_share_one_source(tmp_path, monkeypatch):
    path = tmp_path / "sev.yaml"
    rewrite(path, GOOD.format(tier="critical"))
    notify_file = tmp_path / "notify.yaml"
    notify_file.write_text(
        "destinations:\n  - {name: ops, kind: webhook, url: 'http://127.0.0.1:9/'}\n"
    )
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(path))

    notifications = start_notifications(load_settings(notify_file=notify_file))
    try:
        assert notifications is not None
        assert notifications.notifier.severity is severity_in_force()
    finally:
        notifications.stop(timeout_seconds=1)
