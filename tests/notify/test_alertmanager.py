"""Alerts posted to a real Prometheus Alertmanager and read back through its API."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from detectors.severity import load_severity
from notify.outbox import Notifier
from tests.loopback_tcp import free_port
from tests.notify.helpers import DASHBOARD, FAST, ListRecorder, make_notification, route

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
CONFIG = """\
route:
  receiver: quiet
receivers:
  - name: quiet
"""

pytestmark = pytest.mark.skipif(
    not Path(ALERTMANAGER).exists(),
    reason="Prometheus Alertmanager is not installed (apt-get install prometheus-alertmanager)",
)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on a loopback port with its own config and storage, clustering off."""
    (tmp_path / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Alertmanager did not start: {process.stderr.read()!r}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _alerts(url: str) -> list[dict]:
    return httpx.get(f"{url}/api/v2/alerts", params={"filter": "source=seamwatch"}).json()


def _wait(condition, timeout_seconds: float = 5.0):
    deadline = time.monotonic() + timeout_seconds
    while True:
        found = condition()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_firing_alert_is_resent_and_resolves_with_ends_at(alertmanager):
    now = datetime.now(UTC).replace(microsecond=0)
    recorder = ListRecorder()
    am_route = route("alertmanager", alertmanager, name="am", resend_interval_seconds=1)
    notifier = Notifier([am_route], load_severity(), DASHBOARD, recorder, policy=FAST)
    notifier.start()
    try:
        notifier.submit([make_notification("opened", now, opened_at=now)])
        (alert,) = _wait(lambda: _alerts(alertmanager))
        assert alert["labels"] == {
            "alertname": "SeamwatchFlowAlert",
            "alert_id": "a1b2c3d4e5f60718",
            "flow": "billing.invoice-post",
            "target": "erp",
            "business_object": "Invoice",
            "tier": "critical",
            "source": "seamwatch",
        }
        assert alert["status"]["state"] == "active"
        assert alert["annotations"]["priority"] == "P2"
        assert alert["annotations"]["summary"] == "P2 opened: billing.invoice-post -> erp"
        assert alert["generatorURL"] == (
            "https://seamwatch.example.test/alerts?alert_id=a1b2c3d4e5f60718"
        )
        first_end = _parse(alert["endsAt"])
        assert _parse(alert["startsAt"]) == now
        assert first_end > now + timedelta(seconds=3)

        # The resend moves endsAt on, as Alertmanager expects of a live source.
        resent = _wait(
            lambda: [a for a in _alerts(alertmanager) if _parse(a["endsAt"]) > first_end]
        )
        assert resent, "the firing alert was not resent"

        resolved_at = now + timedelta(seconds=1)
        notifier.submit(
            [make_notification("resolved", resolved_at, opened_at=now, resolved_at=resolved_at)]
        )
        # Alertmanager lists active alerts only: an endsAt in the past has resolved it.
        assert _wait(lambda: _alerts(alertmanager) == [])
    finally:
        notifier.stop(timeout_seconds=2)
    assert len(recorder.of("sent")) == 2 and len(recorder.of("queued")) == 2
    assert notifier.workers[0].destination.firing() == []


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
