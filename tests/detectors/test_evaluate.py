"""Scores on the shared labelled data (skipped when the data folder is absent)."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from detectors.cli import evaluate_command

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA_DIR / "nab").is_dir(), reason="no shared data")

# floors a little under the measured scores, so a regression shows
FLOORS = {"nab": 75.0, "cloud-monitoring": 62.0}


def test_evaluate_reaches_the_measured_scores():
    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["evaluate", "--series-dir", str(DATA_DIR), "--json"])
    assert result.exit_code == 0, result.output
    by_set = {row["set"]: row for row in json.loads(result.stdout)}
    assert by_set["nab"]["windows"] == 18
    assert by_set["cloud-monitoring"]["windows"] == 91
    for name, floor in FLOORS.items():
        assert by_set[name]["scores"]["standard"] >= floor
        row = by_set[name]
        assert row["caught"] + row["missed"] == row["windows"]
