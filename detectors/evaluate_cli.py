"""``seamwatch evaluate``: the labelled public series, or with ``--simulator`` the simulator.

Without ``--simulator`` this is :func:`detectors.cli.evaluate_command` unchanged. With it, the
simulator plays ``--days`` of traffic with injected incidents, and the detector runner is judged
on them (:mod:`detectors.simulator_judge`).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import typer

from detectors.cli import evaluate_command as evaluate_labelled_series
from detectors.corpus import DATA_DIR_ENV
from detectors.severity import SEVERITY_FILE_ENV, SeverityFileError, load_severity
from detectors.simulator_judge import format_judgement, simulate_and_judge
from seamwatch.durations import parse_duration
from storage import StoreError

BAD_INPUT_EXIT = 2
STORE_EXIT = 1
MAX_SIMULATED_DAYS = 28.0
DEFAULT_DAYS = 7.0
DEFAULT_SEED = 42


def evaluate_command(
    series_dir: str | None = typer.Option(
        None,
        "--series-dir",
        help=f"Labelled data folder (default: ${DATA_DIR_ENV} or ../shared/data).",
    ),
    # its name until this release; on every other command --data-dir is the store
    old_series_dir: str | None = typer.Option(None, "--data-dir", hidden=True),
    profile: str | None = typer.Option(None, "--profile", help="Only this NAB profile."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    per_file: bool = typer.Option(
        False, "--files", help="Also show each labelled file's windows, misses and false alarms."
    ),
    simulator: bool = typer.Option(
        False, "--simulator", help="Judge the detector runner on the simulator's incidents."
    ),
    # None tells "not given" from the default, which --simulator alone takes
    days: float | None = typer.Option(
        None, "--days", help=f"Simulated days (with --simulator; default {DEFAULT_DAYS:g})."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help=f"Simulator seed (with --simulator; default {DEFAULT_SEED})."
    ),
    severity_file: Path | None = typer.Option(
        None, "--severity", help=f"Severity file [env {SEVERITY_FILE_ENV}]."
    ),
    restart_every: str | None = typer.Option(
        None,
        "--restart-every",
        help="With --simulator: also run the detectors stopped and started again this often "
        "(e.g. 5h) and compare their alerts with those of the run judged.",
    ),
) -> None:
    """Score the detectors on labelled series, or on the simulator's incidents.

    The data folder holds nab/ and cloud-monitoring/, each with CSV files and a
    combined_windows.json that maps each file's path to its [start, end] windows. A set that
    is absent is skipped with a note; a set without a window to score has no score: n/a in
    the table, null in --json.
    """
    series_dir = _series_dir(series_dir, old_series_dir)
    if not simulator:
        _refuse_simulator_options(days, seed, severity_file, restart_every)
        evaluate_labelled_series(
            series_dir=series_dir, profile=profile, as_json=as_json, per_file=per_file
        )
        return
    # they choose what the labelled series are scored on; the simulator has neither
    labelled_only = (("--series-dir", series_dir), ("--profile", profile), ("--files", per_file))
    for option, value in labelled_only:
        if value not in (None, False):
            raise _fail(
                f"{option} applies to the labelled series; leave it out with "
                "--simulator, which judges the simulator's incidents."
            )
    days = DEFAULT_DAYS if days is None else days
    seed = DEFAULT_SEED if seed is None else seed
    if not 0 < days <= MAX_SIMULATED_DAYS:
        raise _fail(f"--days must be above 0 and at most {MAX_SIMULATED_DAYS:g} (got {days:g}).")
    every = _restart_interval(restart_every, days)
    logging.getLogger("sample_data").setLevel(logging.WARNING)
    try:
        judgement = simulate_and_judge(
            load_severity(severity_file, option="--severity"), days, seed, restart_every=every
        )
    except SeverityFileError as exc:
        raise _fail(str(exc)) from None
    except StoreError as exc:
        raise _fail(str(exc), STORE_EXIT) from None
    if as_json:
        typer.echo(json.dumps(judgement.as_dict(), indent=2))
        return
    typer.echo(format_judgement(judgement))


def _restart_interval(text: str | None, days: float) -> timedelta | None:
    """``--restart-every`` as a duration: at least a minute, shorter than the run."""
    if text is None:
        return None
    try:
        every = parse_duration(text)
    except ValueError as exc:
        raise _fail(f"--restart-every: {exc}.") from None
    assert every is not None
    if not timedelta(minutes=1) <= every < timedelta(days=days):
        raise _fail(
            f"--restart-every must be at least 1m and shorter than the {days:g} simulated "
            "day(s), or no restart would happen."
        )
    return every


def _refuse_simulator_options(
    days: float | None, seed: int | None, severity: Path | None, restart_every: str | None
) -> None:
    """Without ``--simulator`` the simulator's options would be ignored: refuse them."""
    if severity is not None:
        raise _fail(
            "--severity ranks the simulator's flows; use it with --simulator "
            "(the labelled series have no flows to rank)."
        )
    for option, value in (("--days", days), ("--seed", seed), ("--restart-every", restart_every)):
        if value is not None:
            raise _fail(
                f"{option} applies to the simulator; use it with --simulator "
                "(the labelled series are scored as they are)."
            )


def _series_dir(series_dir: str | None, old_series_dir: str | None) -> str | None:
    """The labelled data folder, given by ``--series-dir`` or, for one more release, by its
    old name ``--data-dir`` with a warning."""
    if old_series_dir is None:
        return series_dir
    if series_dir is not None:
        raise _fail(
            "--data-dir is the old name of --series-dir; give the labelled data folder once, "
            "with --series-dir."
        )
    typer.echo(
        "Warning: 'seamwatch evaluate --data-dir' is deprecated and goes in the next release; "
        "use --series-dir for the labelled data folder.",
        err=True,
    )
    return old_series_dir


def _fail(message: str, code: int = BAD_INPUT_EXIT) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)
