"""`up`, `detectors` and `dashboard` started while their ClickHouse server is down.

Each command runs as a process of its own against a loopback port where nothing listens yet;
then the ClickHouse HTTP interface over chDB (``tests.storage.clickhouse_http``) comes up on
that port, and the command must take the server and run as if it had been there all along.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from detectors.runner import DetectorRunner
from seamwatch.settings import Settings
from storage import open_store
from storage.pending import PROBE_SECONDS
from storage.schema import TRACES_TABLE
from tests.loopback_tcp import free_port, silent_server
from tests.rows import invoice_postings, make_span_rows, otlp_json_request
from tests.storage.clickhouse_http import serve

pytestmark = pytest.mark.slow

DATABASE = "swtest"
START_TIMEOUT_SECONDS = 60
# the command tries again after 1, 2, 4... s: a server up a few seconds later is taken soon
TAKEN_TIMEOUT_SECONDS = 45
STOP_SECONDS = 5


def server_url(port: int) -> str:
    return f"http://default:@127.0.0.1:{port}/{DATABASE}"


def waiting_line(port: int, waiting: str) -> str:
    return (
        f"The ClickHouse server at 127.0.0.1:{port} does not answer: connection refused. "
        f"{waiting}; trying again after 1 s, backing off to every 30 s."
    )


class Command:
    """A seamwatch command in a process of its own, its output read as it comes."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "seamwatch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        streams = ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in streams
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(
        self,
        lines: list[str],
        found: Callable[[str], bool],
        what: str,
        seconds: float = TAKEN_TIMEOUT_SECONDS,
    ) -> str:
        """The first line that ``found`` accepts, waiting up to ``seconds`` for it."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in list(lines):
                if found(line):
                    return line
            assert self.process.poll() is None, f"ended before {what}:\n{self.output()}"
            time.sleep(0.1)
        raise AssertionError(f"no {what} within {seconds:g} s:\n{self.output()}")

    def log(self, text: str, seconds: float = TAKEN_TIMEOUT_SECONDS) -> str:
        """The first log line that holds ``text``, waiting up to ``seconds`` for it."""
        return self.wait_for(self.stderr, lambda line: text in line, repr(text), seconds)

    def stop(self, number: int = signal.SIGINT) -> float:
        """Send ``number`` and wait for the end; the seconds it took."""
        started = time.monotonic()
        self.process.send_signal(number)
        self.process.wait(timeout=60)
        seconds = time.monotonic() - started
        for reader in self._readers:
            reader.join(10)
        return seconds

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return "\n".join(self.stdout + self.stderr)


@contextmanager
def command(*args: str) -> Iterator[Command]:
    started = Command(*args)
    try:
        yield started
    finally:
        started.kill()


def spans(start: datetime, minutes: range, failed: int = 0) -> list[dict]:
    """Six invoice postings a minute, ``failed`` of them failing."""
    return [row for minute in minutes for row in invoice_postings(start, minute, 6, failed)]


def test_the_detectors_wait_for_the_server_then_catch_up_without_alerting_twice(tmp_path):
    # they stopped at start with "Cannot reach the ClickHouse server" (exit 1), so under
    # systemd or compose they failed whenever the database came up after them
    port = free_port()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=70)
    before_outage = start + timedelta(minutes=62)
    with serve(tmp_path / "server", port=port):
        store = open_store(Settings(clickhouse_url=server_url(port)))
        try:
            store.insert_arrow(
                TRACES_TABLE,
                make_span_rows(
                    spans(start, range(60))
                    + spans(start, range(60, 65), failed=3)
                    + spans(start, range(65, 69))
                ),
            )
            assert DetectorRunner(store).catch_up(before_outage).opened == 1
        finally:
            store.close()

    with command("detectors", "--clickhouse-url", server_url(port)) as detectors:
        detectors.log(waiting_line(port, "The detectors start once it does"))
        with serve(tmp_path / "server", port=port):
            detectors.log(f"The ClickHouse server at 127.0.0.1:{port} answers")
            evaluated = detectors.log("Evaluated ")
            detectors.stop()
            store = open_store(Settings(clickhouse_url=server_url(port)))
            try:
                alerts = store.query_rows(f"SELECT alert_id FROM {store.table('alerts')} FINAL")
                opened = store.query_rows(
                    f"SELECT alert_id FROM {store.table('alert_events')} FINAL "
                    "WHERE event = 'opened'"
                )
                [(cursor,)] = store.query_rows(
                    f"SELECT evaluated_until FROM {store.table('detector_state')} FINAL"
                )
            finally:
                store.close()

    assert detectors.process.returncode == 0
    assert "Traceback" not in detectors.output()
    # the eight minutes from the stored position to the test's start, and any since
    minutes = int(re.search(r"Evaluated (\d+) minute", evaluated).group(1))
    assert minutes >= 7 and ": 0 opened" in evaluated, evaluated
    assert len(alerts) == 1 and opened == alerts
    assert cursor.replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(minutes=2)
    warnings = [line for line in detectors.stderr if " WARNING " in line]
    assert len(warnings) == 1, detectors.output()


def test_up_serves_while_the_server_is_down_and_runs_normally_once_it_answers(tmp_path):
    port, dashboard_port = free_port(), free_port()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    with serve(tmp_path / "server", port=port):
        store = open_store(Settings(clickhouse_url=server_url(port)))
        try:
            store.insert_arrow(TRACES_TABLE, make_span_rows(spans(start, range(28))))
        finally:
            store.close()

    with command(
        *("up", "--clickhouse-url", server_url(port), "--data-dir", str(tmp_path / "data")),
        *("--otlp-http-port", "0", "--otlp-grpc-port", "-1"),
        *("--dashboard-port", str(dashboard_port)),
    ) as up:
        banner = up.wait_for(up.stdout, lambda line: "OTLP/HTTP endpoint:" in line, "banner")
        endpoint = banner.split("OTLP/HTTP endpoint:")[1].split()[0]
        up.log(
            waiting_line(port, "The detectors start and the dashboard shows its pages once it does")
        )
        traces = f"{endpoint}/v1/traces"
        refused = httpx.post(traces, json=otlp_json_request("ab" * 16), timeout=30)
        dashboard = _wait_for_dashboard(dashboard_port)
        with serve(tmp_path / "server", port=port):
            up.log(f"The ClickHouse server at 127.0.0.1:{port} answers")
            up.log("Detector runner 'default' starts at")
            accepted = httpx.post(traces, json=otlp_json_request("cd" * 16), timeout=30)
            seconds = up.stop()
            store = open_store(Settings(clickhouse_url=server_url(port)))
            try:
                stored = store.query_rows(
                    f"SELECT count() FROM {store.table(TRACES_TABLE)} WHERE TraceId = 'cd' || "
                    "repeat('cd', 15)"
                )
            finally:
                store.close()

    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert dashboard.status_code == 200
    assert accepted.status_code == 200
    assert stored == [(1,)]
    assert up.process.returncode == 0 and seconds < 30
    assert "  Store:              ClickHouse server (does not answer yet; see the log)" in up.stdout
    assert "Traceback" not in up.output()


def test_the_dashboard_serves_while_the_server_is_down_and_migrates_it_once_it_answers(
    tmp_path,
):
    port, dashboard_port = free_port(), free_port()
    with command(
        "dashboard", "--clickhouse-url", server_url(port), "--dashboard-port", str(dashboard_port)
    ) as dashboard:
        dashboard.log(waiting_line(port, "The dashboard shows a notice until it does"))
        served = _wait_for_dashboard(dashboard_port)
        with serve(tmp_path / "server", port=port):
            dashboard.log(
                f"The ClickHouse server at 127.0.0.1:{port} answers; the schema of {DATABASE} "
                "is up to date"
            )
            seconds = dashboard.stop()
            store = open_store(Settings(clickhouse_url=server_url(port)))
            try:
                tables = {
                    name
                    for (name,) in store.query_rows(
                        "SELECT name FROM system.tables WHERE database = {d:String}",
                        {"d": DATABASE},
                    )
                }
            finally:
                store.close()

    assert served.status_code == 200
    assert {TRACES_TABLE, "alerts", "detector_state"} <= tables
    assert dashboard.process.returncode == 0 and seconds < STOP_SECONDS
    assert "Traceback" not in dashboard.output()


WAITING_COMMANDS = {
    "detectors": (["detectors"], "The detectors start once it does", 0),
    "detectors --once": (["detectors", "--once"], "The detectors start once it does", 130),
    "dashboard": (["dashboard"], "The dashboard shows a notice until it does", 0),
    "up": (
        ["up", "--otlp-http-port", "0", "--otlp-grpc-port", "-1"],
        "The detectors start and the dashboard shows its pages once it does",
        0,
    ),
}


@pytest.mark.parametrize(
    ("name", "number"),
    [
        *((name, signal.SIGINT) for name in WAITING_COMMANDS),
        # as systemd and compose stop a service
        ("detectors", signal.SIGTERM),
        ("up", signal.SIGTERM),
    ],
    ids=lambda value: value.name if isinstance(value, signal.Signals) else value,
)
def test_a_stop_while_waiting_for_the_server_ends_the_command_at_once(tmp_path, name, number):
    args, waiting, exit_code = WAITING_COMMANDS[name]
    port = free_port()
    if "dashboard" in name or name == "up":
        args = [*args, "--dashboard-port", str(free_port())]
    with command(
        *args, "--clickhouse-url", server_url(port), "--data-dir", str(tmp_path / "data")
    ) as waiting_command:
        waiting_command.log(waiting_line(port, waiting))
        time.sleep(1.5)  # a retry or two
        seconds = waiting_command.stop(number)

    assert waiting_command.process.returncode == exit_code, waiting_command.output()
    assert seconds < STOP_SECONDS
    assert "Traceback" not in waiting_command.output()
    if name.startswith("detectors"):
        assert waiting_command.stdout == [
            "Detectors stopped before the ClickHouse server answered."
        ]


@pytest.mark.parametrize("name", ["detectors", "dashboard", "up"])
def test_a_port_that_accepts_but_never_answers_is_waited_for_with_a_line_within_seconds(
    tmp_path, name
):
    # the waiting line came only after the driver's read timeout of 300 s
    args, waiting, exit_code = WAITING_COMMANDS[name]
    if name != "detectors":
        args = [*args, "--dashboard-port", str(free_port())]
    with (
        silent_server() as port,
        command(
            *args, "--clickhouse-url", server_url(port), "--data-dir", str(tmp_path / "data")
        ) as waiting_command,
    ):
        waiting_command.log(
            f"The ClickHouse server at 127.0.0.1:{port} accepted the connection but did "
            f"not answer within {PROBE_SECONDS} s. {waiting}; trying again after 1 s",
            seconds=PROBE_SECONDS + 15,  # the command's own start, then the probe
        )
        seconds = waiting_command.stop()

    assert waiting_command.process.returncode == exit_code, waiting_command.output()
    # the receivers of `up` give a try of the server under way a few seconds to end
    assert seconds < STOP_SECONDS + (PROBE_SECONDS if name == "up" else 0)
    assert "Traceback" not in waiting_command.output()


@pytest.mark.parametrize("name", ["detectors", "dashboard", "up"])
def test_a_server_that_answers_but_refuses_the_credentials_ends_the_wait_with_an_error(
    tmp_path, name
):
    args, waiting, _ = WAITING_COMMANDS[name]
    port = free_port()
    if name != "detectors":
        args = [*args, "--dashboard-port", str(free_port())]
    with command(
        *args, "--clickhouse-url", server_url(port), "--data-dir", str(tmp_path / "data")
    ) as waiting_command:
        waiting_command.log(waiting_line(port, waiting))
        with serve(tmp_path / "server", port=port, password="not-empty"):
            waiting_command.process.wait(timeout=TAKEN_TIMEOUT_SECONDS)

    assert waiting_command.process.returncode == 1, waiting_command.output()
    waiting_command.stop()  # the readers reach the end of the output
    last = waiting_command.stderr[-1]
    assert last.startswith("Error: The ClickHouse server refused the connection: ")
    assert "AUTHENTICATION_FAILED" in last
    assert "Traceback" not in waiting_command.output()


def _wait_for_dashboard(port: int) -> httpx.Response:
    """The dashboard's health answer, once it listens."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=10)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.2)


@pytest.mark.parametrize("name", ["dashboard", "up"])
@pytest.mark.parametrize("delay", [0.0, 0.3, 0.8])
def test_a_stop_while_streamlit_starts_still_ends_the_command(tmp_path, name, delay):
    # a Ctrl-C between the wait's handlers and Streamlit's set a flag Streamlit never read:
    # on a busy machine the dashboard went on serving until it was killed
    args, waiting, exit_code = WAITING_COMMANDS[name]
    port = free_port()
    args = [*args, "--dashboard-port", str(free_port())]
    with command(
        *args, "--clickhouse-url", server_url(port), "--data-dir", str(tmp_path / "data")
    ) as waiting_command:
        waiting_command.log(waiting_line(port, waiting))
        time.sleep(delay)
        seconds = waiting_command.stop(signal.SIGINT)
    assert waiting_command.process.returncode == exit_code
    assert seconds < STOP_SECONDS
    assert "Traceback" not in waiting_command.output()
