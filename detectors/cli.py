"""Command functions for the detectors; the application registers them by name."""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import typer

from detectors.bench import TARGET_SECONDS_PER_MINUTE, bench_in_scratch_store, bench_series_alarms
from detectors.corpus import (
    DATA_DIR_ENV,
    SETS,
    WINDOWS_FILE,
    SeriesFormatError,
    also_rows,
    read_series_with_text,
)
from detectors.corpus import resolve_series_dir as _resolve_series_dir
from detectors.evaluate import SetResult, evaluate
from detectors.nab import PROFILES
from detectors.product import FINEST_INTERVAL, sampling_interval, score_series, warm_up
from detectors.series_bench import bench_detect_series
from seamwatch.cli_options import check_bench_folder, data_dir_option
from seamwatch.user_text import quoted
from storage import StoreError

logger = logging.getLogger(__name__)

SERIES_KINDS = ("latency", "error_rate")
BAD_INPUT_EXIT = 2
# the latency detector takes most of a millisecond a row: a longer run lasts over half a minute
PROGRESS_ROWS = 50_000
PROGRESS_SECONDS = 10.0
PROGRESS_CHECK_ROWS = 1000  # how often the clock is read


def _fail(message: str) -> typer.Exit:
    """Report each line of ``message`` as an error; the exit for bad input."""
    for line in message.splitlines():
        typer.echo(f"Error: {line}", err=True)
    return typer.Exit(BAD_INPUT_EXIT)


def _warn(message: str) -> None:
    typer.echo(f"Warning: {message}", err=True)


def _note(message: str) -> None:
    typer.echo(f"Note: {message}", err=True)


def detect_series_command(
    # text, not a Path: Path("./-") would become "-", and a file named - could not be read
    input_csv: str = typer.Argument(
        ...,
        help="CSV with a timestamp and a value column, oldest row first (a timestamp may "
        "repeat); - reads standard input, ./- a file named -.",
    ),
    kind: str = typer.Option(..., "--kind", help="Detector to run: latency or error_rate."),
) -> None:
    """Run the product's detector on one series; write timestamp,score,flag per row.

    Notes and progress (every 10 s past 50,000 rows) go to standard error."""
    problems = []
    if kind not in SERIES_KINDS:
        problems.append(f"unknown --kind {quoted(kind)}; expected one of {', '.join(SERIES_KINDS)}")
    try:
        text, stamps, values = read_series_with_text(input_csv)
    except SeriesFormatError as exc:
        problems.append(str(exc))
    if problems:  # the kind and the file in one round
        raise _fail("\n".join(problems))
    source = "standard input" if input_csv == "-" else input_csv
    negative = np.flatnonzero(values < 0) if kind == "error_rate" else []
    if len(negative):
        # a rate of failures, in whatever unit, is zero or more (latency takes any metric)
        row = int(negative[0])
        raise _fail(
            f"{source}: data row {row + 1}{also_rows(negative)} has a negative error rate "
            f"({values[row]:g}); a rate of failures is zero or more: check the value column"
        )
    interval = sampling_interval(stamps)
    if interval < FINEST_INTERVAL:
        # a day of 10 ms rows is 8.6 million values of season and history per detector
        raise _fail(
            f"{source}: the rows are {interval.total_seconds() * 1000:g} ms apart; series are "
            "judged at one row a second or coarser: aggregate them to seconds or minutes first"
        )
    _note_too_few_values(source, values, warm_up(kind, interval))
    progress = _ProgressLine(len(values)) if len(values) > PROGRESS_ROWS else None
    with _standard_output():
        # rows leave as they are scored, so `| head` or a stopped run still gives the first
        rows = csv.writer(sys.stdout, lineterminator="\n")
        rows.writerow(("timestamp", "score", "flag"))
        scored = score_series(kind, stamps, values)
        for done, (stamp, (score, onset)) in enumerate(zip(text, scored, strict=True)):
            rows.writerow((stamp, f"{score:.6g}", int(onset)))
            if progress is not None:
                progress(done + 1)


def _note_too_few_values(source: str, values: np.ndarray, needed: int) -> None:
    """A note when no score can come out: no rows, no numbers, or no more values than the
    detector's warm-up learns (those are learned, not scored)."""
    learned = int(np.count_nonzero(~np.isnan(values)))
    if not len(values):
        _note(f"{source} has a header but no rows; there is nothing to score")
    elif not learned:
        _note(
            f"{source}: the value column has no numbers (every value is blank or NaN); "
            "there is nothing to score, so every score is 0"
        )
    elif learned <= needed:
        _note(
            f"only {learned} value{'s' if learned != 1 else ''}; the detector learns the "
            f"first {needed} before it scores one, so every score is 0"
        )


@contextmanager
def _standard_output() -> Iterator[None]:
    """Write to standard output as Unix tools do: a reader that has gone away (``| head``)
    ends the command silently; any other failed write (``> /dev/full``) is a one-line error."""
    if sys.stdout is None:  # started with standard output closed (``>&-``)
        typer.echo("Error: standard output is closed; nothing can be written", err=True)
        raise typer.Exit(1)
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_standard_output()
        raise typer.Exit(1) from None
    except OSError as exc:
        _discard_standard_output()
        typer.echo(f"Error: cannot write to standard output: {exc.strerror}", err=True)
        raise typer.Exit(1) from None


def _discard_standard_output() -> None:
    # what is still buffered would fail again, with a traceback, when Python flushes at exit
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _ProgressLine:
    """Writes "scored N of M rows" on standard error about every ``PROGRESS_SECONDS``."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._reported = time.monotonic()

    def __call__(self, done: int) -> None:
        if done % PROGRESS_CHECK_ROWS == 0 and (
            time.monotonic() - self._reported >= PROGRESS_SECONDS
        ):
            share = done * 100 // self._total
            typer.echo(f"scored {done:,} of {self._total:,} rows ({share} %)", err=True)
            self._reported = time.monotonic()


def evaluate_command(
    series_dir: str | None = typer.Option(
        None,
        "--series-dir",
        help=f"Labelled data folder (default: ${DATA_DIR_ENV} or ../shared/data).",
    ),
    profile: str | None = typer.Option(
        None, "--profile", help=f"Only this profile: {', '.join(PROFILES)}."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    per_file: bool = typer.Option(
        False, "--files", help="Also show each file's windows, misses and false alarms."
    ),
) -> None:
    """Score the detectors on the labelled public series with the NAB-style scorer.

    The data folder holds nab/ and cloud-monitoring/, each with its CSV files and a
    combined_windows.json; a set that is missing is skipped with a note. A set without a
    window to score shows n/a in the table and null in --json."""
    if profile is not None and profile not in PROFILES:
        raise _fail(f"unknown --profile {quoted(profile)}; expected one of {', '.join(PROFILES)}")
    folder = _resolve_series_dir(series_dir)
    sets = _sets_in(folder)
    try:
        results = evaluate(folder, sets, warn=_warn)
    except SeriesFormatError as exc:
        raise _fail(str(exc)) from None  # it names the file
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot evaluate on {folder}: {exc}") from None
    for r in results:
        if not r.windows:
            _note(f"the {r.name} set has no window to score, so it has no score (n/a)")
    profiles = [profile] if profile else list(PROFILES)
    with _standard_output():
        if as_json:
            rows = [r.as_dict(with_files=per_file) for r in results]
            for row in rows:
                row["scores"] = {p: row["scores"][p] for p in profiles}
            typer.echo(json.dumps(rows, indent=2))
            return
        header = f"{'set':<18}{'files':>6}{'windows':>8}{'caught':>7}{'missed':>7}{'false':>7}"
        typer.echo(header + "".join(f"{p:>20}" for p in profiles))
        for r in results:
            line = f"{r.name:<18}{r.files:>6}{r.windows:>8}{r.caught:>7}{r.missed:>7}"
            line += f"{r.false_alarms:>7}" + "".join(_score_cell(r.scores[p]) for p in profiles)
            typer.echo(line)
        if per_file:
            for r in results:
                _echo_files(r)


def _echo_files(result: SetResult) -> None:
    """One line per file of a set: its kind, window counts and raw standard score (NAB's
    per-file sum before normalising; below 0, the file cost the set more than it earned)."""
    width = max([len("file"), *(len(f.name) for f in result.per_file)]) + 2
    typer.echo(f"\n{result.name}, per file (raw standard score):")
    header = f"{'file':<{width}}{'kind':<12}{'windows':>8}{'caught':>7}{'missed':>7}{'false':>7}"
    typer.echo(header + f"{'raw':>8}")
    for f in result.per_file:
        line = f"{f.name:<{width}}{f.kind:<12}{f.windows:>8}{f.caught:>7}{f.missed:>7}"
        typer.echo(line + f"{f.false_alarms:>7}{f.raw_standard:>8.2f}")


def _sets_in(folder: Path) -> list[str]:
    """The labelled sets that ``folder`` holds, with a note for each one it lacks; an error
    when it holds none."""
    if folder.is_file():
        raise _fail(f"{folder} is a file, not a folder; {_SERIES_DIR_HINT}")
    if not folder.is_dir():
        raise _fail(f"data folder {folder} not found; pass --series-dir or set {DATA_DIR_ENV}")
    for name in SETS:
        if (folder / name / WINDOWS_FILE).is_dir():
            raise _fail(
                f"{folder / name / WINDOWS_FILE} is a folder, not a file; it must be the "
                f"{name} set's JSON file of windows"
            )
    present = [name for name in SETS if (folder / name / WINDOWS_FILE).is_file()]
    missing = [f"{name}/{WINDOWS_FILE}" for name in SETS if name not in present]
    if not present:
        raise _fail(f"{folder} has no {' or '.join(missing)}; {_SERIES_DIR_HINT}")
    for name in missing:
        _note(f"{folder} has no {name}; evaluating {', '.join(present)} only")
    return present


_SERIES_DIR_HINT = (
    f"--series-dir takes the folder that holds {' and '.join(f'{name}/' for name in SETS)}"
)


def _score_cell(score: float | None) -> str:
    return f"{'n/a' if score is None else f'{score:.1f}':>20}"


def bench_detect_command(
    flows: int = typer.Option(1000, "--flows", min=1, help="Flows, each with its own state."),
    minutes: int = typer.Option(3, "--minutes", min=1, help="Minutes of data evaluated."),
    data_dir: Path | None = data_dir_option(
        "Embedded store folder for the bench (default: a temporary one)."
    ),
) -> None:
    """Time the detector runner's per-minute evaluation of every flow, store queries included."""
    check_bench_folder(data_dir, "--data-dir", made_if_missing=True)
    try:
        with tempfile.TemporaryDirectory(prefix="seamwatch-bench-") as scratch:
            result = bench_in_scratch_store(Path(data_dir or scratch), flows, minutes)
    except StoreError as exc:  # a store that another process holds, a folder not writable
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    verdict = "within" if result.meets_target else "over"
    typer.echo(
        f"runner, {result.flows} flows, {result.spans_per_minute:,.0f} spans a minute: "
        f"{result.wall_seconds:.3f} s wall (worst {result.worst_wall_seconds:.3f} s), "
        f"{result.cpu_seconds:.3f} s CPU per minute of data = {result.core_percent:.2f} % of one "
        f"core; {verdict} the {TARGET_SECONDS_PER_MINUTE:g} s target"
    )
    typer.echo(
        f"  per minute: series query {result.query_seconds:.3f} s, lineage checks "
        f"{result.watch_seconds:.3f} s, signals and alerts {result.detect_seconds:.3f} s "
        f"(mean of {result.minutes} minutes, {result.alerts_opened} alerts opened; setup "
        f"{result.setup_seconds:.1f} s)"
    )
    old = bench_series_alarms(flows)
    typer.echo(
        "the series detectors of detect-series and evaluate, one per-minute value each (latency "
        f"and error rate, no store; the runner does not use the latency one), {old.flows} flows: "
        f"{old.wall_seconds:.3f} s wall, {old.cpu_seconds:.3f} s CPU = "
        f"{old.core_percent:.2f} % of one core"
    )


def bench_series_command(
    rows: str = typer.Option(
        "60000,200000", "--rows", help="Per-minute rows of each series, comma-separated."
    ),
    kinds: str = typer.Option(
        "latency,error_rate", "--kind", help="Detectors to time, comma-separated."
    ),
) -> None:
    """Time detect-series on generated per-minute series: reading, then scoring and writing."""
    sizes = _positive_counts(rows, "--rows")
    chosen = [kind.strip() for kind in kinds.split(",")]
    unknown = [kind for kind in chosen if kind not in SERIES_KINDS]
    if unknown:
        raise _fail(f"unknown --kind {quoted(unknown[0])}; expected {', '.join(SERIES_KINDS)}")
    with tempfile.TemporaryDirectory(prefix="seamwatch-bench-") as scratch:
        for kind in chosen:
            for size in sizes:
                result = bench_detect_series(kind, size, Path(scratch))
                typer.echo(
                    f"detect-series --kind {kind}, {size:,} per-minute rows: "
                    f"{result.total_seconds:.1f} s (read {result.read_seconds:.1f} s, score "
                    f"and write {result.score_seconds:.1f} s) = "
                    f"{result.rows_per_second:,.0f} rows a second"
                )


def _positive_counts(text: str, option: str) -> list[int]:
    """Comma-separated whole numbers above 0, or a one-line error naming ``option``."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise _fail(f"{option} takes whole numbers above 0, comma-separated, e.g. 60000,200000")
    return counts
