import doctest
import importlib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from detectors.cli import bench_detect_command, detect_series_command, evaluate_command

app = typer.Typer()
app.command("detect-series")(detect_series_command)
app.command("evaluate")(evaluate_command)
app.command("bench-detect")(bench_detect_command)
runner = CliRunner()


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
        ("timestamp,value\n2024-01-01,fast\n", "unparsable value 'fast' on data row 1"),
        ("timestamp,value\nyesterday,1\n", "unparsable timestamp"),
    ],
)
def test_detect_series_rejects_bad_input(tmp_path, content, message):
    path = write(tmp_path, content)
    result = runner.invoke(app, ["detect-series", "--kind", "error_rate", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_detect_series_missing_file_and_unknown_kind(tmp_path):
    missing = runner.invoke(app, ["detect-series", "--kind", "latency", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    path = write(tmp_path, "timestamp,value\n")
    unknown = runner.invoke(app, ["detect-series", "--kind", "cpu", str(path)])
    assert unknown.exit_code == 2 and "unknown --kind" in unknown.stderr


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


def test_bench_prints_the_runner_figure_and_the_old_one(chdb_data_dir):
    result = runner.invoke(
        app, ["bench-detect", "--flows", "20", "--minutes", "1", "--data-dir", str(chdb_data_dir)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("runner, 20 flows, ")
    assert "% of one core; within the 3 s target" in lines[0]
    assert "series query" in lines[1] and "lineage checks" in lines[1]
    assert lines[2].startswith("per-minute residual alarms only")


@pytest.mark.parametrize(
    "module",
    ["alarm", "robust_zscore", "residual_tail", "error_rate", "volume", "category_drift"],
)
def test_docstring_examples(module):
    failures, _ = doctest.testmod(importlib.import_module(f"detectors.{module}"))
    assert failures == 0
