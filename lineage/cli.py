"""Command functions of lineage and reconciliation; seamwatch.cli registers them by name.

``seamwatch lineage`` and ``seamwatch reconcile`` answer from the store, or from the running
``seamwatch up`` through its API when that process holds the embedded store, and print the
same answer the API and the dashboard pages give.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import typer

from lineage import report
from seamwatch.cli_options import (
    check_bench_folder,
    clickhouse_url_option,
    data_dir_option,
    refuse_each,
    require_store,
)
from seamwatch.times import supported_time_or_ago
from seamwatch.user_text import quoted

BAD_INPUT_EXIT = 2
STORE_EXIT = 1


def _fail(message: str, code: int = BAD_INPUT_EXIT) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def parse_times(**options: str | None) -> list[datetime | None]:
    """Each option (``since="6h"``) as an ISO-8601 time (naive means UTC) or a duration before
    now, within the times the store can hold (:func:`seamwatch.times.check_supported`); every
    one that is neither is refused, one ``Error:`` line each, before the command goes on."""
    times: list[datetime | None] = []
    problems = []
    for name, text in options.items():
        try:
            times.append(None if text is None else supported_time_or_ago(text, f"--{name}"))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise refuse_each(problems)
    return times


class StoreOptions(NamedTuple):
    """Where a command's store is: the ``--data-dir`` and ``--clickhouse-url`` given, if any."""

    data_dir: Path | None
    clickhouse_url: str | None


# reconciling a day of a busy store reads every posting of it: more than a lookup
RECONCILE_TIMEOUT_SECONDS = 60.0


def _answer(
    local: Any,
    api_path: str,
    params: dict[str, Any],
    store: StoreOptions,
    **options: Any,
) -> Any:
    from seamwatch.access import answer
    from seamwatch.api import ApiError
    from seamwatch.settings import SettingsError, load_settings
    from storage import StoreError

    try:
        settings = load_settings(data_dir=store.data_dir, clickhouse_url=store.clickhouse_url)
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    require_store(settings)
    try:
        return answer(settings, local, api_path, params, **options)
    except (StoreError, ApiError) as exc:
        raise _fail(str(exc), STORE_EXIT) from None


def lineage_command(
    key: str | None = typer.Option(None, "--key", help="Business key, e.g. INV-2000123."),
    correlation_id: str | None = typer.Option(None, "--correlation-id", help="Correlation id."),
    trace_id: str | None = typer.Option(None, "--trace-id", help="Trace id (32 hex digits)."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON."),
    data_dir: Path | None = data_dir_option(),
    clickhouse_url: str | None = clickhouse_url_option(),
) -> None:
    """Every hop of one business transaction across its traces, with where it failed."""
    from lineage.lookup import LineageQuery, LineageQueryError, lineage

    try:
        query = LineageQuery(key=key, correlation_id=correlation_id, trace_id=trace_id)
    except LineageQueryError as exc:
        raise _fail(_as_options(str(exc))) from None
    where = StoreOptions(data_dir, clickhouse_url)
    document = _answer(lambda store: lineage(store, query), "/lineage", query.as_dict(), where)
    _print(document, as_json, report.lineage_text)


def _as_options(message: str) -> str:
    """A lookup or reconcile error in the words of the command line: ``trace_id`` reads
    ``--trace-id``, ``since (10:00 UTC)`` reads ``--since (10:00 UTC)``."""
    return re.sub(
        r"\b(key|correlation_id|trace_id|since(?= \()|until(?= \())\b",
        lambda found: "--" + found.group(1).replace("_", "-"),
        message,
    )


def reconcile_command(
    since: str | None = typer.Option(
        None, "--since", help="Start of the window: a time or a duration before now [1 day]."
    ),
    until: str | None = typer.Option(None, "--until", help="End of the window [now]."),
    target: str = typer.Option("erp", "--target", help="System of record to reconcile with."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON."),
    data_dir: Path | None = data_dir_option(),
    clickhouse_url: str | None = clickhouse_url_option(),
) -> None:
    """Dropped events, duplicate postings, missing master data and failures, by business key."""
    from lineage.reconcile import ReconcileError, Window, reconcile

    start, end = parse_times(since=since, until=until)
    try:
        window = Window.ending(start, end)
    except ReconcileError as exc:
        raise _fail(_as_options(str(exc))) from None
    params = {"since": window.since.isoformat(), "until": window.until.isoformat()}
    params["target"] = target
    document = _answer(
        lambda store: reconcile(store, window.since, window.until, target),
        "/reconciliation",
        params,
        StoreOptions(data_dir, clickhouse_url),
        timeout_seconds=RECONCILE_TIMEOUT_SECONDS,
    )
    _print(document, as_json, report.reconciliation_text)


def bench_lineage_command(
    spans: str = typer.Option(
        "2000000,20000000", "--spans", help="Comma-separated sizes to load and measure at."
    ),
    directory: Path | None = typer.Option(
        None, "--tmp-dir", help="Where the temporary store goes [system temp directory]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Lineage lookup and flow health: derived tables against raw spans, at growing sizes."""
    from lineage.bench import SPANS_PER_TRANSACTION, run_bench

    try:
        sizes = tuple(sorted({int(part.replace("_", "")) for part in spans.split(",")}))
    except ValueError:
        raise _fail(f"--spans {quoted(spans)} must be whole numbers separated by commas.") from None
    if not sizes or sizes[0] < SPANS_PER_TRANSACTION * 10:
        raise _fail(f"--spans sizes must be at least {SPANS_PER_TRANSACTION * 10}.")
    check_bench_folder(directory, "--tmp-dir", made_if_missing=False)

    def progress(done: int, total: int, seconds: float) -> None:
        rate = done / seconds if seconds else 0.0
        typer.echo(f"\r  loaded {done:>12,} / {total:,} spans  ({rate:,.0f}/s)", err=True, nl=False)
        if done >= total:
            typer.echo("", err=True)

    results = run_bench(sizes, progress=progress, directory=directory)
    if as_json:
        typer.echo(json.dumps([vars(result) for result in results], indent=2))
        return
    typer.echo(report.bench_text(results))


def _print(document: Any, as_json: bool, text: Any) -> None:
    if as_json:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    typer.echo(text(document))
