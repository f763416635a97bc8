"""``seamwatch simulate``: play the simulated SaaS-to-ERP stack into an OTLP/HTTP endpoint."""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from sample_data.delivery import (
    ANSWER_SECONDS,
    START_THE_RECEIVER,
    WAKE_THE_RECEIVER,
    receiver_problem,
    receiver_silent,
)
from sample_data.incidents import check_labels_path
from sample_data.simulator import DEFAULT_ENDPOINT, SimProgress, SimSummary, SimulationConfig, run
from seamwatch.cli_options import refuse_each
from seamwatch.durations import parse_duration as parse_any_duration
from seamwatch.times import EARLIEST, LATEST, SUPPORTED_RANGE, check_supported
from seamwatch.user_text import quoted

logger = logging.getLogger(__name__)

Given = TypeVar("Given")
Parsed = TypeVar("Parsed")

_FASTEST = ("max", "inf", "0")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``6h``, ``1d``, ``7d``, ``1h30m`` and so on; ``forever`` means None.

    Raises ValueError with a message that shows the accepted forms.
    """
    return parse_any_duration(text, allow_forever=True)


def parse_speed(text: str) -> float:
    """Simulated seconds per wall-clock second: a positive number (``300`` or ``300x``), or
    ``max`` for as fast as possible.
    """
    value = text.strip().lower()
    if value in _FASTEST:
        return math.inf
    value = value.removesuffix("x")
    try:
        speed = float(value)
    except ValueError:
        speed = math.nan
    if not speed > 0:
        raise ValueError(
            f"{quoted(text)} is not a speed; use a positive number such as 300, or 'max'"
        )
    return speed


def parse_start(text: str) -> datetime:
    """An ISO-8601 moment; without a zone it is taken as UTC. One the store cannot hold is
    refused (:func:`seamwatch.times.check_supported`)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"{quoted(text)} is not an ISO-8601 time such as 2025-03-03T00:00:00Z"
        ) from exc
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return check_supported(moment, "", text)


def simulate_command(
    endpoint: Annotated[
        str, typer.Option(help="OTLP/HTTP base URL; spans go to its /v1/traces.")
    ] = DEFAULT_ENDPOINT,
    seed: Annotated[int, typer.Option(help="Same seed, run and start, same spans and ids.")] = 42,
    run_number: Annotated[
        int,
        typer.Option(
            "--run",
            help="Run number: runs of one seed into one store take different numbers, so no "
            "id or business key of one repeats in another ('up --demo' counts them).",
        ),
    ] = 0,
    duration: Annotated[
        str, typer.Option(help="Simulated time to cover: 30m, 6h, 1d, 7d, ... or 'forever'.")
    ] = "1d",
    speed: Annotated[
        str,
        typer.Option(help="Simulated seconds per wall second (e.g. 300), or 'max' (also 0)."),
    ] = "max",
    labels: Annotated[
        Path | None, typer.Option(help="Append injected incidents here, one JSON line each.")
    ] = None,
    no_incidents: Annotated[
        bool, typer.Option("--no-incidents", help="Simulate a healthy stack.")
    ] = False,
    start: Annotated[
        str | None,
        typer.Option(help="First simulated moment (ISO-8601 UTC); default: now minus duration."),
    ] = None,
) -> None:
    """Simulate a SaaS-to-ERP stack (CRM, CPQ, billing, payments, catalog, support, middleware,
    ERP) and send its OpenTelemetry spans to an OTLP/HTTP endpoint.
    """
    config = _config(endpoint, seed, duration, speed, labels, no_incidents, start, run_number)
    _check_receiver(config.traces_url())
    console = Console(stderr=True)
    summary, stopped_by = _run_with_progress(config, console)
    _print_summary(console, summary, config, stopped=bool(stopped_by))
    if summary.spans_failed:
        raise typer.Exit(code=1)
    if stopped_by:
        raise typer.Exit(code=128 + stopped_by)  # as a shell reports a process ended by it


def _config(
    endpoint: str,
    seed: int,
    duration: str,
    speed: str,
    labels: Path | None,
    no_incidents: bool,
    start: str | None,
    run_number: int = 0,
) -> SimulationConfig:
    # every option is checked before any is refused: one round of fixes, not one per option
    problems: list[tuple[str, str]] = []
    span = _parsed(parse_duration, duration, "'--duration'", problems)
    pace = _parsed(parse_speed, speed, "'--speed'", problems)
    first = _parsed(parse_start, start, "'--start'", problems) if start else None
    if run_number < 0:
        problems.append(("'--run'", f"{run_number} is no run number; use 0 or more"))
    if not problems:
        # checks of the options together, once each of them reads
        if span is None and pace is not None and math.isinf(pace):
            problems.append(
                ("'--speed'", "an endless run needs a finite speed (e.g. --speed 1 for real time)")
            )
        out_of_range = _run_out_of_range(first, span)
        if out_of_range is not None:
            problems.append(("'--duration'", out_of_range))
    if labels is not None:
        _parsed(check_labels_path, labels, "'--labels'", problems)
    try:
        config = SimulationConfig(
            endpoint=endpoint,
            seed=seed,
            start=first,
            duration=span,
            speed=pace if pace is not None else math.inf,
            labels_path=labels,
            incidents=not no_incidents,
            run=max(run_number, 0),
        )
    except ValidationError as exc:
        found = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        problems.append(("'--endpoint'", f"{quoted(endpoint)}: {found}"))
    if len(problems) == 1:
        hint, message = problems[0]
        raise typer.BadParameter(message, param_hint=hint)
    if problems:
        raise refuse_each([f"Invalid value for {hint}: {message}" for hint, message in problems])
    return config


def _parsed(
    parse: Callable[[Given], Parsed], text: Given, hint: str, problems: list[tuple[str, str]]
) -> Parsed | None:
    """``parse(text)``, or None with its ValueError's message added to ``problems``."""
    try:
        return parse(text)
    except ValueError as exc:
        problems.append((hint, str(exc)))
        return None


def _run_out_of_range(first: datetime | None, span: timedelta | None) -> str | None:
    """Why a run whose simulated time leaves what the store can hold is refused (spans after
    2261 would be stored where no query can reach them); None for a run within it."""
    if span is None:
        return None
    if first is None:
        try:
            within = datetime.now(UTC) - span >= EARLIEST
        except OverflowError:
            within = False
        if within:
            return None
        return (
            f"a run of this length up to now would start before {EARLIEST:%Y-%m-%d} (UTC); "
            f"the store holds times from {SUPPORTED_RANGE}; give a shorter --duration"
        )
    try:
        within = first + span <= LATEST
    except OverflowError:
        within = False
    if within:
        return None
    return (
        f"a run of this length from --start would end after {LATEST:%Y-%m-%d} (UTC); the store "
        f"holds times from {SUPPORTED_RANGE}; give an earlier --start or a shorter --duration"
    )


def _check_receiver(traces_url: str) -> None:
    """Stop at once, with one line, when nothing accepts connections at the receiver's
    address, or when what accepts them does not answer: every batch would otherwise wait out
    the exporter's retries or its timeout."""
    problem = receiver_problem(traces_url)
    if problem is not None:
        typer.echo(
            f"Error: Nothing accepts connections at {traces_url} ({problem}). {START_THE_RECEIVER}",
            err=True,
        )
        raise typer.Exit(code=1)
    if receiver_silent(traces_url):
        typer.echo(
            f"Error: The receiver at {traces_url} accepted the connection but did not answer "
            f"within {ANSWER_SECONDS:g} s. {WAKE_THE_RECEIVER}",
            err=True,
        )
        raise typer.Exit(code=1)


def _run_with_progress(config: SimulationConfig, console: Console) -> tuple[SimSummary, int]:
    """Run on a worker thread until done or stopped by SIGINT or SIGTERM.

    Returns the summary and the number of the signal that stopped the run (0 when it ran to
    its end). A stopped run still flushes every span generated so far.
    """
    stop = threading.Event()
    done = threading.Event()
    outcome: dict[str, SimSummary | BaseException] = {}
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if config.duration is not None:
        columns += [BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("starting", total=1.0 if config.duration is not None else None)

        def report(state: SimProgress) -> None:
            bar.update(task, completed=state.fraction or 0.0, description=_describe(state))

        def work() -> None:
            try:
                outcome["summary"] = run(config, stop, report)
            except BaseException as exc:  # handed to the main thread, which re-raises it
                outcome["error"] = exc
            finally:
                done.set()

        with _stop_on_signals(stop, console) as received:
            threading.Thread(target=work, name="simulator", daemon=True).start()
            # an Event rather than Thread.join: a join interrupted by a signal can return
            # while the thread still runs, before the summary exists
            while not done.wait(0.2):
                pass
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["summary"], received[0] if received else 0  # type: ignore[return-value]


@contextmanager
def _stop_on_signals(stop: threading.Event, console: Console) -> Iterator[list[int]]:
    """While inside, SIGINT and SIGTERM set ``stop`` instead of raising; yields the signals seen.

    Off the main thread (where handlers cannot be set) nothing is installed.
    """
    received: list[int] = []

    def on_signal(number: int, frame: object) -> None:
        if not received:
            console.print("Stopping: flushing the spans generated so far...")
        received.append(number)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {number: signal.signal(number, on_signal) for number in _STOP_SIGNALS}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _describe(state: SimProgress) -> str:
    when = state.sim_time.strftime("%Y-%m-%d %H:%M")
    rate = state.spans_emitted / state.wall_seconds if state.wall_seconds else 0.0
    failed = f", [red]{state.spans_failed:,} failed[/red]" if state.spans_failed else ""
    return (
        f"{when} UTC  {state.spans_emitted:,} spans ({rate:,.0f}/s){failed}  "
        f"{state.transactions:,} transactions  {state.incidents} incidents"
    )


def _print_summary(
    console: Console, summary: SimSummary, config: SimulationConfig, *, stopped: bool = False
) -> None:
    console.print(
        ("Stopped early. " if stopped else "")
        + f"Simulated {summary.sim_start:%Y-%m-%d %H:%M} to {summary.sim_end:%Y-%m-%d %H:%M} UTC: "
        f"{summary.spans_emitted:,} spans ({summary.spans_exported:,} exported, "
        f"{summary.spans_failed:,} failed) from {summary.transactions:,} transactions, "
        f"{len(summary.incidents)} incidents, in {summary.wall_seconds:.1f}s "
        f"({summary.spans_per_second:,.0f} spans/s)."
    )
    if summary.spans_failed:
        console.print(f"[red]Some spans could not be exported to {config.traces_url()}.[/red]")
    if config.labels_path is not None and summary.incidents:
        console.print(f"Incident labels appended to {config.labels_path}.")
    elif config.labels_path is not None:
        console.print(f"No incident happened; a line appended to {config.labels_path} says so.")
