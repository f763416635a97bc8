"""Every command refuses arguments that are not UTF-8 with one line naming the option."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seamwatch.cli import app

REPO_ROOT = Path(__file__).resolve().parents[2]
# what Python makes of the byte 0xff on a command line (surrogateescape)
NOT_UTF8 = "\udcff"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["lineage", "--key", f"INV-{NOT_UTF8}"], "--key"),
        (["lineage", f"--key=INV-{NOT_UTF8}"], "--key"),
        (["lineage", "--json", NOT_UTF8], "argument 1 of lineage"),
        (["reconcile", "--since", NOT_UTF8], "--since"),
        (["alerts", "--data-dir", NOT_UTF8, "silences"], "--data-dir"),
        (["alerts", "silence", "--for", "1h", "--flow", NOT_UTF8], "--flow"),
        (["alerts", "ack", NOT_UTF8, "--by", "ana"], "ALERT_ID"),
        (["alerts", "ack", "a1", "--by", NOT_UTF8], "--by"),
        (["notify", "check", "--notify-file", NOT_UTF8], "--notify-file"),
        (["simulate", "--endpoint", NOT_UTF8], "--endpoint"),
        ([NOT_UTF8], "the command name"),
        # a store option before its command: it was "the command name"
        (["--data-dir", NOT_UTF8, "alerts"], "--data-dir"),
        (["--clickhouse-url", NOT_UTF8, "alerts", "silences"], "--clickhouse-url"),
    ],
)
def test_an_argument_that_is_not_utf8_is_one_error_line_naming_it(args, named):
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2
    shown = "INV-\\\\xff" if "INV-" in args[-1] else "\\\\xff"
    assert (
        result.output == f"Error: {named} is not UTF-8 text (got '{shown}'); write it in UTF-8.\n"
    )


def test_an_option_name_that_is_not_utf8_is_refused():
    result = CliRunner().invoke(app, ["lineage", f"--k{NOT_UTF8}y", "a"])

    assert result.exit_code == 2
    assert result.output == (
        "Error: the option name '--k\\\\xffy' is not UTF-8 text; check the command line.\n"
    )


def test_the_bytes_of_a_real_command_line_are_refused_without_a_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SEAMWATCH_DATA_DIR": str(tmp_path)}

    result = subprocess.run(
        [sys.executable, "-m", "seamwatch", "lineage", "--key", b"\xff"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr == b"Error: --key is not UTF-8 text (got '\\\\xff'); write it in UTF-8.\n"
    assert list(tmp_path.iterdir()) == []
