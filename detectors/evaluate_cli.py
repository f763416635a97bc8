"""``seamwatch evaluate``: the labelled public series, or with ``--simulator`` the simulator.

Without ``--simulator`` this is :func:`detectors.cli.evaluate_command` unchanged. With it, the
simulator plays ``--days`` of traffic with injected incidents, and the detector runner is judged
on them (:mod:`detectors.simulator_judge`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from detectors.cli import evaluate_command as evaluate_labelled_series
from detectors.corpus import DATA_DIR_ENV
from detectors.severity import SEVERITY_FILE_ENV, SeverityFileError, load_severity
from detectors.simulator_judge import format_judgement, simulate_and_judge
from storage import StoreError

BAD_INPUT_EXIT = 2
MAX_SIMULATED_DAYS = 28.0


def evaluate_command(
    data_dir: str | None = typer.Option(
        None,
        "--data-dir",
        help=f"Labelled data folder (default: ${DATA_DIR_ENV} or ../shared/data).",
    ),
    profile: str | None = typer.Option(None, "--profile", help="Only this NAB profile."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    simulator: bool = typer.Option(
        False, "--simulator", help="Judge the detector runner on the simulator's incidents."
    ),
    days: float = typer.Option(7.0, "--days", help="Simulated days (with --simulator)."),
    seed: int = typer.Option(42, "--seed", help="Simulator seed (with --simulator)."),
    severity_file: Path | None = typer.Option(
        None, "--severity", help=f"Severity file [env {SEVERITY_FILE_ENV}]."
    ),
) -> None:
    """Score the detectors on labelled series, or on the simulator's incidents.

    The data folder holds nab/ and cloud-monitoring/, each with CSV files and a
    combined_windows.json that maps each file's path to its [start, end] windows. A set that
    is absent is skipped with a note; a set without a window to score has no score: n/a in
    the table, null in --json.
    """
    if not simulator:
        if severity_file is not None:
            typer.echo(
                "Error: --severity ranks the simulator's flows; use it with --simulator "
                "(the labelled series have no flows to rank).",
                err=True,
            )
            raise typer.Exit(BAD_INPUT_EXIT)
        evaluate_labelled_series(data_dir=data_dir, profile=profile, as_json=as_json)
        return
    # they choose what the labelled series are scored on; the simulator has neither
    for option, value in (("--data-dir", data_dir), ("--profile", profile)):
        if value is not None:
            typer.echo(
                f"Error: {option} applies to the labelled series; leave it out with "
                "--simulator, which judges the simulator's incidents.",
                err=True,
            )
            raise typer.Exit(BAD_INPUT_EXIT)
    if not 0 < days <= MAX_SIMULATED_DAYS:
        typer.echo(f"Error: --days must be above 0 and at most {MAX_SIMULATED_DAYS:g}.", err=True)
        raise typer.Exit(BAD_INPUT_EXIT)
    logging.getLogger("sample_data").setLevel(logging.WARNING)
    try:
        judgement = simulate_and_judge(
            load_severity(severity_file, option="--severity"), days, seed
        )
    except SeverityFileError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(BAD_INPUT_EXIT) from None
    except StoreError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(judgement.as_dict(), indent=2))
        return
    typer.echo(format_judgement(judgement))
