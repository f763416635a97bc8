"""`seamwatch evaluate` on small data folders written by the tests: what it refuses and why."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from detectors.cli import evaluate_command

app = typer.Typer()
app.command("evaluate")(evaluate_command)
app.command("noop")(lambda: None)
runner = CliRunner()

HOURS = 48


def series_text(hours: int = HOURS, start_day: int = 1) -> str:
    """An hourly series with a step up in its last quarter."""
    rows = [
        f"2024-01-{start_day + hour // 24:02d} {hour % 24:02d}:00:00,{100 if hour < 36 else 300}"
        for hour in range(hours)
    ]
    return "timestamp,value\n" + "\n".join(rows) + "\n"


WINDOW = ["2024-01-02 11:00:00", "2024-01-02 14:00:00"]


@pytest.fixture
def series_dir(tmp_path: Path) -> Path:
    """Both sets, each one file with one window."""
    for name in ("nab", "cloud-monitoring"):
        (tmp_path / name / "folder").mkdir(parents=True)
        (tmp_path / name / "folder" / "a.csv").write_text(series_text())
        write_windows(tmp_path / name, {"folder/a.csv": [WINDOW]})
    return tmp_path


def write_windows(folder: Path, windows: object) -> Path:
    path = folder / "combined_windows.json"
    path.write_text(windows if isinstance(windows, str) else json.dumps(windows))
    return path


def evaluate(series_dir: Path, *flags: str):
    return runner.invoke(app, ["evaluate", "--series-dir", str(series_dir), *flags])


def assert_one_line_error(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for part in parts:
        assert part in lines[0]


def test_evaluate_scores_a_small_folder(series_dir):
    result = evaluate(series_dir, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(row["set"], row["files"], row["windows"]) for row in rows] == [
        ("nab", 1, 1),
        ("cloud-monitoring", 1, 1),
    ]


def test_evaluate_refuses_a_series_out_of_time_order(series_dir):
    lines = series_text().splitlines()
    lines[10], lines[11] = lines[11], lines[10]
    (series_dir / "nab" / "folder" / "a.csv").write_text("\n".join(lines) + "\n")
    assert_one_line_error(
        evaluate(series_dir),
        f"{series_dir / 'nab' / 'folder' / 'a.csv'}: timestamps go backwards at data row 11",
        "sort the rows by time",
    )


SHAPE = (
    "expected an object mapping each CSV path, relative to the windows file's folder, to a "
    'list of ["start", "end"] timestamp pairs'
)
PAIR = 'expected a pair ["start", "end"] of timestamp strings'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # these once ended in a TypeError traceback
        ("[1, 2, 3]", f"combined_windows.json: the top level is a list; {SHAPE}"),
        (
            '{"folder/a.csv": null}',
            "combined_windows.json, key 'folder/a.csv': the windows are null; expected a list "
            'of ["start", "end"] timestamp pairs ([] for none)',
        ),
        # these once named neither the set nor the file
        (
            '{"folder/a.csv": [\n',
            "combined_windows.json is not valid JSON (Expecting value on line 2, column 1); "
            + SHAPE,
        ),
        (
            '{"folder/a.csv": [["2024-01-02", "2024-01-02", "2024-01-03"]]}',
            f'key \'folder/a.csv\': window 1 is ["2024-01-02", "2024-01-02", "2024-01-03"]; {PAIR}',
        ),
        (
            '{"folder/a.csv": [["2024-01-02"]]}',
            f"key 'folder/a.csv': window 1 is [\"2024-01-02\"]; {PAIR}",
        ),
        (
            '{"folder/a.csv": [["2024-01-02", "not a date"]]}',
            "key 'folder/a.csv': window 1 bound \"not a date\" is not a timestamp; use a UTC "
            'timestamp string from 1678 to 2261, e.g. "2024-01-01 00:00:00"',
        ),
        ('{"folder/a.csv": [["now", "2024-01-02"]]}', 'window 1 bound "now" is not a timestamp'),
        ('{"folder/a.csv": [[1, 2]]}', "window 1 bound 1 is not a timestamp"),
        # a key is a file of the set: nothing outside its folder is read
        ('{"/etc/passwd": []}', "key '/etc/passwd': not a path inside"),
        ('{"../a.csv": []}', "key '../a.csv': not a path inside"),
        ('{"folder/../../a.csv": []}', "key 'folder/../../a.csv': not a path inside"),
        ('{"folder/b.csv": []}', "key 'folder/b.csv': no such file"),
        # JSON keeps the last of two equal keys: the first list of windows was lost silently
        ('{"folder/a.csv": [], "folder/a.csv": []}', "key 'folder/a.csv' is given twice"),
        (
            '{"folder/a.csv": [["2024-01-02 14:00", "2024-01-02 11:00"]]}',
            "key 'folder/a.csv': window 1 starts after it ends (2024-01-02 14:00 > "
            "2024-01-02 11:00); write [start, end]",
        ),
    ],
)
def test_evaluate_names_the_windows_file_and_key(series_dir, content, message):
    path = write_windows(series_dir / "nab", content)
    assert_one_line_error(evaluate(series_dir), f"Error: {path}", message)


def test_evaluate_names_a_windows_file_that_is_not_text(series_dir):
    path = series_dir / "nab" / "combined_windows.json"
    path.write_bytes(b"\xff\xfe{}")
    assert_one_line_error(evaluate(series_dir), f"Error: {path} is not UTF-8 text; {SHAPE}")


def test_evaluate_warns_of_a_window_outside_the_file_and_goes_on(series_dir):
    write_windows(series_dir / "nab", {"folder/a.csv": [WINDOW, ["2025-01-01", "2025-01-02"]]})
    result = evaluate(series_dir, "--json")
    assert result.exit_code == 0, result.output
    windows_file = series_dir / "nab" / "combined_windows.json"
    assert result.stderr.splitlines() == [
        f"Warning: {windows_file}, key 'folder/a.csv': window 2 [2025-01-01 00:00:00, "
        "2025-01-02 00:00:00] lies outside the file's time range (2024-01-01 00:00:00 to "
        "2024-01-02 23:00:00); it is not scored"
    ]
    assert json.loads(result.stdout)[0]["windows"] == 1


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        (["2025-01-01", "2025-01-02"], "lies outside the file's time range"),
        # both were left out of the score without a word: "nab 1 files 0 windows ... n/a"
        (["2024-01-02 11:15:00", "2024-01-02 11:45:00"], "falls between two rows and holds none"),
        (
            ["2024-01-01 00:00:00", "2024-01-01 02:00:00"],
            "ends within the first 7 rows, which the detector learns from",
        ),
    ],
)
def test_seamwatch_evaluate_names_each_window_it_cannot_score(series_dir, window, reason):
    from seamwatch.cli import app as seamwatch_app

    write_windows(series_dir / "nab", {"folder/a.csv": [window]})
    result = runner.invoke(seamwatch_app, ["evaluate", "--series-dir", str(series_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split()[:3] == ["nab", "1", "0"]
    windows_file = series_dir / "nab" / "combined_windows.json"
    assert f"Warning: {windows_file}, key 'folder/a.csv': window 1 [" in result.stderr
    assert reason in result.stderr and "it is not scored" in result.stderr


def test_evaluate_reads_utc_offsets_in_window_bounds(series_dir):
    offsets = ["2024-01-02T12:00:00+01:00", "2024-01-02T14:00:00Z"]
    write_windows(series_dir / "nab", {"folder/a.csv": [offsets]})
    result = evaluate(series_dir, "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


@pytest.mark.parametrize(
    "windows",
    [
        {},
        # one window, wholly inside the probationary rows that are not scored
        {"folder/a.csv": [["2024-01-01 00:00:00", "2024-01-01 02:00:00"]]},
    ],
)
def test_evaluate_says_a_set_without_windows_has_no_score(series_dir, windows):
    # the score divides by the windows: it was once printed as nan, and as NaN in --json
    write_windows(series_dir / "nab", windows)
    table = evaluate(series_dir)
    assert table.exit_code == 0, table.output
    nab = table.stdout.splitlines()[1].split()
    assert nab[0] == "nab" and nab[2] == "0" and nab[-3:] == ["n/a", "n/a", "n/a"]
    note = "Note: the nab set has no window to score, so it has no score (n/a)"
    assert note in table.stderr.splitlines()
    as_json = evaluate(series_dir, "--json")
    assert as_json.exit_code == 0, as_json.output
    assert "NaN" not in as_json.stdout
    rows = json.loads(as_json.stdout)
    assert rows[0]["scores"] == {
        "standard": None,
        "reward_low_FP_rate": None,
        "reward_low_FN_rate": None,
    }
    assert isinstance(rows[1]["scores"]["standard"], float)


def test_evaluate_says_a_series_folder_is_a_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("timestamp,value\n")
    assert_one_line_error(
        evaluate(path),
        f"Error: {path} is a file, not a folder; --series-dir takes the folder that holds nab/ "
        "and cloud-monitoring/",
    )


@pytest.mark.parametrize(
    ("absent", "present"), [("nab", "cloud-monitoring"), ("cloud-monitoring", "nab")]
)
def test_evaluate_scores_the_one_set_that_is_there(series_dir, absent, present):
    (series_dir / absent / "combined_windows.json").unlink()
    result = evaluate(series_dir, "--json")
    assert result.exit_code == 0, result.output
    assert [row["set"] for row in json.loads(result.stdout)] == [present]
    assert result.stderr.splitlines() == [
        f"Note: {series_dir} has no {absent}/combined_windows.json; evaluating {present} only"
    ]


def test_evaluate_refuses_a_folder_without_either_set(tmp_path):
    (tmp_path / "other").mkdir()
    assert_one_line_error(
        evaluate(tmp_path),
        f"Error: {tmp_path} has no nab/combined_windows.json or "
        "cloud-monitoring/combined_windows.json; --series-dir takes the folder",
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_evaluate_names_a_full_output_in_one_line(series_dir):
    command = [
        *(sys.executable, "-m", "seamwatch", "evaluate"),
        *("--series-dir", str(series_dir), "--json"),
    ]
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False
        )
    assert result.returncode == 1
    assert result.stderr == "Error: cannot write to standard output: No space left on device\n"


def test_the_old_data_dir_option_still_names_the_series_folder_with_a_warning(series_dir):
    # on every other command --data-dir names the store; evaluate's is now --series-dir
    from seamwatch.cli import app as seamwatch_app

    old = runner.invoke(seamwatch_app, ["evaluate", "--data-dir", str(series_dir), "--json"])
    new = runner.invoke(seamwatch_app, ["evaluate", "--series-dir", str(series_dir), "--json"])

    assert old.exit_code == new.exit_code == 0, old.output
    assert old.stdout == new.stdout
    assert old.stderr == (
        "Warning: 'seamwatch evaluate --data-dir' is deprecated and goes in the next release; "
        "use --series-dir for the labelled data folder.\n"
    )
    assert new.stderr == ""


def test_the_series_folder_given_by_both_names_is_refused(series_dir):
    from seamwatch.cli import app as seamwatch_app

    result = runner.invoke(
        seamwatch_app,
        ["evaluate", "--series-dir", str(series_dir), "--data-dir", str(series_dir)],
    )
    assert_one_line_error(result, "Error: --data-dir is the old name of --series-dir")


def test_help_names_the_series_folder_option_only():
    from seamwatch.cli import app as seamwatch_app

    result = runner.invoke(seamwatch_app, ["evaluate", "--help"])
    assert result.exit_code == 0
    assert "--series-dir" in result.stdout
    assert "--data-dir" not in result.stdout


def test_files_shows_each_file_with_its_windows_and_false_alarms(series_dir):
    # a second file in the nab set, its one window placed where nothing happens
    (series_dir / "nab" / "folder" / "b.csv").write_text(series_text())
    quiet_window = ["2024-01-01 20:00:00", "2024-01-01 22:00:00"]
    write_windows(series_dir / "nab", {"folder/a.csv": [WINDOW], "folder/b.csv": [quiet_window]})
    result = evaluate(series_dir, "--json", "--files")
    assert result.exit_code == 0, result.output
    nab = next(row for row in json.loads(result.stdout) if row["set"] == "nab")
    by_file = {one["file"]: one for one in nab["per_file"]}
    assert by_file["folder/a.csv"]["caught"] == 1 and by_file["folder/a.csv"]["false_alarms"] == 0
    # the step at hour 36 is outside b's window: a miss and a false alarm
    assert (by_file["folder/b.csv"]["missed"], by_file["folder/b.csv"]["false_alarms"]) == (1, 1)
    assert by_file["folder/b.csv"]["raw_standard"] < 0 < by_file["folder/a.csv"]["raw_standard"]
    assert sum(one["windows"] for one in nab["per_file"]) == nab["windows"]

    table = evaluate(series_dir, "--files").stdout
    assert "nab, per file (raw standard score):" in table
    b_line = next(line for line in table.splitlines() if line.startswith("folder/b.csv"))
    assert b_line.split()[1:6] == ["generic", "1", "0", "1", "1"]


def test_without_files_the_json_has_no_per_file_rows(series_dir):
    rows = json.loads(evaluate(series_dir, "--json").stdout)
    assert all("per_file" not in row for row in rows)
