"""The dashboard's address as the banner and chat links give it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from notify.service import public_dashboard_url
from seamwatch.settings import Settings


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "http://127.0.0.1:8501"),
        ("0.0.0.0", "http://127.0.0.1:8501"),
        # printed without brackets, which is no URL
        ("::1", "http://[::1]:8501"),
        ("::", "http://127.0.0.1:8501"),
    ],
)
def test_the_dashboard_address_is_a_url_a_person_can_open(tmp_path, host, shown):
    settings = Settings(data_dir=tmp_path, dashboard_host=host, dashboard_port=8501)
    assert settings.dashboard_url() == shown
    assert public_dashboard_url(settings) == shown


def test_a_public_address_is_the_one_links_use(tmp_path):
    settings = Settings(data_dir=tmp_path, dashboard_public_url="https://ops.example.com/sw")
    assert public_dashboard_url(settings) == "https://ops.example.com/sw"


def test_port_0_names_the_port_the_dashboard_listens_on(tmp_path: Path):
    # the banner said http://127.0.0.1:0 while the dashboard listened on a port of its own
    env = {**os.environ, "SEAMWATCH_DATA_DIR": str(tmp_path / "data")}
    env.pop("SEAMWATCH_CLICKHOUSE_URL", None)
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "seamwatch", "dashboard", "--dashboard-port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = dashboard.stdout.readline().strip()
        assert banner.startswith("Dashboard: http://127.0.0.1:")
        url = banner.removeprefix("Dashboard: ")
        assert not url.endswith(":0")
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 60
        while True:
            try:
                with direct.open(url, timeout=5) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, f"nothing answered at {url}"
                time.sleep(0.5)
    finally:
        dashboard.terminate()
        dashboard.wait(30)
