"""Commands beside a process that holds the embedded store: through its API, or told what to do."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.loopback_tcp import free_port

SEAMWATCH = [sys.executable, "-m", "seamwatch"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "SEAMWATCH_DATA_DIR": str(tmp_path / "data")}
    env.pop("SEAMWATCH_CLICKHOUSE_URL", None)
    return env


def _seamwatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SEAMWATCH, *args], env=env, capture_output=True, text=True, timeout=60)


def test_alerts_beside_the_dashboard_alone_go_through_its_api(tmp_path: Path):
    # with the dashboard alone running, 'seamwatch alerts' waited 8 s and said that another
    # process held the directory: on-call could neither list, silence nor acknowledge
    env = _env(tmp_path)
    dashboard = subprocess.Popen(
        [*SEAMWATCH, "dashboard", "--dashboard-port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert dashboard.stdout.readline().startswith("Dashboard: http://127.0.0.1:")
        began = time.monotonic()
        listed = _seamwatch(env, "alerts")
        waited = time.monotonic() - began
        silenced = _seamwatch(env, "alerts", "silence", "--for", "30m", "--flow", "payments.*")
        silences = _seamwatch(env, "alerts", "silences")
    finally:
        dashboard.terminate()
        dashboard.wait(30)
    assert (listed.returncode, listed.stdout.strip()) == (
        0,
        "No open alerts (--state all lists every alert).",
    )
    assert waited < 8  # answered by the dashboard's process, not after waiting for the store
    assert silenced.returncode == 0, silenced.stderr
    assert "payments.*" in silences.stdout
    # the address is withdrawn when the dashboard stops
    assert not (tmp_path / "data" / "api-endpoint").exists()


def test_a_holder_without_an_api_is_named_with_what_to_do(tmp_path: Path):
    env = _env(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from seamwatch.settings import load_settings; "
            "from storage import open_store; store = open_store(load_settings()); "
            "print('held', flush=True); time.sleep(120)",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        listed = _seamwatch(env, "alerts")
    finally:
        holder.kill()
        holder.wait(30)
    assert listed.returncode == 1
    [line] = listed.stderr.splitlines()
    assert line == (
        f"Error: The data directory '{tmp_path / 'data'}' is held by Seamwatch process "
        f"{holder.pid}, which serves no API for this command and kept the store for 8 s "
        "(another command still at work). Try again once it is done. 'seamwatch up', "
        "'collector', 'detectors' and 'dashboard' answer 'alerts' (ack, silence and the rest), "
        "'lineage', 'reconcile' and 'notify log' while they hold the store."
    )
