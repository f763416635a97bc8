import doctest
import gzip
import importlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from detectors.cli import bench_detect_command, detect_series_command, evaluate_command
from detectors.corpus import also_rows

app = typer.Typer()
app.command("detect-series")(detect_series_command)
app.command("evaluate")(evaluate_command)
app.command("bench-detect")(bench_detect_command)
runner = CliRunner()
ISO_ADVICE = (
    "write ISO 8601 such as 2024-01-03 14:00:00 (UTC, or add Z or an offset such as +01:00)"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "series.csv"
    path.write_text(text)
    return path


def test_detect_series_writes_one_row_per_input_row(tmp_path):
    rows = [f"2024-01-01T{h // 60:02d}:{h % 60:02d}:00Z,{100 + (h % 3)},x" for h in range(120)]
    rows[90] = "2024-01-01T01:30:00Z,900,x"
    path = write(tmp_path, "TimeStamp,VALUE,note\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "timestamp,score,flag"
    assert len(lines) == 121
    assert [i for i, line in enumerate(lines[1:]) if line.endswith(",1")] == [90]
    assert lines[91].startswith("2024-01-01T01:30:00Z,")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,value\n2024-01-01,1\n", "no 'timestamp' column"),
        ("timestamp,latency\n2024-01-01,1\n", "no 'value' column"),
        ("timestamp,value\n2024-01-01,fast\n", "value 'fast' on data row 1 is not a plain number"),
        # a percentage or thousands separator read "expected a finite number of at most 3.4e+38"
        (
            "timestamp,value\n2024-01-01,107.01%\n",
            "value '107.01%' on data row 1 is not a plain number; write digits with a point for "
            "decimals, without a % sign or thousands separators (1107.5, not 1,107.5)",
        ),
        ('timestamp,value\n2024-01-01,"1,107.5"\n', "value '1,107.5' on data row 1 is not a plain"),
        # an offset no clock uses was taken as written
        (
            "timestamp,value\n2024-01-01T00:00+14:45,1\n",
            "timestamp '2024-01-01T00:00+14:45' on data row 1 has the UTC offset +14:45, which no "
            "clock uses; offsets run from -12:00 to +14:00",
        ),
        ("timestamp,value\n2024-01-01T00:00-1230,1\n", "has the UTC offset -1230, which no clock"),
        ("timestamp,value\nyesterday,1\n", "timestamp 'yesterday' on data row 1 is not ISO 8601"),
        # a decimal comma once read as the value before it, silently
        ("timestamp,value\n2024-01-01T00:00:00,104,8\n", "data row 1 has 3 fields"),
        ("timestamp,value\n2024-01-01,inf\n", "unparsable value 'inf' on data row 1"),
        ("timestamp,value\n2024-01-01,1e39\n", "unparsable value '1e39' on data row 1"),
        ("timestamp,value,Value\n2024-01-01,1,2\n", "two 'value' columns, 2 and 3"),
        # pandas renamed the second 'timestamp.1' and the file was read without a word
        (
            "timestamp,value,timestamp\n2024-01-01,1,2\n",
            "two 'timestamp' columns, 1 and 3 ('timestamp' and 'timestamp'; names are "
            "matched in any case); keep one",
        ),
        ("Note,timestamp,value,NOTE \n2024-01-01,1,2,3\n", "two 'note' columns, 1 and 4"),
        ("timestamp;value\n2024-01-01;1,5\n", "looks semicolon-separated; separate the fields"),
        ("timestamp\tvalue\n2024-01-01\t1\n", "looks tab-separated; separate the fields"),
        # 10 ms rows were read as per-minute data, without a word
        (
            "timestamp,value\n"
            + "".join(f"2024-01-01T00:00:00.{i * 10:03d},1\n" for i in range(30)),
            "the rows are 10 ms apart; series are judged at one row a second or coarser",
        ),
        # a negative rate was scored 0 without a word
        (
            "timestamp,value\n2024-01-01T00:00,0.01\n2024-01-01T01:00,-0.2\n",
            "data row 2 has a negative error rate (-0.2); a rate of failures is zero or more",
        ),
        # pandas said "EOF inside string starting at row 2"
        (
            'timestamp,value\n2024-01-01,1\n2024-01-02,"2\n2024-01-03,3\n',
            "line 3: a double quote opened there is never closed; close it or remove it",
        ),
    ],
)
def test_detect_series_rejects_bad_input(tmp_path, content, message):
    path = write(tmp_path, content)
    result = runner.invoke(app, ["detect-series", "--kind", "error_rate", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_negative_value_is_a_latency_series_own_business(tmp_path):
    # latency takes any metric (NAB's generic series go through it), so no sign is refused
    path = write(tmp_path, "timestamp,value\n2024-01-01T00:00,-3\n2024-01-01T01:00,-2\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 0, result.output


def test_detect_series_missing_file_and_unknown_kind(tmp_path):
    missing = runner.invoke(app, ["detect-series", "--kind", "latency", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    path = write(tmp_path, "timestamp,value\n")
    unknown = runner.invoke(app, ["detect-series", "--kind", "cpu", str(path)])
    assert unknown.exit_code == 2 and "unknown --kind" in unknown.stderr
    # both at once: the kind was refused alone, and the missing file came next round
    both = runner.invoke(app, ["detect-series", "--kind", "cpu", str(tmp_path / "x")])
    assert both.exit_code == 2
    assert both.stderr.splitlines() == [
        "Error: unknown --kind 'cpu'; expected one of latency, error_rate",
        f"Error: no such file: {tmp_path / 'x'}",
    ]


def test_detect_series_header_only_writes_header(tmp_path):
    path = write(tmp_path, "timestamp,value\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 0
    assert result.stdout == "timestamp,score,flag\n"


def test_evaluate_without_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAMWATCH_EVAL_DATA_DIR", str(tmp_path / "absent"))
    result = runner.invoke(app, ["evaluate"])
    assert result.exit_code == 2
    assert "not found" in result.stderr


def test_evaluate_names_the_folder_it_expects(tmp_path):
    # the set's own folder used to fail on a doubled path (nab/nab/combined_windows.json)
    (tmp_path / "nab").mkdir()
    result = runner.invoke(app, ["evaluate", "--series-dir", str(tmp_path / "nab")])
    assert result.exit_code == 2
    assert "--series-dir takes the folder that holds nab/ and cloud-monitoring/" in result.stderr


def test_evaluate_refuses_a_severity_file_without_the_simulator():
    from seamwatch.cli import app as seamwatch_app

    result = runner.invoke(seamwatch_app, ["evaluate", "--severity", "/nonexistent.yaml"])
    assert result.exit_code == 2
    assert "use it with --simulator" in result.output


@pytest.mark.parametrize(
    "option", [["--series-dir", "/nonexistent"], ["--profile", "standard"], ["--files"]]
)
def test_evaluate_refuses_labelled_series_options_with_the_simulator(option):
    # both were ignored: a one-day run started and printed nothing of the folder or profile
    from seamwatch.cli import app as seamwatch_app

    result = runner.invoke(seamwatch_app, ["evaluate", "--simulator", "--days", "0.01", *option])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {option[0]} applies to the labelled series; leave it out with --simulator, "
        "which judges the simulator's incidents.\n"
    )


@pytest.mark.parametrize(
    ("option", "error"),
    [
        (["--restart-every", "5h"], "--restart-every applies to the simulator"),
        (["--simulator", "--days", "1", "--restart-every", "soon"], "'soon' is not a duration"),
        (["--simulator", "--days", "1", "--restart-every", "30s"], "at least 1m and shorter"),
        (["--simulator", "--days", "1", "--restart-every", "1d"], "shorter than the 1 simulated"),
        # the value given was not quoted
        (["--simulator", "--days", "0"], "--days must be above 0 and at most 28 (got 0)."),
        (["--simulator", "--days", "99"], "--days must be above 0 and at most 28 (got 99)."),
    ],
)
def test_evaluate_refuses_simulator_options_it_cannot_use(option, error):
    from seamwatch.cli import app as seamwatch_app

    result = runner.invoke(seamwatch_app, ["evaluate", *option])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and error in result.stderr
    assert "Traceback" not in result.output


def test_bench_prints_the_runner_figure_and_the_old_one(chdb_data_dir):
    result = runner.invoke(
        app, ["bench-detect", "--flows", "20", "--minutes", "1", "--data-dir", str(chdb_data_dir)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("runner, 20 flows, ")
    assert "% of one core; within the 3 s target" in lines[0]
    assert "series query" in lines[1] and "lineage checks" in lines[1]
    assert lines[2].startswith("the series detectors of detect-series and evaluate")


@pytest.mark.parametrize(
    "module",
    ["alarm", "robust_zscore", "residual_tail", "error_rate", "volume", "category_drift"],
)
def test_docstring_examples(module):
    failures, _ = doctest.testmod(importlib.import_module(f"detectors.{module}"))
    assert failures == 0


@pytest.mark.parametrize(
    "rows",
    [
        # one field more than the header once made pandas take the timestamps as the row index
        ["2024-01-01T00:00:00Z,1,", "2024-01-01T00:01:00Z,2,"],
        # Kiribati's +14:00 and Baker Island's -12:00, the furthest offsets in use: one moment
        ["2024-01-02T14:00+14:00,1", "2024-01-01T12:00-12:00,2"],
    ],
    ids=["trailing comma", "furthest offsets"],
)
def test_detect_series_scores_every_row_as_written(tmp_path, rows):
    path = write(tmp_path, "timestamp,value\n" + "".join(f"{row}\n" for row in rows))
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 0, result.output
    stamps = [row.split(",")[0] for row in rows]
    assert result.stdout.splitlines()[1:] == [f"{stamp},0,0" for stamp in stamps]


@pytest.mark.parametrize(
    ("rows", "row", "written"),
    [
        # a second layout in the same file was read by guessing, with exit 0
        (["2024-01-01 00:00:00", "01/01/2024 00:05"], 2, "01/01/2024 00:05"),
        # read month first, as 3 January, without a word
        (["01/03/2024"], 1, "01/03/2024"),
        (["Jan 2 2024 00:00"], 1, "Jan 2 2024 00:00"),
        (["Tuesday 3 Jan 2024"], 1, "Tuesday 3 Jan 2024"),
        (["2024-01-01T00:00:00Z", "2024-01-01 00:01:00 UTC"], 2, "2024-01-01 00:01:00 UTC"),
        (["20240101T000000"], 1, "20240101T000000"),
    ],
)
def test_detect_series_reads_iso_8601_timestamps_only(tmp_path, rows, row, written):
    path = write(tmp_path, "timestamp,value\n" + "".join(f'"{text}",1\n' for text in rows))
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path}: timestamp {written!r} on data row {row} is not ISO 8601; {ISO_ADVICE}\n"
    )


def test_detect_series_names_a_date_that_does_not_exist(tmp_path):
    path = write(tmp_path, "timestamp,value\n2024-02-28 00:00,1\n2024-02-30 00:00,1\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path}: timestamp '2024-02-30 00:00' on data row 2 is not a real date and "
        f"time; {ISO_ADVICE}\n"
    )


def test_detect_series_reads_every_iso_8601_layout_of_the_labelled_data(tmp_path):
    # NAB writes a space and seconds, the cloud-monitoring set quoted "Z" times and spaces
    rows = [
        "2024-01-01",
        "2024-01-01 00:01",
        "2024-01-01 00:02:00",
        '"2024-01-01T00:03:00Z"',
        "2024-01-01T00:04:00.250",
        "2024-01-01T01:05:00+01:00",
        "2024-01-01T00:06:00-0000",
    ]
    path = write(tmp_path, "timestamp,value\n" + "".join(f"{row},1\n" for row in rows))
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 0, result.output
    assert [line.split(",")[0] for line in result.stdout.splitlines()[1:]] == [
        row.strip('"') for row in rows
    ]


def test_detect_series_names_a_folder_and_reads_standard_input(tmp_path):
    folder = runner.invoke(app, ["detect-series", "--kind", "latency", str(tmp_path)])
    assert folder.exit_code == 2 and "is a folder" in folder.stderr
    piped = runner.invoke(
        app,
        ["detect-series", "--kind", "latency", "-"],
        input="timestamp,value\n2024-01-01T00:00:00Z,1\n",
    )
    assert piped.exit_code == 0, piped.output
    assert piped.stdout.splitlines() == ["timestamp,score,flag", "2024-01-01T00:00:00Z,0,0"]


def test_detect_series_names_a_file_that_is_not_text(tmp_path):
    path = tmp_path / "series.csv"
    path.write_bytes(b"\xff\xfe\x00\x81binary")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2 and "is not UTF-8 text" in result.stderr


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (gzip.compress(b"timestamp,value\n"), "it is gzip-compressed; decompress it first"),
        ("timestamp,value\n".encode("utf-16"), "it is UTF-16 text (Excel's Unicode text)"),
        # without a byte-order mark it decoded as UTF-8 and NUL bytes reached the terminal
        ("timestamp,value\n".encode("utf-16-le"), "it is UTF-16 text; save it as CSV UTF-8"),
        ("timestamp,value\n".encode("utf-16-be"), "it is UTF-16 text; save it as CSV UTF-8"),
        (b"timestamp,value\n2024-01-01,1\x00\n", "it holds NUL bytes"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xa8", "export the sheet as CSV"),
    ],
)
def test_detect_series_says_what_a_file_that_is_not_text_is(tmp_path, data, hint):
    # each was "is not UTF-8 text; expected a CSV file", which did not say what to do
    path = tmp_path / "series.csv"
    path.write_bytes(data)
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path} is not UTF-8 text; it ")
    assert hint in result.stderr
    assert "\x00" not in result.output and len(result.stderr.splitlines()) == 1


def test_detect_series_names_where_a_file_stops_being_utf8(tmp_path):
    # a Latin-1 file was "not UTF-8 text; expected a CSV file", with no place to look
    path = tmp_path / "latin.csv"
    path.write_bytes("timestamp,value\n2024-01-01,1\n2024-01-02,2 café\n".encode("latin-1"))
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path} is not UTF-8 text; byte 0xE9 on line 3, column 17 cannot be read as "
        "UTF-8 (Latin-1?); save the file as CSV UTF-8\n"
    )


def test_detect_series_names_a_later_row_with_extra_fields(tmp_path):
    # pandas once answered "C error: Expected 2 fields in line 52" for a row after the first
    rows = [f"2024-01-01T00:{minute:02d}:00Z,1" for minute in range(60)]
    rows[50] += ",5,6"
    rows[20] += ","  # a trailing comma on a later row is still fine
    path = write(tmp_path, "timestamp,value\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {path}: data row 51 has 4 fields but the header names 2; quote a value that "
        "holds a comma (a decimal comma: use a point)"
    ]


def test_detect_series_reads_standard_input_like_a_file(tmp_path):
    # a decimal comma was once cut off silently from standard input
    content = "timestamp,value\n2024-01-01T00:00:00Z,1,5\n"
    on_disk = runner.invoke(
        app, ["detect-series", "--kind", "latency", str(write(tmp_path, content))]
    )
    piped = runner.invoke(app, ["detect-series", "--kind", "latency", "-"], input=content)
    assert on_disk.exit_code == piped.exit_code == 2
    assert "Error: standard input: data row 1 has 3 fields" in piped.stderr
    empty = runner.invoke(app, ["detect-series", "--kind", "latency", "-"], input="")
    assert empty.exit_code == 2 and "Error: standard input is empty" in empty.stderr


def test_detect_series_names_a_device_instead_of_a_missing_file():
    result = runner.invoke(app, ["detect-series", "--kind", "latency", "/dev/null"])
    assert result.exit_code == 2
    assert result.stderr == "Error: /dev/null is not a regular file; pass a CSV file\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # repeated timestamps are fine (the public labelled sets have them); going back is not
        (
            "timestamp,value\n2024-01-01T01:00:00Z,1\n2024-01-01T01:00:00Z,2\n"
            "2024-01-01T00:00:00Z,3\n",
            "timestamps go backwards at data row 3: '2024-01-01T00:00:00Z' comes after "
            "'2024-01-01T01:00:00Z' on data row 2; sort the rows by time, oldest first",
        ),
        # forwards as written, backwards in UTC: the message says so
        (
            "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00+05:00,2\n",
            "timestamps go backwards at data row 2: '2024-01-01T00:01:00+05:00' comes after "
            "'2024-01-01T00:00:00Z' on data row 1 (in UTC, 2023-12-31 19:01:00 after "
            "2024-01-01 00:00:00); sort the rows by time, oldest first",
        ),
        # pandas reads these as the current time, or a time of day today
        ("timestamp,value\n2024-01-01,1\ntoday,2\n", "timestamp 'today' on data row 2 is not"),
        (
            "timestamp,value\nnow,1\n",
            f"timestamp 'now' on data row 1 is not ISO 8601; {ISO_ADVICE}",
        ),
        # epoch seconds or milliseconds were refused without saying why
        (
            "timestamp,value\n1704067200,1\n",
            "timestamp '1704067200' on data row 1 is not ISO 8601; it looks like a Unix time, "
            f"which is not read; {ISO_ADVICE}",
        ),
        ("timestamp,value\n10:00Z,1\n", "timestamp '10:00Z' on data row 1 is not ISO 8601"),
        # datetime64[ns] ends in 2262: 2500 once wrapped round to 1915 silently
        (
            "timestamp,value\n2024-01-01,1\n2500-01-01,2\n",
            "timestamp '2500-01-01' on data row 2 is out of range; the year must be from 1678 "
            "to 2261",
        ),
        ("timestamp,value\n1600-01-01,1\n", "'1600-01-01' on data row 1 is out of range"),
    ],
)
def test_detect_series_refuses_timestamps_out_of_order_or_range(tmp_path, content, message):
    path = write(tmp_path, content)
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path}: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_detect_series_keeps_repeated_timestamps(tmp_path):
    path = write(tmp_path, "timestamp,value\n2024-01-01T01:00:00Z,1\n2024-01-01T01:00:00Z,2\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3


def minutes_csv(tmp_path: Path, count: int) -> Path:
    """A per-minute series with a spike at its 91st minute."""
    values = [900 if m == 90 else 100 + m % 3 for m in range(count)]
    rows = [f"2024-01-01T{m // 60:02d}:{m % 60:02d}:00Z,{v}" for m, v in enumerate(values)]
    return write(tmp_path, "timestamp,value\n" + "\n".join(rows) + "\n")


def test_detect_series_notes_a_series_shorter_than_the_warm_up(tmp_path):
    # every score was 0 with nothing said
    path = minutes_csv(tmp_path, 5)
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 6
    assert result.stderr == (
        "Note: only 5 values; the detector learns the first 24 before it scores one, "
        "so every score is 0\n"
    )
    # the latency detector learns a level, then as many residuals: 20 values were too few
    # although they passed the level's warm-up
    short = minutes_csv(tmp_path, 20)
    assert (
        "first 24" in runner.invoke(app, ["detect-series", "--kind", "latency", str(short)]).stderr
    )
    for kind, warm_up in (("latency", 24), ("error_rate", 12)):
        # exactly the warm-up's values: all learned, none scored, and that was not said
        path = minutes_csv(tmp_path, warm_up)
        result = runner.invoke(app, ["detect-series", "--kind", kind, str(path)])
        assert {line.split(",")[1] for line in result.stdout.splitlines()[1:]} == {"0"}
        assert f"first {warm_up} before it scores one" in result.stderr
        path = minutes_csv(tmp_path, warm_up + 1)
        result = runner.invoke(app, ["detect-series", "--kind", kind, str(path)])
        assert result.exit_code == 0 and result.stderr == ""


def test_detect_series_reports_progress_on_stderr_only(tmp_path, monkeypatch):
    path = minutes_csv(tmp_path, 120)
    quiet = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert quiet.stdout.splitlines()[91].endswith(",1")  # the spike is flagged
    # a long run, as if every row took the whole reporting interval
    monkeypatch.setattr("detectors.cli.PROGRESS_ROWS", 100)
    monkeypatch.setattr("detectors.cli.PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr("detectors.cli.PROGRESS_CHECK_ROWS", 10)
    reported = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert reported.exit_code == 0, reported.output
    assert reported.stdout == quiet.stdout
    progress = reported.stderr.splitlines()
    assert len(progress) == 12
    assert progress[0] == "scored 10 of 120 rows (8 %)"
    assert progress[-1] == "scored 120 of 120 rows (100 %)"
    assert "scored" not in reported.stdout


def run_seamwatch(*args: str, stdout: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seamwatch", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_detect_series_names_a_full_output_in_one_line(tmp_path):
    with open("/dev/full", "w") as full:
        result = run_seamwatch(
            "detect-series", "--kind", "latency", str(minutes_csv(tmp_path, 120)), stdout=full
        )
    assert result.returncode == 1
    assert result.stderr == "Error: cannot write to standard output: No space left on device\n"


@pytest.mark.slow
def test_detect_series_stops_silently_when_the_reader_goes_away(tmp_path):
    # `| head -1`: the rest of the output (more than a pipe holds) has nowhere to go
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [f"{(start + timedelta(minutes=m)).isoformat()},{m % 7}" for m in range(10_000)]
    path = write(tmp_path, "timestamp,value\n" + "\n".join(rows) + "\n")
    command = [
        sys.executable,
        "-m",
        "seamwatch",
        "detect-series",
        "--kind",
        "error_rate",
        str(path),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout.readline() == "timestamp,score,flag\n"
        process.stdout.close()
        stderr = process.stderr.read()
        assert process.wait(timeout=120) == 1
    assert stderr == ""


@pytest.mark.slow
def test_detect_series_names_a_closed_output(tmp_path):
    # `>&-`: Python starts without a standard output at all
    command = [sys.executable, "-m", "seamwatch", "detect-series", "--kind", "latency"]
    result = subprocess.run(
        [*command, str(minutes_csv(tmp_path, 30))],
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.close(1),
    )
    assert result.returncode == 1
    assert result.stderr == "Error: standard output is closed; nothing can be written\n"


def test_detect_series_notes_a_file_without_rows(tmp_path):
    path = write(tmp_path, "timestamp,value\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 0
    assert result.stdout == "timestamp,score,flag\n"
    assert result.stderr == f"Note: {path} has a header but no rows; there is nothing to score\n"
    one = runner.invoke(app, ["detect-series", "--kind", "latency", str(minutes_csv(tmp_path, 1))])
    assert "Note: only 1 value; the detector" in one.stderr


def test_scores_stop_at_a_thousand_on_a_flat_series(tmp_path):
    # a flat zero series' first move was divided by a vanishing scale: scores near 1.5e8
    lines = [
        f"2024-01-01T{h:02d}:{m:02d}:00Z,{5 if (h, m) == (3, 0) else 0}"
        for h in range(4)
        for m in range(60)
    ]
    path = write(tmp_path, "timestamp,value\n" + "\n".join(lines) + "\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    rows = result.stdout.splitlines()[1:]
    assert rows[180] == "2024-01-01T03:00:00Z,1000,1"
    assert max(float(row.split(",")[1]) for row in rows) == 1000


def test_detect_series_reads_a_file_named_dash(tmp_path, monkeypatch):
    (tmp_path / "-").write_text("timestamp,value\n2024-01-01T00:00:00Z,1\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["detect-series", "--kind", "latency", "./-"], input="")
    assert result.exit_code == 0, result.output
    assert result.stdout == "timestamp,score,flag\n2024-01-01T00:00:00Z,0,0\n"


def test_detect_series_names_the_file_of_rows_too_close_together(tmp_path):
    rows = "".join(f"2024-01-01T00:00:{i // 2:02d}.{i % 2 * 5}Z,1\n" for i in range(30))
    path = write(tmp_path, "timestamp,value\n" + rows)
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path}: the rows are 500 ms apart; ")


def test_detect_series_notes_a_value_column_without_numbers(tmp_path):
    # "only 0 values" did not say that every value was a gap
    rows = "".join(f"2024-01-01T00:{minute:02d}:00Z,NaN\n" for minute in range(30))
    path = write(tmp_path, "timestamp,value\n" + rows)
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"Note: {path}: the value column has no numbers (every value is blank or NaN); "
        "there is nothing to score, so every score is 0\n"
    )


@pytest.mark.parametrize("option", [["--days", "3"], ["--seed", "7"]])
def test_evaluate_refuses_simulator_options_without_the_simulator(option, tmp_path):
    # both were ignored and the labelled series were scored
    from seamwatch.cli import app as seamwatch_app

    result = runner.invoke(seamwatch_app, ["evaluate", "--series-dir", str(tmp_path), *option])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {option[0]} applies to the simulator; use it with --simulator "
        "(the labelled series are scored as they are).\n"
    )


def test_evaluate_says_a_windows_file_that_is_a_folder_is_one(tmp_path):
    # it said the folder "has no nab/combined_windows.json"
    (tmp_path / "nab" / "combined_windows.json").mkdir(parents=True)
    result = runner.invoke(app, ["evaluate", "--series-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {tmp_path / 'nab' / 'combined_windows.json'} is a folder, not a file; it must "
        "be the nab set's JSON file of windows\n"
    )


def test_bench_series_prints_rows_a_second_per_kind():
    from seamwatch.cli import app as seamwatch_app

    result = runner.invoke(seamwatch_app, ["bench", "series", "--rows", "300"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "detect-series --kind latency",
        "detect-series --kind error_rate",
    ]
    assert all(
        line.endswith(" rows a second") and " 300 per-minute rows: " in line for line in lines
    )
    refused = runner.invoke(seamwatch_app, ["bench", "series", "--rows", "0"])
    assert refused.exit_code == 2
    assert refused.stderr.startswith("Error: --rows takes whole numbers above 0")


def test_bench_detect_refuses_a_data_dir_that_is_a_file(tmp_path):
    # it ended in the store's traceback, exit code 1
    from seamwatch.cli import app as seamwatch_app

    regular = tmp_path / "afile"
    regular.write_text("")
    result = runner.invoke(
        seamwatch_app,
        ["bench", "detect", "--data-dir", str(regular), "--flows", "2", "--minutes", "1"],
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: --data-dir {regular} is a file, not a folder; name a folder for the store.\n"
    )


def test_detect_series_names_every_bad_row_and_both_columns_in_one_report(tmp_path):
    # only the first bad row of the first bad column was named: a file took a round per row
    rows = ["2024-01-01 00:00,1", "2024-01-01 00:01,abc", "yesterday,3", "2024-01-01 00:03,x"]
    rows += [f"day {n},1" for n in range(6)]
    path = write(tmp_path, "timestamp,value\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {path}: timestamp 'yesterday' on data row 3 (and data rows 5, 6, 7, 8, 9 and "
        f"1 more) is not ISO 8601; {ISO_ADVICE}",
        f"Error: {path}: value 'abc' on data row 2 (and data row 4) is not a plain number; "
        "write digits with a point for decimals, without a % sign or thousands separators "
        "(1107.5, not 1,107.5), or leave it blank (or NaN) for a gap",
    ]


@pytest.mark.parametrize(
    ("rows", "also"),
    [([1], ""), ([1, 4], " (and data row 5)"), ([0, 2, 3], " (and data rows 3 and 4)")],
)
def test_also_rows_lists_the_other_rows_counted_from_one(rows, also):
    assert also_rows(np.array(rows)) == also


def test_detect_series_names_every_kind_of_bad_timestamp_at_once(tmp_path):
    # the checks ran one after another: a missing timestamp hid a date that does not exist,
    # which in turn hid one in the year 3000, each found only once the one before was fixed
    rows = ["yesterday", "2024-13-45 10:00:00", "", "2024-01-01 00:05+14:45", "3000-01-01 00:00"]
    path = write(tmp_path, "timestamp,value\n" + "".join(f"{row},1\n" for row in rows))
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {path}: missing timestamp on data row 3",
        f"Error: {path}: timestamp 'yesterday' on data row 1 is not ISO 8601; {ISO_ADVICE}",
        f"Error: {path}: timestamp '2024-01-01 00:05+14:45' on data row 4 has the UTC offset "
        "+14:45, which no clock uses; offsets run from -12:00 to +14:00 (or end the time in Z "
        "for UTC)",
        f"Error: {path}: timestamp '2024-13-45 10:00:00' on data row 2 is not a real date and "
        f"time; {ISO_ADVICE}",
        f"Error: {path}: timestamp '3000-01-01 00:00' on data row 5 is out of range; the year "
        "must be from 1678 to 2261",
    ]


def test_detect_series_names_rows_with_extra_fields_beside_the_other_problems(tmp_path):
    # a row with a decimal comma was refused alone and hid a bad timestamp and a bad value
    rows = ["2024-01-01 00:00,1,5", "yesterday,2", "2024-01-01 00:02,3,7", "2024-01-01 00:03,x"]
    path = write(tmp_path, "timestamp,value\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["detect-series", "--kind", "latency", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {path}: data row 1 (and data row 3) has 3 fields but the header names 2; "
        "quote a value that holds a comma (a decimal comma: use a point)",
        f"Error: {path}: timestamp 'yesterday' on data row 2 is not ISO 8601; {ISO_ADVICE}",
        f"Error: {path}: value 'x' on data row 4 is not a plain number; write digits with a "
        "point for decimals, without a % sign or thousands separators (1107.5, not 1,107.5), "
        "or leave it blank (or NaN) for a gap",
    ]
