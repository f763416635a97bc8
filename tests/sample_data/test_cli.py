"""``seamwatch simulate`` argument handling and a short run against a local receiver."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import typer
from typer.testing import CliRunner

from sample_data.cli import parse_duration, parse_speed, parse_start, simulate_command
from tests.loopback_tcp import free_port

from .receiver import RecordingReceiver

app = typer.Typer()
app.command("simulate")(simulate_command)
app.command("noop")(lambda: None)  # two commands, so "simulate" is a subcommand as in seamwatch


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
        ("forever", None),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "10", "5y", "0m", "-1h"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_speeds():
    assert parse_speed("max") == math.inf
    assert parse_speed("0") == math.inf
    assert parse_speed("300") == 300.0
    assert parse_speed("300x") == 300.0
    for bad in ("fast", "-2", "nan"):
        with pytest.raises(ValueError, match="speed"):
            parse_speed(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "soon"], "--duration"),
        (["--speed", "fast"], "--speed"),
        (["--duration", "forever", "--speed", "max"], "endless"),
        (["--start", "yesterday"], "--start"),
        (["--endpoint", "ftp://x"], "--endpoint"),
    ],
)
def test_bad_values_are_usage_errors_not_tracebacks(args, message):
    result = CliRunner().invoke(app, ["simulate", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_short_run_sends_spans_and_writes_labels(tmp_path):
    labels = tmp_path / "labels.jsonl"
    with RecordingReceiver(keep_requests=False) as receiver:
        result = CliRunner().invoke(
            app,
            [
                "simulate",
                "--endpoint",
                receiver.endpoint,
                "--seed",
                "4",
                "--duration",
                "15m",
                "--speed",
                "max",
                "--labels",
                str(labels),
                "--start",
                "2025-03-03T10:00:00Z",
            ],
        )
        assert result.exit_code == 0, result.output
        assert receiver.span_count > 100
    assert "spans" in result.output
    # 15 simulated minutes are inside the quiet start of a run: no incidents, so one line
    # says that none happened
    [line] = labels.read_text().splitlines()
    assert json.loads(line)["no_incident"] is True
    assert "No incident happened;" in result.output


def test_a_run_without_a_receiver_leaves_no_labels_file(tmp_path):
    # the labels file was created before the receiver was looked for, and left empty
    labels = tmp_path / "labels.jsonl"
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["simulate", "--endpoint", endpoint, "--labels", str(labels)])
    assert result.exit_code == 1, result.output
    assert not labels.exists()


@pytest.mark.parametrize(
    ("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_a_signal_stops_a_run_with_its_summary_and_loses_nothing(tmp_path, number, code):
    # Ctrl-C used to end in a KeyError traceback: the interrupted join of the worker thread
    # returned while the worker was still flushing, before the summary existed
    with RecordingReceiver(keep_requests=False) as receiver:
        command = [sys.executable, "-m", "seamwatch", "simulate", "--endpoint", receiver.endpoint]
        command += ["--speed", "max", "--duration", "7d", "--labels", str(tmp_path / "l.jsonl")]
        run = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 60
            while receiver.span_count == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert receiver.span_count, "the simulator sent nothing within a minute"
            run.send_signal(number)
            _, errors = run.communicate(timeout=60)
        finally:
            run.kill()
        received = receiver.span_count
    assert "Traceback" not in errors, errors
    assert run.returncode == code, errors
    summary = " ".join(errors.split())
    assert "Stopping: flushing the spans generated so far..." in summary
    exported = re.search(
        r"Stopped early\. Simulated .* spans \(([\d,]+) exported, 0 failed\)", summary
    )
    assert exported, summary
    assert int(exported[1].replace(",", "")) == received > 0


@pytest.mark.parametrize("start", ["1600-01-01", "2300-01-01T00:00:00Z"])
def test_a_start_the_store_cannot_hold_is_refused_naming_the_range(start):
    with pytest.raises(ValueError) as raised:
        parse_start(start)
    result = CliRunner().invoke(app, ["simulate", "--start", start, "--duration", "1m"])

    assert str(raised.value) == (
        f"{start!r} is outside the supported range, 1678-01-01 to 2261-12-31 (UTC)."
    )
    assert result.exit_code == 2
    assert "--start" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # sent 3,011 spans, 2,019 of them stamped in 2262, where no query reaches them
        (
            ["--start", "2261-12-31T23:00:00Z", "--duration", "2h"],
            "a run of this length from --start would end after 2261-12-31 (UTC)",
        ),
        (["--duration", "200000d"], "a run of this length up to now would start before 1678-01-01"),
    ],
)
def test_a_run_that_would_leave_the_supported_range_is_refused(args, message):
    result = CliRunner().invoke(app, ["simulate", "--endpoint", "http://127.0.0.1:9", *args])

    assert result.exit_code == 2
    assert message in " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())
    assert "Nothing accepts connections" not in result.output


def test_every_bad_option_is_named_in_one_round():
    # only the first bad option was named; fixing it revealed the next
    result = CliRunner().invoke(
        app,
        ["simulate", "--duration", "soon", "--speed", "fast", "--start", "yesterday"]
        + ["--run", "-1"],
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: Invalid value for '--duration': 'soon' is not a duration; use a number with a "
        "unit, e.g. 30m, 6h, 1d, 7d or 1h30m (units w, d, h, m, s), or 'forever'",
        "Error: Invalid value for '--speed': 'fast' is not a speed; use a positive number such "
        "as 300, or 'max'",
        "Error: Invalid value for '--start': 'yesterday' is not an ISO-8601 time such as "
        "2025-03-03T00:00:00Z",
        # refused alone, before the others were read
        "Error: Invalid value for '--run': -1 is no run number; use 0 or more",
    ]
