"""``seamwatch simulate`` when its receiver is not there: at start, gone for a while, or gone
when the run is stopped. Real OpenTelemetry OTLP/HTTP exporter, real loopback ports."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from sample_data.delivery import ANSWER_SECONDS
from tests.cli.test_server_down import command, free_port
from tests.loopback_tcp import silent_server

from .receiver import RecordingReceiver

pytestmark = pytest.mark.slow

# the reason in brackets is the connection's: refused, or reset when it closed mid-request
AWAY = "; the simulation waits for it and sends on once it does"
BACK = "accepts connections again; sending on."


def _summary(stderr: list[str]) -> tuple[int, int, int]:
    """Spans generated, exported and failed, from the summary line."""
    text = " ".join(" ".join(stderr).split())
    found = re.search(r"([\d,]+) spans \(([\d,]+) exported, ([\d,]+) failed\)", text)
    assert found, text
    emitted, exported, failed = (int(group.replace(",", "")) for group in found.groups())
    return emitted, exported, failed


def _wait_for_spans(receiver: RecordingReceiver, simulate) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 60
    while receiver.span_count == 0:
        assert time.monotonic() < deadline, f"nothing sent within a minute:\n{simulate.output()}"
        assert simulate.process.poll() is None, simulate.output()
        time.sleep(0.1)


def test_no_receiver_at_start_is_one_line_at_once():
    # every batch waited out the exporter's 30 s timeout, with its retry warnings
    port = free_port()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "seamwatch", "simulate", "--endpoint", f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: Nothing accepts connections at http://127.0.0.1:{port}/v1/traces (connection "
        "refused). Start the receiver (seamwatch up, or seamwatch collector), or pass its "
        "address with --endpoint."
    ]
    assert time.monotonic() - started < 15


def test_a_receiver_that_accepts_and_never_answers_is_one_line_within_seconds():
    # every batch waited out the exporter's 30 s timeout, a stop included
    with silent_server() as port:
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "seamwatch",
                "simulate",
                "--endpoint",
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        seconds = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: The receiver at http://127.0.0.1:{port}/v1/traces accepted the connection "
        f"but did not answer within {ANSWER_SECONDS:g} s. Check that the receiver there is "
        "Seamwatch's (seamwatch up, or seamwatch collector) and is not stopped or hung, or "
        "pass another address with --endpoint."
    ]
    assert seconds < ANSWER_SECONDS + 10  # the interpreter's start, then the wait


def test_a_receiver_slow_to_answer_in_the_middle_of_a_run_gets_every_span():
    # the start's check waits 5 s for an answer; later batches wait as long as the exporter
    port = free_port()
    arguments = ["simulate", "--endpoint", f"http://127.0.0.1:{port}", "--no-incidents"]
    arguments += ["--start", "2025-03-03T10:00:00Z", "--duration", "20m"]
    slow = RecordingReceiver(keep_requests=False, port=port, delays=[1, ANSWER_SECONDS + 2])
    with slow as receiver, command(*arguments) as run:
        run.process.wait(timeout=90)
        run.stop()  # the readers reach the end of the output
    assert run.process.returncode == 0, run.output()
    emitted, exported, failed = _summary(run.stderr)
    assert failed == 0 and exported == emitted == receiver.span_count > 0


def test_a_receiver_that_goes_away_and_comes_back_gets_every_span():
    # the batches sent while it was away were dropped after the exporter's retries
    port = free_port()
    arguments = ["simulate", "--endpoint", f"http://127.0.0.1:{port}", "--no-incidents"]
    arguments += ["--start", "2025-03-03T10:00:00Z", "--duration", "30m", "--speed", "150"]
    with RecordingReceiver(keep_requests=False, port=port) as first, command(*arguments) as run:
        _wait_for_spans(first, run)
        first.__exit__(None, None, None)
        away = run.log(AWAY, seconds=15)
        assert away.startswith(f"The receiver at http://127.0.0.1:{port}/v1/traces does not accept")
        time.sleep(2)  # a batch or two waits meanwhile
        with RecordingReceiver(keep_requests=False, port=port) as second:
            run.log(BACK, seconds=15)
            run.process.wait(timeout=60)
            run.stop()  # the readers reach the end of the output
    assert run.process.returncode == 0, run.output()
    emitted, exported, failed = _summary(run.stderr)
    assert failed == 0 and exported == emitted == first.span_count + second.span_count
    assert second.span_count > 0
    assert "Traceback" not in run.output()
    assert sum(AWAY in line for line in run.stderr) == 1


def test_a_stop_while_the_receiver_is_away_ends_at_once():
    # Ctrl-C waited for the exporter's retries of every batch left, 15 s and more each
    port = free_port()
    arguments = ["simulate", "--endpoint", f"http://127.0.0.1:{port}", "--duration", "7d"]
    with RecordingReceiver(keep_requests=False, port=port) as receiver, command(*arguments) as run:
        _wait_for_spans(receiver, run)
        receiver.__exit__(None, None, None)
        run.log(AWAY, seconds=15)
        seconds = run.stop(signal.SIGINT)
    assert seconds < 5, run.output()
    assert run.process.returncode == 1, run.output()  # some spans could not be exported
    emitted, exported, failed = _summary(run.stderr)
    assert exported == receiver.span_count and failed == emitted - exported > 0
    assert "Traceback" not in run.output()
    assert any("the spans not sent yet are counted as failed" in line for line in run.stderr)
