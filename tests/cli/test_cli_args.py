"""Every command refuses arguments that are not UTF-8 with one line naming the option, and
options of one value given more than once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from seamwatch.cli import app
from seamwatch.cli_args import repeated_option

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
    shown = "INV-\\xff" if "INV-" in args[-1] else "\\xff"
    assert (
        result.output == f"Error: {named} is not UTF-8 text (got '{shown}'); write it in UTF-8.\n"
    )


def test_an_option_name_that_is_not_utf8_is_refused():
    result = CliRunner().invoke(app, ["lineage", f"--k{NOT_UTF8}y", "a"])

    assert result.exit_code == 2
    assert result.output == (
        "Error: the option name '--k\\xffy' is not UTF-8 text; check the command line.\n"
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
    assert result.stderr == b"Error: --key is not UTF-8 text (got '\\xff'); write it in UTF-8.\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        # a data directory of that name was taken as written
        (
            "SEAMWATCH_DATA_DIR",
            f"/srv/d{NOT_UTF8}",
            "SEAMWATCH_DATA_DIR is not UTF-8 text (got '/srv/d\\xff'); write it in UTF-8.",
        ),
        (
            "SEAMWATCH_CLICKHOUSE_URL",
            f"http://ana:pass{NOT_UTF8}@127.0.0.1:8123/x",
            "SEAMWATCH_CLICKHOUSE_URL is not UTF-8 text (got 'http://ana:***@127.0.0.1:8123/x'); "
            "write it in UTF-8.",
        ),
        # a secret, or a variable a notification file may name for one, is never shown
        (
            "SEAMWATCH_AUTH_TOKEN",
            f"t{NOT_UTF8}",
            "SEAMWATCH_AUTH_TOKEN is not UTF-8 text; write it in UTF-8.",
        ),
        (
            "SEAMWATCH_SEVERITY_FILE",
            NOT_UTF8,
            "SEAMWATCH_SEVERITY_FILE is not UTF-8 text; write it in UTF-8.",
        ),
    ],
)
def test_a_variable_that_is_not_utf8_is_refused_up_front_naming_it(
    tmp_path, monkeypatch, variable, value, message
):
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(app, ["alerts", "silences"], env={variable: value})

    assert result.exit_code == 2
    assert result.output == f"Error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_every_argument_and_variable_that_is_not_utf8_is_refused_in_one_round():
    env = {"SEAMWATCH_DATABASE": NOT_UTF8, "SEAMWATCH_NOTIFY_FILE": NOT_UTF8}

    result = CliRunner().invoke(app, ["lineage", "--key", NOT_UTF8], env=env)

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "Error: --key is not UTF-8 text (got '\\xff'); write it in UTF-8.",
        "Error: SEAMWATCH_DATABASE is not UTF-8 text (got '\\xff'); write it in UTF-8.",
        "Error: SEAMWATCH_NOTIFY_FILE is not UTF-8 text (got '\\xff'); write it in UTF-8.",
    ]


def test_a_variable_of_a_real_environment_is_refused_without_a_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SEAMWATCH_DATA_DIR": b"\xff"}
    env = {os.fsencode(name): os.fsencode(value) for name, value in env.items()}
    env[b"SEAMWATCH_\xfe"] = b"1"

    result = subprocess.run(
        [sys.executable, "-m", "seamwatch", "alerts", "silences"],
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr == (
        b"Error: SEAMWATCH_DATA_DIR is not UTF-8 text (got '\\xff'); write it in UTF-8.\n"
        b"Error: the environment variable name 'SEAMWATCH_\\xfe' is not UTF-8 text; "
        b"rename or unset it.\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_variable_is_warned_of_once_with_the_setting_it_probably_meant():
    # it was ignored silently, so the default was used without a word
    env = {
        "SEAMWATCH_HEADER_TIMEOUT_SECOND": "3",
        "seamwatch_data_dirr": "x",
        "SEAMWATCH_TYPO_SETTING": "1",
        "SEAMWATCH_SEVERITY_FILE": "severity.yaml",  # read beside the settings
        "SEAMWATCH_EVAL_DATA_DIR": "data",
        "seamwatch_database": "db",  # settings are read whatever the case of their name
    }

    result = CliRunner().invoke(app, ["alerts", "--help"], env=env)

    assert result.exit_code == 0
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        "Warning: SEAMWATCH_HEADER_TIMEOUT_SECOND is not a Seamwatch setting and is ignored; "
        "did you mean SEAMWATCH_HEADER_TIMEOUT_SECONDS?",
        "Warning: SEAMWATCH_TYPO_SETTING is not a Seamwatch setting and is ignored.",
        "Warning: seamwatch_data_dirr is not a Seamwatch setting and is ignored; "
        "did you mean SEAMWATCH_DATA_DIR?",
    ]


def test_every_variable_the_code_reads_is_known():
    from seamwatch.settings import known_variables

    named = set()
    packages = ("collector", "dashboard", "detectors", "lineage", "notify", "sample_data")
    for package in (*packages, "seamwatch", "storage"):
        for source in (REPO_ROOT / package).rglob("*.py"):
            named |= set(re.findall(r"\bSEAMWATCH_[A-Z0-9_]*[A-Z0-9]", source.read_text()))
    assert named - known_variables() == set()


def _options_of_one_value(command, path=()):
    """(command path, option name) of every option of one value of every command."""
    for param in command.params:
        if param.param_type_name == "option" and not (
            param.is_flag or param.count or param.multiple
        ):
            yield [*path], param.opts[0]
    for name, sub in getattr(command, "commands", {}).items():
        yield from _options_of_one_value(sub, (*path, name))


@pytest.mark.parametrize(
    ("path", "option"),
    list(_options_of_one_value(get_command(app))),
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_every_option_of_one_value_given_twice_is_refused(path, option):
    # the command line library kept the last value and dropped the others without a word;
    # asked of the check alone, since a command that took the options would run
    problem = repeated_option(get_command(app), [*path, option, "1", f"{option}=2"])

    assert problem is not None
    assert problem.startswith(
        f"{option} is given twice ('1', '2'), and it takes one value: only the last would count; "
    )


def test_an_option_given_twice_is_one_error_line_before_the_command_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no store of the working folder is read
    result = CliRunner().invoke(app, ["lineage", "--key", "INV-1", "--key", "INV-2"])

    assert result.exit_code == 2
    assert result.output == (
        "Error: --key is given twice ('INV-1', 'INV-2'), and it takes one value: only the last "
        "would count; give --key once.\n"
    )


def test_an_option_value_that_looks_like_the_option_is_no_repeat(tmp_path):
    # --reason takes "--flow" as its text: the command line gives --flow once
    args = ["alerts", "silence", "--for", "1h", "--reason", "--flow", "--flow", "x"]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "none")])

    assert result.exit_code == 2
    assert result.output.startswith("Error: no data directory at ")


def test_a_flag_given_twice_is_taken(tmp_path):
    result = CliRunner().invoke(
        app, ["alerts", "silences", "--json", "--json", "--data-dir", str(tmp_path / "none")]
    )

    assert result.output.startswith("Error: no data directory at ")


@pytest.mark.parametrize(
    ("args", "named", "refusal"),
    [
        (["simulate", "--seed", "abc"], "--seed", "'abc' is not a whole number."),
        (["simulate", "--run", "1.5"], "--run", "'1.5' is not a whole number."),
        (["up", "--otlp-http-port", "http"], "--otlp-http-port", "'http' is not a whole number."),
        (["bench", "detect", "--flows", "1e3x"], "--flows", "'1e3x' is not a whole number."),
        (["evaluate", "--simulator", "--days", "two"], "--days", "'two' is not a number."),
    ],
)
def test_a_number_option_given_text_quotes_it_and_says_what_number_it_wants(args, named, refusal):
    # typer's words were pydantic's, without the value: "Input should be a valid integer,
    # unable to parse string as an integer"
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2
    assert f"Error: Invalid value for '{named}': {refusal}" in result.output
    assert "Input should be" not in result.output
