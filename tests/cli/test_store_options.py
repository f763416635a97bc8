"""Every command that opens the store takes the same store options."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from seamwatch.cli import app
from storage.pending import PROBE_SECONDS
from tests.loopback_tcp import silent_server
from tests.storage.clickhouse_http import serve

runner = CliRunner()
STORE_COMMANDS = ["up", "collector", "dashboard", "detectors", "alerts", "lineage", "reconcile"]
STORE_COMMANDS += ["alerts ack", "alerts silence", "alerts silences", "notify log"]


@pytest.mark.parametrize("command", STORE_COMMANDS)
def test_every_store_command_takes_the_store_options(command):
    result = runner.invoke(app, [*command.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--data-dir" in result.output
    assert "--clickhouse-url" in result.output
    # 'detectors', 'alerts', 'lineage' and 'reconcile' said "Embedded store directory." alone
    assert "[env SEAMWATCH_DATA_DIR; default .seamwatch]" in result.output
    assert "[env SEAMWATCH_CLICKHOUSE_URL]" in result.output


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ClickHouse HTTP interface over chDB, for this module."""
    with serve(tmp_path_factory.mktemp("clickhouse-http")) as port:
        yield f"http://default:@127.0.0.1:{port}/options"


@pytest.mark.parametrize(
    ("args", "field"),
    [(["lineage", "--key", "INV-1"], "hops"), (["reconcile"], "findings")],
    ids=["lineage", "reconcile"],
)
def test_lineage_and_reconcile_read_the_server_named_by_the_flag(server_url, args, field):
    # both used to refuse --clickhouse-url, which their own error text recommends
    result = runner.invoke(app, [*args, "--json", "--clickhouse-url", server_url])
    assert result.exit_code == 0, result.output
    assert field in json.loads(result.stdout)


@pytest.mark.parametrize("command", [["lineage", "--key", "INV-1"], ["reconcile"]])
def test_a_server_that_does_not_answer_is_named_with_the_flag_that_moves_it(command):
    result = runner.invoke(app, [*command, "--clickhouse-url", "http://127.0.0.1:1/seamwatch"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: Cannot reach the ClickHouse server at 127.0.0.1:1")
    assert "--clickhouse-url" in result.stderr
    assert "Traceback" not in result.output


@contextmanager
def listening_only() -> Iterator[int]:
    """A loopback port whose socket listens and never accepts: the kernel completes the
    connections, nothing reads or answers them (a stopped server); yields the port."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


SHORT_COMMANDS = {
    "alerts": ["alerts"],
    "alerts ack": ["alerts", "ack", "1", "--by", "ana"],
    "lineage": ["lineage", "--key", "INV-1"],
    "reconcile": ["reconcile"],
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "silent"),
    [(command, silent_server) for command in SHORT_COMMANDS.values()]
    + [(SHORT_COMMANDS["reconcile"], listening_only)],
    ids=[*SHORT_COMMANDS, "reconcile, never accepted"],
)
def test_a_server_that_accepts_but_never_answers_is_named_within_seconds(command, silent):
    # the short commands waited for the driver's read timeout of 300 s
    with silent() as port:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "seamwatch", *command],
            capture_output=True,
            text=True,
            timeout=PROBE_SECONDS + 25,
            env={**os.environ, "SEAMWATCH_CLICKHOUSE_URL": f"http://default:@127.0.0.1:{port}/x"},
        )
        seconds = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"Error: Cannot reach the ClickHouse server at 127.0.0.1:{port}: it accepted the "
        f"connection but did not answer within {PROBE_SECONDS} s. Check "
        "SEAMWATCH_CLICKHOUSE_URL (or --clickhouse-url) and that the server runs."
    ]
    assert seconds < PROBE_SECONDS + 10  # the interpreter's start, then the probe
