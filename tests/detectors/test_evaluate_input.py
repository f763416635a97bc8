"""`seamwatch evaluate` on small data folders written by the tests: what it refuses and why."""

import json
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
def data_dir(tmp_path: Path) -> Path:
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


def evaluate(data_dir: Path, *flags: str):
    return runner.invoke(app, ["evaluate", "--data-dir", str(data_dir), *flags])


def assert_one_line_error(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for part in parts:
        assert part in lines[0]


def test_evaluate_scores_a_small_folder(data_dir):
    result = evaluate(data_dir, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(row["set"], row["files"], row["windows"]) for row in rows] == [
        ("nab", 1, 1),
        ("cloud-monitoring", 1, 1),
    ]


def test_evaluate_refuses_a_series_out_of_time_order(data_dir):
    lines = series_text().splitlines()
    lines[10], lines[11] = lines[11], lines[10]
    (data_dir / "nab" / "folder" / "a.csv").write_text("\n".join(lines) + "\n")
    assert_one_line_error(
        evaluate(data_dir),
        f"{data_dir / 'nab' / 'folder' / 'a.csv'}: timestamps go backwards at data row 11",
        "sort the rows by time",
    )
