"""A command whose embedded store is held by a process that serves no API says what to do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

SEAMWATCH = [sys.executable, "-m", "seamwatch"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_alerts_beside_the_dashboard_alone_say_what_to_do_instead(tmp_path: Path):
    # 'seamwatch alerts' said only that another process held the directory, while the docs
    # listed the dashboard among the processes that serve alert listings
    env = {**os.environ, "SEAMWATCH_DATA_DIR": str(tmp_path / "data")}
    env.pop("SEAMWATCH_CLICKHOUSE_URL", None)
    dashboard = subprocess.Popen(
        [*SEAMWATCH, "dashboard", "--dashboard-port", str(_free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert dashboard.stdout.readline().startswith("Dashboard: http://127.0.0.1:")
        began = time.monotonic()
        listed = subprocess.run(
            [*SEAMWATCH, "alerts"], env=env, capture_output=True, text=True, timeout=60
        )
        waited = time.monotonic() - began
    finally:
        dashboard.terminate()
        dashboard.wait(30)
    assert listed.returncode == 1
    [line] = listed.stderr.splitlines()
    assert line.startswith(
        f"Error: The data directory '{tmp_path / 'data'}' is held by Seamwatch process "
        f"{dashboard.pid}, which serves no API for this command: 'seamwatch dashboard' running "
        "alone, or another command still at work after 8 s."
    )
    assert f"stop process {dashboard.pid} and run 'seamwatch up'" in line
    assert waited < 30
