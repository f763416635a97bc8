"""The command line: clear messages for user mistakes, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seamwatch.cli import app
from tests.loopback_tcp import free_port

runner = CliRunner()
COLLECTOR_ON_FREE_PORTS = [
    *(sys.executable, "-m", "seamwatch", "collector"),
    *("--otlp-http-port", "0", "--otlp-grpc-port", "0"),
]


def test_bad_port_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("SEAMWATCH_OTLP_HTTP_PORT", "99999")
    result = runner.invoke(app, ["collector"])
    assert result.exit_code == 2
    assert "SEAMWATCH_OTLP_HTTP_PORT" in result.output
    assert "99999" in result.output
    assert "Traceback" not in result.output


def test_bad_clickhouse_url_says_what_it_should_look_like():
    result = runner.invoke(app, ["collector", "--clickhouse-url", "localhost:8123"])
    assert result.exit_code == 2
    assert "http://user:password@host:8123/database" in result.output


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        # a traceback from urllib.parse
        ("http://u:hunter2@127.0.0.1:99999/sw", "its port must be a number from 1 to 65535"),
        ("http://u:hunter2@127.0.0.1:8l23/sw", "its port must be a number from 1 to 65535"),
        # "Cannot reach the ClickHouse server": now a server that is down is waited for
        ("http://u:hunter2@click house:8123/sw", "host 'click house' is not a host name"),
        ("http://u:hunter2@clickhouse..local:8123/sw", "host 'clickhouse..local' is not a"),
        ("http://u:hunter2@127.0.0.300:8123/sw", "host '127.0.0.300' is not a host name"),
    ],
)
@pytest.mark.parametrize("command", ["up", "collector", "detectors", "dashboard"])
def test_a_server_address_that_can_never_answer_is_refused_at_once(command, url, problem):
    started = time.monotonic()
    result = runner.invoke(app, [command, "--clickhouse-url", url])
    assert result.exit_code == 2, result.output
    assert time.monotonic() - started < 5
    assert result.stderr.startswith("Error: Invalid settings:\n  clickhouse_url (--clickhouse-url)")
    assert problem in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.output


def test_bad_backfill_duration_is_refused():
    result = runner.invoke(app, ["up", "--demo", "--backfill", "a week"])
    assert result.exit_code == 2
    assert "not a duration" in result.output


def test_help_lists_the_roles():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "collector", "dashboard"):
        assert command in result.output


def test_second_process_on_the_same_data_directory_gets_a_clear_message(tmp_path: Path):
    env = {**os.environ, "SEAMWATCH_DATA_DIR": str(tmp_path / "data")}
    holder = subprocess.Popen(
        COLLECTOR_ON_FREE_PORTS,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "OTLP/HTTP receiver" in _read_until(holder, "OTLP/HTTP receiver")
        second = subprocess.run(
            COLLECTOR_ON_FREE_PORTS,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.terminate()
        holder.wait(30)
    assert second.returncode == 1
    assert "in use by another Seamwatch process" in second.stderr
    assert f"pid {holder.pid}" in second.stderr
    assert "Traceback" not in second.stderr


def _read_until(process: subprocess.Popen, marker: str, timeout_seconds: float = 60) -> str:
    seen = ""
    deadline = time.monotonic() + timeout_seconds
    while marker not in seen and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
    return seen


def test_bad_database_in_the_server_url_is_a_settings_error():
    result = runner.invoke(app, ["collector", "--clickhouse-url", "http://127.0.0.1:1/bad-db"])
    assert result.exit_code == 2
    assert "bad-db" in result.output
    assert "Traceback" not in result.output


def test_help_shows_the_environment_variable_of_each_option():
    result = runner.invoke(app, ["up", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for variable in ("SEAMWATCH_DATA_DIR", "SEAMWATCH_OTLP_HTTP_PORT", "SEAMWATCH_DASHBOARD_PORT"):
        assert variable in result.output
    for flag in ("--otlp-http-host", "--otlp-grpc-host", "--otlp-grpc-port"):
        assert flag in result.output


def test_taken_dashboard_port_is_reported_before_anything_starts(tmp_path: Path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(
            app,
            ["up", "--data-dir", str(tmp_path / "d"), "--dashboard-port", str(port)],
        )
    assert result.exit_code == 1
    assert "SEAMWATCH_DASHBOARD_PORT" in result.output
    assert "Seamwatch is running" not in result.output
    assert not (tmp_path / "d").exists()


def test_unwritable_labels_file_is_refused_before_the_demo_starts(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(
        app, ["up", "--demo", "--data-dir", str(tmp_path / "d"), "--labels", str(blocker / "x")]
    )
    assert result.exit_code == 2
    assert "Cannot write incident labels" in result.output
    assert "Traceback" not in result.output


def test_simulate_names_a_bad_endpoint_without_pydantic_noise():
    result = runner.invoke(app, ["simulate", "--endpoint", "notaurl", "--duration", "1h"])
    assert result.exit_code == 2
    assert "http(s) URL" in result.output
    assert "errors.pydantic.dev" not in result.output


def test_a_queue_smaller_than_a_batch_is_a_settings_error(monkeypatch):
    monkeypatch.setenv("SEAMWATCH_MAX_QUEUE_SPANS", "10")
    result = runner.invoke(app, ["collector"])
    assert result.exit_code == 2
    assert "max_queue_spans (10) must be at least batch_max_spans (40000)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("variable", ["HEADER_TIMEOUT_SECONDS", "BODY_TIMEOUT_SECONDS"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("nan", "Input should be a number, not NaN"),
        ("NaN", "Input should be a number, not NaN"),
        ("inf", "Input should be a finite number"),
        ("-inf", "Input should be a finite number"),
    ],
)
def test_a_float_setting_that_is_nan_or_infinite_is_called_so(
    monkeypatch, variable, value, problem
):
    # a NaN was "Input should be less than or equal to 3600"
    from seamwatch.settings import SettingsError, load_settings

    monkeypatch.setenv(f"SEAMWATCH_{variable}", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).splitlines()[1:] == [
        f"  {variable.lower()} (SEAMWATCH_{variable}) = {value!r}: {problem}"
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EVALUATION_DELAY_SECONDS", "1_0"),
        ("OTLP_HTTP_PORT", "4_318"),
        ("BATCH_MAX_SPANS", "1_000"),
    ],
)
def test_a_number_setting_written_with_underscores_is_refused(monkeypatch, variable, value):
    # "1_0" was read as 10, as Python reads a literal, though a span's "1_0" is refused
    from seamwatch.settings import SettingsError, load_settings

    monkeypatch.setenv(f"SEAMWATCH_{variable}", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).splitlines()[1:] == [
        f"  {variable.lower()} (SEAMWATCH_{variable}) = {value!r}: write the number without "
        "'_' (digits, a sign and a dot only)"
    ]


def _collector_alone(tmp_path: Path, *arguments: str, **environment: str):
    # a port given in ``arguments`` takes the place of its free-port default: an option is
    # given once
    free = COLLECTOR_ON_FREE_PORTS[4:]
    ports = [part for at in (0, 2) if free[at] not in arguments for part in free[at : at + 2]]
    return subprocess.run(
        [*COLLECTOR_ON_FREE_PORTS[:4], *ports, "--data-dir", str(tmp_path / "data"), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **environment},
    )


def test_a_spool_directory_that_is_a_file_is_one_clear_line(tmp_path: Path):
    (tmp_path / "not-a-folder").write_text("")
    # a setting to correct, so exit code 2 as for any other, not 1 (the machine in the way)
    result = _collector_alone(tmp_path, SEAMWATCH_SPOOL_DIR=str(tmp_path / "not-a-folder"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: Invalid settings:",
        f"  spool_dir (SEAMWATCH_SPOOL_DIR) = '{tmp_path / 'not-a-folder'}': is a file, not a "
        "folder; name a folder, or unset it to spool in the data dir",
    ]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "option, variable",
    [
        ("--otlp-http-port", "SEAMWATCH_OTLP_HTTP_PORT"),
        ("--otlp-grpc-port", "SEAMWATCH_OTLP_GRPC_PORT"),
    ],
)
def test_a_taken_receiver_port_is_one_clear_line(tmp_path: Path, option: str, variable: str):
    # uvicorn's "[Errno 98]" and gRPC's "add_port.cc" lines came first, after the schema was
    # migrated into a new store
    with _taken_port() as port:
        result = _collector_alone(tmp_path, option, str(port))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: The {'OTLP/HTTP' if 'http' in option else 'OTLP/gRPC'} receiver cannot listen "
        f"on 127.0.0.1:{port}: another process is using the port. Stop that process, or choose "
        f"another port with {option} or {variable}."
    ]
    assert not (tmp_path / "data").exists()


def test_a_taken_receiver_port_stops_up_before_the_store_is_opened(tmp_path: Path):
    with _taken_port() as port:
        result = runner.invoke(
            app,
            ["up", "--data-dir", str(tmp_path / "d"), "--otlp-http-port", str(port)],
        )
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: The OTLP/HTTP receiver cannot listen on 127.0.0.1:{port}"
    )
    assert "--otlp-http-port or SEAMWATCH_OTLP_HTTP_PORT" in result.output
    assert "Errno" not in result.output
    assert not (tmp_path / "d").exists()


def test_every_taken_port_is_named_at_once(tmp_path: Path):
    # they were reported one at a time: three tries to find the three taken ports
    with _taken_port() as http_port, _taken_port() as grpc_port:
        result = _collector_alone(
            tmp_path, "--otlp-http-port", str(http_port), "--otlp-grpc-port", str(grpc_port)
        )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"Error: The OTLP/HTTP receiver cannot listen on 127.0.0.1:{http_port}"
    )
    assert lines[1].startswith(f"The OTLP/gRPC receiver cannot listen on 127.0.0.1:{grpc_port}")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "command, first, second",
    [
        # with both on 8501 it printed "Seamwatch is running.", then Streamlit's
        # "Port 8501 is not available"
        (
            ["up", "--otlp-http-port", "{port}", "--dashboard-port", "{port}"],
            "OTLP/HTTP receiver (--otlp-http-port or SEAMWATCH_OTLP_HTTP_PORT)",
            "dashboard (--dashboard-port or SEAMWATCH_DASHBOARD_PORT)",
        ),
        # uvicorn's "ERROR: [Errno 98]" came first, then an error blaming another process
        (
            ["collector", "--otlp-http-port", "{port}", "--otlp-grpc-port", "{port}"],
            "OTLP/HTTP receiver (--otlp-http-port or SEAMWATCH_OTLP_HTTP_PORT)",
            "OTLP/gRPC receiver (--otlp-grpc-port or SEAMWATCH_OTLP_GRPC_PORT)",
        ),
    ],
)
def test_two_listeners_on_one_port_are_a_settings_error_before_anything_starts(
    tmp_path: Path, command: list[str], first: str, second: str
):
    # free ports throughout, so a process holding a default port on this machine (a demo
    # running) adds no "port taken" line of its own
    port, grpc_port = free_port(), free_port()
    arguments = [part.format(port=port) for part in command]
    if "--otlp-grpc-port" not in arguments:
        arguments += ["--otlp-grpc-port", str(grpc_port)]
    result = subprocess.run(
        [sys.executable, "-m", "seamwatch", *arguments, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: The {first} and the {second} are both set to listen on 127.0.0.1:{port}; "
        "choose another port for one of them."
    ]
    assert not (tmp_path / "data").exists()


def test_every_address_on_a_port_overlaps_a_loopback_one_there():
    from seamwatch.settings import Settings
    from seamwatch.stack import PortClash, ensure_ports_free

    settings = Settings(otlp_http_host="0.0.0.0", otlp_http_port=9000, dashboard_port=9000)
    with pytest.raises(PortClash, match="0.0.0.0:9000 and 127.0.0.1:9000, which overlap"):
        ensure_ports_free(settings, receivers=True, dashboard=True)


def test_two_loopback_addresses_may_share_a_port():
    from seamwatch.settings import Settings
    from seamwatch.stack import ensure_ports_free

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        otlp_http_port=port, otlp_grpc_port=-1, dashboard_host="127.0.0.2", dashboard_port=port
    )
    ensure_ports_free(settings, receivers=True, dashboard=True)  # no error


@contextmanager
def _taken_port() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_hash_keys_without_a_salt_are_refused(monkeypatch):
    monkeypatch.setenv("SEAMWATCH_HASH_KEYS", "user.id")
    result = runner.invoke(app, ["collector"])
    assert result.exit_code == 2
    assert "SEAMWATCH_HASH_KEYS needs SEAMWATCH_HASH_SALT" in result.output


def test_a_token_with_spaces_is_refused_and_an_empty_one_means_none(monkeypatch):
    from seamwatch.settings import load_settings

    monkeypatch.setenv("SEAMWATCH_AUTH_TOKEN", "open sesame")
    result = runner.invoke(app, ["collector"])
    assert result.exit_code == 2
    assert "auth_token (SEAMWATCH_AUTH_TOKEN): must not contain spaces" in result.output
    assert "sesame" not in result.output
    monkeypatch.setenv("SEAMWATCH_AUTH_TOKEN", "")
    assert load_settings().auth_token is None


def test_severity_file_advice_names_only_what_each_command_takes(tmp_path: Path, monkeypatch):
    # up and detectors said "Pass --severity FILE", an option neither of them has
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(tmp_path / "missing.yaml"))
    monkeypatch.delenv("SEAMWATCH_NOTIFY_FILE", raising=False)
    data = ["--data-dir", str(tmp_path / "data")]
    ports = ["--otlp-http-port", "0", "--otlp-grpc-port", "-1", "--no-dashboard"]
    receivers = ["--otlp-http-port", "0", "--otlp-grpc-port", "-1"]
    commands = (
        ["detectors", *data],
        ["up", *data, *ports],
        # alone, they serve the alert listings ranked with it, so they check it as up does
        ["collector", *data, *receivers],
        ["dashboard", *data, "--dashboard-port", "0"],
    )
    for command in commands:
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert f"Cannot read severity file '{tmp_path / 'missing.yaml'}'" in result.output
        assert (
            "Set SEAMWATCH_SEVERITY_FILE to a readable severity file, or unset it to use the "
            "built-in one." in result.output
        )
        assert "--severity" not in result.output
        assert "--severity" not in runner.invoke(app, [command[0], "--help"]).output
        assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists()


def test_a_ctrl_c_while_the_command_line_loads_ends_quietly_with_130(monkeypatch, capsys):
    # the console script named the CLI itself, so a Ctrl-C during its imports (about a
    # second) printed a KeyboardInterrupt traceback
    import seamwatch.cli
    from seamwatch.console import main

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(seamwatch.cli, "app", interrupted)
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 130
    assert capsys.readouterr().err == ""


def test_an_empty_data_directory_variable_is_refused(monkeypatch, tmp_path: Path):
    # Path("") is the working folder: the store, spool and lock were scattered there
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEAMWATCH_DATA_DIR", "")
    result = runner.invoke(app, ["detectors"])
    assert result.exit_code == 2
    assert "data_dir (SEAMWATCH_DATA_DIR) = '': is empty; name a folder" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_the_default_data_directory_goes_is_a_settings_error(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".seamwatch").write_text("notes")
    result = runner.invoke(app, ["detectors", "--once"])
    assert result.exit_code == 2
    assert "data_dir (SEAMWATCH_DATA_DIR) = '.seamwatch': is a file, not a folder" in result.stderr


@pytest.mark.parametrize(
    "command",
    [["up"], ["alerts"], ["alerts", "silences"], ["lineage", "SO-1"], ["collector"], ["detectors"]],
)
def test_an_empty_data_directory_option_is_refused(monkeypatch, tmp_path: Path, command):
    # typed as a path, "" became the working folder before the settings could see it
    monkeypatch.chdir(tmp_path)
    # the refusal came under the command line library's usage lines, four lines in all
    result = runner.invoke(app, [*command, "--data-dir", ""])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: --data-dir is empty; name a folder, e.g. .seamwatch, or leave the option out."
    ]
    assert list(tmp_path.iterdir()) == []


def test_localhost_overlaps_the_loopback_address_on_one_port():
    # --otlp-http-host localhost with the dashboard's 127.0.0.1:8501 created the store, started
    # the receivers, then stopped on Streamlit's "Port 8501 is not available" with exit 1
    from seamwatch.settings import Settings
    from seamwatch.stack import PortClash, ensure_ports_free

    settings = Settings(otlp_http_host="localhost", otlp_http_port=8501, dashboard_port=8501)
    with pytest.raises(PortClash, match="localhost:8501 and 127.0.0.1:8501, which overlap"):
        ensure_ports_free(settings, receivers=True, dashboard=True)


def test_three_listeners_on_one_port_name_every_pair():
    # only two of the three pairs were named, so fixing one port revealed another clash
    from seamwatch.settings import Settings
    from seamwatch.stack import PortClash, ensure_ports_free

    settings = Settings(otlp_http_port=9000, otlp_grpc_port=9000, dashboard_port=9000)
    with pytest.raises(PortClash) as raised:
        ensure_ports_free(settings, receivers=True, dashboard=True)
    pairs = [line.split(" are ")[0] for line in str(raised.value).splitlines()]
    assert pairs == [
        "The OTLP/HTTP receiver (--otlp-http-port or SEAMWATCH_OTLP_HTTP_PORT) and the "
        "OTLP/gRPC receiver (--otlp-grpc-port or SEAMWATCH_OTLP_GRPC_PORT)",
        "The OTLP/HTTP receiver (--otlp-http-port or SEAMWATCH_OTLP_HTTP_PORT) and the "
        "dashboard (--dashboard-port or SEAMWATCH_DASHBOARD_PORT)",
        "The OTLP/gRPC receiver (--otlp-grpc-port or SEAMWATCH_OTLP_GRPC_PORT) and the "
        "dashboard (--dashboard-port or SEAMWATCH_DASHBOARD_PORT)",
    ]


def test_up_names_a_port_clash_and_both_broken_files_in_one_error(tmp_path: Path):
    # only the port clash was named; each file's errors came one round after another
    severity = tmp_path / "severity.yaml"
    severity.write_text("tiers:\n  critical: {weight: high}\n")
    notify = tmp_path / "notify.yaml"
    notify.write_text("destinations:\n  - name: a\n    kind: slack\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seamwatch",
            "up",
            "--otlp-http-port",
            "8501",
            "--notify-file",
            str(notify),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SEAMWATCH_SEVERITY_FILE": str(severity)},
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: The OTLP/HTTP receiver (--otlp-http-port")
    assert any(f"{severity}, line 2, field tiers.critical.weight" in line for line in lines)
    assert any(
        f"{notify}, line 2, field destinations.0: give exactly one" in line for line in lines
    )
    assert not (tmp_path / "data").exists()


def test_up_names_a_broken_file_and_a_taken_port_in_one_error(monkeypatch, tmp_path: Path):
    # the taken port was named only once the file was fixed: two rounds for one start
    severity = tmp_path / "severity.yaml"
    severity.write_text("tiers:\n  critical: {weight: high}\n")
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(severity))
    with _taken_port() as port:
        result = runner.invoke(
            app,
            ["up", "--data-dir", str(tmp_path / "d"), "--otlp-http-port", str(port)],
        )
    assert result.exit_code == 2  # the file is a setting to correct; the port says the rest
    assert f"{severity}, line 2, field tiers.critical.weight" in result.output
    assert (
        f"The OTLP/HTTP receiver cannot listen on 127.0.0.1:{port}: another process is using "
        "the port." in result.output
    )
    assert "Traceback" not in result.output
    assert not (tmp_path / "d").exists()


def test_version_prints_the_version_of_the_installed_package():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.output == f"seamwatch {version('seamwatch')}\n"


BROKEN_NOTIFY = "destinations:\n  - name: a\n    kind: slack\n"
BROKEN_SEVERITY = "tiers:\n  critical: {weight: high}\n"


@pytest.mark.parametrize("command", [["up"], ["detectors", "--once"]])
def test_a_bad_setting_and_both_broken_files_are_named_in_one_error(
    monkeypatch, tmp_path: Path, command
):
    # the setting alone was named; each file's errors came one round after another
    severity, notify = tmp_path / "severity.yaml", tmp_path / "notify.yaml"
    severity.write_text(BROKEN_SEVERITY)
    notify.write_text(BROKEN_NOTIFY)
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(severity))
    monkeypatch.setenv("SEAMWATCH_RETRY_AFTER_SECONDS", "soon")

    result = runner.invoke(
        app, [*command, "--data-dir", str(tmp_path / "d"), "--notify-file", str(notify)]
    )

    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        "Error: Invalid settings:",
        "  retry_after_seconds (SEAMWATCH_RETRY_AFTER_SECONDS) = 'soon': Input should be a "
        "valid integer, unable to parse string as an integer",
    ]
    assert sum(f"{severity}, line 2, field tiers.critical.weight" in line for line in lines) == 1
    assert sum(f"{notify}, line 2, field destinations.0: give" in line for line in lines) == 1
    assert not (tmp_path / "d").exists()


def test_the_detectors_name_both_broken_files_in_one_error(monkeypatch, tmp_path: Path):
    # only the severity file was named; the notification file's errors came a run later
    severity, notify = tmp_path / "severity.yaml", tmp_path / "notify.yaml"
    severity.write_text(BROKEN_SEVERITY)
    notify.write_text(BROKEN_NOTIFY)
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(severity))

    result = runner.invoke(
        app, ["detectors", "--once", "--data-dir", str(tmp_path), "--notify-file", str(notify)]
    )

    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "Error: Invalid severity file:"
    assert sum(f"{severity}, line 2, field tiers.critical.weight" in line for line in lines) == 1
    assert sum(f"{notify}, line 2, field destinations.0: give" in line for line in lines) == 1


def test_a_data_dir_under_a_file_is_a_settings_error_naming_the_file(monkeypatch, tmp_path):
    # it exited 1 when the store was opened ("Not a directory"), as if the machine were at
    # fault, and alone, where a data dir that is a file is reported with the other settings
    (tmp_path / "notes.txt").write_text("notes")
    monkeypatch.setenv("SEAMWATCH_DATA_DIR", str(tmp_path / "notes.txt" / "store"))
    result = runner.invoke(app, ["collector", "--otlp-grpc-port", "70000"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: Invalid settings:",
        f"  data_dir (SEAMWATCH_DATA_DIR) = '{tmp_path / 'notes.txt' / 'store'}': lies under "
        f"'{tmp_path / 'notes.txt'}', which is a file, not a folder; name a folder for the store",
        "  otlp_grpc_port (--otlp-grpc-port) = 70000: Input should be less than or equal to 65535",
    ]
