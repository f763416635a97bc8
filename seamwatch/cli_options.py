"""Command-line options that several command groups share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from seamwatch.settings import DEFAULT_DATA_DIR, EMPTY_DATA_DIR, FILE_AS_DATA_DIR, Settings
from storage.embedded import holds_a_store

BAD_INPUT_EXIT = 2  # as every command exits on an option to correct


def refuse_each(problems: list[str]) -> typer.Exit:
    """One ``Error:`` line for each of ``problems`` (every mistake of a command line in one
    round); the exit to raise after them."""
    for problem in problems:
        typer.echo(f"Error: {problem}", err=True)
    return typer.Exit(BAD_INPUT_EXIT)


def store_folder(text: str) -> Path:
    """A ``--data-dir`` value as a path; an empty one is refused rather than read as the
    working folder, where the store, spool and lock would be scattered.

    The refusal is one ``Error:`` line, as for every other option to correct: the command
    line library's own refusal would print its usage lines above it."""
    if not text.strip():
        typer.echo(f"Error: --data-dir {EMPTY_DATA_DIR}, or leave the option out.", err=True)
        raise typer.Exit(BAD_INPUT_EXIT)
    return Path(text)


def check_bench_folder(folder: Path | None, option: str, *, made_if_missing: bool) -> None:
    """Refuse a benchmark's folder option that names a file, or nothing when the benchmark
    does not make it, in one ``Error:`` line and exit code 2 as for a command's --data-dir:
    the store or the temporary folder failed in a traceback. None (not given) passes."""
    if folder is None:
        return
    if folder.is_file():
        problem = FILE_AS_DATA_DIR
    elif not made_if_missing and not folder.is_dir():
        problem = "is no folder; create it first, or leave the option out"
    else:
        return
    typer.echo(f"Error: {option} {folder} {problem}.", err=True)
    raise typer.Exit(BAD_INPUT_EXIT)


DATA_DIR_HELP = f"Embedded store directory [env SEAMWATCH_DATA_DIR; default {DEFAULT_DATA_DIR}]"


def data_dir_option(help_text: str = DATA_DIR_HELP) -> Any:
    """The ``--data-dir`` option of every command that opens the store; its help names the
    variable and default that every such command falls back on, as ``--clickhouse-url``'s."""
    return typer.Option(None, "--data-dir", parser=store_folder, help=help_text)


CLICKHOUSE_URL_HELP = (
    "Use a ClickHouse server instead of the embedded store, e.g. "
    "http://default:@127.0.0.1:8123/seamwatch [env SEAMWATCH_CLICKHOUSE_URL]"
)


def clickhouse_url_option(help_text: str = CLICKHOUSE_URL_HELP) -> Any:
    """The ``--clickhouse-url`` option of every command that opens the store."""
    return typer.Option(None, "--clickhouse-url", help=help_text)


def require_store(settings: Settings) -> None:
    """Refuse a data directory without a store, in one ``Error:`` line naming the path and
    how to make one: a mistyped one must not open as a new, empty store that says "No open
    alerts", "No transaction found" or "Evaluated 0 minute(s)". Only the receivers create it."""
    if settings.uses_server or holds_a_store(settings.data_dir):
        return
    typer.echo(
        f"Error: {_what_is_at(settings.data_dir)}; check --data-dir or SEAMWATCH_DATA_DIR, or "
        "create the store first by running 'seamwatch up' (with --demo for simulated data) or "
        "'seamwatch collector' there.",
        err=True,
    )
    raise typer.Exit(BAD_INPUT_EXIT)


def _what_is_at(data_dir: Path) -> str:
    """What stands where a store was expected, e.g. ``no data directory at /x`` (a file there
    is refused with the settings)."""
    where = data_dir.absolute()
    if data_dir.is_dir():
        return f"no Seamwatch store at {where}"
    return f"no data directory at {where}"
