"""Command functions for the detector runner and the alerts; the application registers them.

``seamwatch detectors`` runs the runner in the foreground (the distributed mode); on the
embedded store it serves the JSON API on a loopback port while it runs.
``seamwatch alerts`` lists alerts and, with its sub-commands, acknowledges and silences them.
When ``seamwatch up`` or ``seamwatch detectors`` holds the embedded store, the alert commands
ask that process through its JSON API and print the same answer. Options given to ``alerts``
before a sub-command (``seamwatch alerts --data-dir DIR silence ...``) count as if given after
it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from typer.core import TyperGroup

from detectors.alert_actions import (
    ALERT_KINDS,
    LONGEST_SILENCE,
    STATES,
    TEXT_FIELD_LIMITS,
    AlertActionError,
    acknowledge,
    add_silence,
    api_times,
    cancel_silence,
    check_free_text,
    check_pattern_lengths,
    check_silence_length,
)
from detectors.alert_text import alert_summary, kind_names
from detectors.alerts_api import alerts_document, silences_document
from detectors.runner import DetectorRunner, RunnerThread, evaluation_timing
from detectors.severity import (
    DEFAULT_SEVERITY_FILE,
    SEVERITY_FILE_ENV,
    SeverityFileError,
    load_severity,
    severity_in_force,
)
from detectors.silence_scope import silenced_kind
from seamwatch import runtime
from seamwatch.access import act, answer
from seamwatch.api import ApiError, ApiRefused
from seamwatch.api_server import ApiServer, ApiServerError, serve_api
from seamwatch.cli_args import repeat_advice
from seamwatch.cli_options import clickhouse_url_option, data_dir_option, require_store
from seamwatch.durations import parse_duration
from seamwatch.logs import configure_logging
from seamwatch.settings import Settings, SettingsError, load_settings
from seamwatch.stopping import stop_on_signals
from seamwatch.tables import cut, text_table
from seamwatch.times import readable_utc, table_time
from seamwatch.user_text import TextProblem, check_text, one_line, quoted
from storage import Store, StoreError
from storage.pending import open_store_or_pending, wait_for_server

logger = logging.getLogger(__name__)

BAD_INPUT_EXIT = 2
STORE_EXIT = 1
INTERRUPTED_EXIT = 130  # as a shell reports a command ended by Ctrl-C

DataDirOption = data_dir_option()
ClickHouseOption = clickhouse_url_option()
SeverityOption = typer.Option(
    None,
    "--severity",
    help=f"Severity file [env {SEVERITY_FILE_ENV}; default: the built-in one]. When a running "
    "Seamwatch holds the store, it ranks with its own severity file and a warning says so.",
)


def _fail(message: str, code: int = BAD_INPUT_EXIT) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def _settings(data_dir: Path | None, clickhouse_url: str | None) -> Settings:
    try:
        return load_settings(data_dir=data_dir, clickhouse_url=clickhouse_url)
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _alert_settings(
    ctx: typer.Context, data_dir: Path | None, clickhouse_url: str | None
) -> Settings:
    """Settings of an alert command over an existing store; the group's options fill gaps."""
    settings = _settings(
        _with_group(ctx, "data_dir", data_dir), _with_group(ctx, "clickhouse_url", clickhouse_url)
    )
    require_store(settings)
    return settings


def _with_group(ctx: typer.Context, name: str, value: Any) -> Any:
    """``value`` if given to this command, else what was given to the ``alerts`` group."""
    if _given(ctx, name) or ctx.parent is None or name not in ctx.parent.params:
        return value
    return ctx.parent.params[name]


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was set on the command line or by its variable, not defaulted."""
    source = ctx.get_parameter_source(name)
    # Typer ships its own click, so its ParameterSource is compared by name.
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _refuse_unused_group_options(ctx: typer.Context) -> None:
    """Options given to ``alerts`` that its sub-command cannot use are an error, not ignored."""
    if not isinstance(ctx.command, TyperGroup):
        return
    command = ctx.command.get_command(ctx, ctx.invoked_subcommand or "")
    takes = {param.name for param in command.params} if command else set()
    for param in ctx.command.params:
        if _given(ctx, param.name or "") and param.name not in takes:
            raise _fail(
                f"{param.opts[0]} does not apply to 'alerts {ctx.invoked_subcommand}'; "
                "leave it out, or use it to list alerts (without a sub-command)."
            )


def _guarded(action: Callable[[], Any]) -> Any:
    """Run ``action``, turning every expected failure into a one-line error and exit code."""
    try:
        return action()
    except (AlertActionError, SeverityFileError, ApiRefused) as exc:
        raise _fail(str(exc)) from None
    except (StoreError, ApiError, ApiServerError) as exc:
        raise _fail(str(exc), STORE_EXIT) from None


def detectors_command(
    once: bool = typer.Option(False, "--once", help="Catch up to now, then exit."),
    data_dir: Path | None = DataDirOption,
    clickhouse_url: str | None = ClickHouseOption,
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error"),
) -> None:
    """Run the detectors alone: evaluate every minute into alerts (Ctrl-C stops).

    On the embedded store, 'seamwatch alerts' and its sub-commands work while this runs: they
    ask this process through the JSON API it serves on a loopback port."""
    try:
        configure_logging(log_level)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    settings = _settings(data_dir, clickhouse_url)
    require_store(settings)

    def run() -> None:
        # the tiers' error budgets are judged: a broken severity file stops the start
        severity_in_force()
        # before the store opens (a second or more for the embedded engine): a Ctrl-C then
        # ends the command as one during the catch-up does, with its position said
        stop = stop_on_signals()
        store, _ = open_store_or_pending(settings)
        api = None
        try:
            if not wait_for_server(store, stop, "The detectors start once it does"):
                typer.echo("Detectors stopped before the ClickHouse server answered.")
                if once:
                    raise typer.Exit(INTERRUPTED_EXIT)
                return
            api = serve_api(store, settings)
            if once:
                _catch_up_once(DetectorRunner(store), stop, settings.evaluation_delay)
            else:
                _evaluate_until_stopped(store, api, stop, settings.evaluation_delay)
        finally:
            # the notifier records its last deliveries while the store still takes them
            runtime.store_closing()
            if api is not None:
                api.stop()
            store.close()

    _guarded(run)


def _catch_up_once(runner: DetectorRunner, stop: threading.Event, delay: timedelta) -> None:
    # up to the minutes the continuous runner would have judged by now, so that a minute is
    # judged with the same late spans whichever way the detectors run. Ctrl-C ends the
    # catch-up after the minute in progress, whose position is saved, and says where it
    # stopped: a week's first catch-up takes minutes
    report = runner.catch_up(datetime.now(UTC) - delay, stop)
    if stop.is_set():
        typer.echo(
            f"Detectors stopped; minutes evaluated: {_evaluated(report.evaluated_until)}. "
            "Run again to continue from there."
        )
        raise typer.Exit(INTERRUPTED_EXIT)
    typer.echo(
        f"Evaluated {report.minutes} minute(s) of {report.series} series: "
        f"{report.opened} opened, {report.resolved} resolved, "
        f"{len(report.open_alerts)} open."
    )


def _evaluate_until_stopped(
    store: Store, api: ApiServer | None, stop: threading.Event, delay: timedelta
) -> None:
    """Evaluate in a thread, as ``seamwatch up`` does, until SIGINT or SIGTERM."""
    serving = f" JSON API for 'seamwatch alerts': {api.endpoint}/api/v1." if api else ""
    typer.echo(f"Detectors running; {evaluation_timing(delay)}.{serving} Press Ctrl-C to stop.")
    detectors = RunnerThread(store, delay)
    detectors.start()
    # short waits: a signal caught by another thread reaches this one only between them
    while not stop.wait(1.0):
        pass
    typer.echo("Stopping the detectors after the minute in progress...")
    detectors.stop()
    typer.echo(f"Detectors stopped; minutes evaluated: {_evaluated(detectors.runner.cursor)}.")


def _evaluated(cursor: datetime | None) -> str:
    """How far the runner got, e.g. ``up to 2026-12-04 13:52 UTC``; ``none yet`` when no span
    was stored or the stop came while the first start was still learning the week before."""
    return f"up to {cursor:%Y-%m-%d %H:%M} UTC" if cursor else "none yet"


def alerts_command(
    ctx: typer.Context,
    state: str = typer.Option("open", "--state", help="open, resolved or all."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    severity_file: Path | None = SeverityOption,
    data_dir: Path | None = DataDirOption,
    clickhouse_url: str | None = ClickHouseOption,
) -> None:
    """List alerts: flow, target, kind, tier, priority, money at risk, opened and resolved
    times, and under each a line that says what is wrong.

    Options before a sub-command (--data-dir, --clickhouse-url, --json) apply to it.
    """
    if ctx.invoked_subcommand is not None:
        _refuse_unused_group_options(ctx)
        return
    if state not in STATES:
        raise _fail(f"--state {quoted(state)} is not one of {', '.join(STATES)}.")
    settings = _alert_settings(ctx, data_dir, clickhouse_url)
    ranked_here = []  # answer() runs local only when this process can open the store

    def local(store: Store) -> dict[str, Any]:
        ranked_here.append(True)
        return alerts_document(store, load_severity(severity_file, option="--severity"), state)

    document = _guarded(lambda: answer(settings, local, "/alerts", {"state": state}))
    if not ranked_here:
        in_force = document.get("severity") or {}
        _warn_severity_unused(severity_file, in_force.get("file"))
        _warn_severity_refused(in_force)
    alerts = document["alerts"]
    if as_json:
        typer.echo(json.dumps(alerts, indent=2))
        return
    typer.echo(format_alerts(alerts, state, _terminal_columns()))


def _terminal_columns() -> int:
    """The terminal's width (``COLUMNS`` if set); 0 when the output goes elsewhere."""
    return shutil.get_terminal_size(fallback=(0, 0)).columns


def _warn_severity_unused(severity_file: Path | None, in_force: str | None) -> None:
    """Say that the running process ranked the alerts, if another severity file was asked for
    than the one ``in_force`` there (a process that does not say which is taken to differ)."""
    path = severity_file or os.environ.get(SEVERITY_FILE_ENV)
    if not path or (in_force and Path(path).resolve() == Path(in_force)):
        return
    if severity_file is not None:
        asked = f"--severity {severity_file}"
    else:
        asked = f"{SEVERITY_FILE_ENV}={path}"
    restart = f"restart the process with {SEVERITY_FILE_ENV} set to yours"
    if in_force and Path(in_force) == DEFAULT_SEVERITY_FILE.resolve():
        # the built-in file belongs to the package: an edit there is lost with the next install
        ranks_with, remedy = "the built-in severity file", restart
    else:
        ranks_with = f"the file {in_force}" if in_force else "its own severity file"
        remedy = f"edit that file (the process reads it again), or {restart}"
    typer.echo(
        f"Warning: {asked} is not used: the running Seamwatch that holds the store ranks alerts "
        f"with {ranks_with}; to rank with yours, {remedy}.{_severity_problem(severity_file)}",
        err=True,
    )


def _severity_problem(severity_file: Path | None) -> str:
    """Why the severity file asked for (``--severity``, else the variable) could not be used
    either, begun on the same line; empty when it is good."""
    try:
        load_severity(severity_file, option="--severity")
    except SeverityFileError as exc:
        return f" It is also invalid; fix it before ranking with it:\n{exc}"
    return ""


def _warn_severity_refused(in_force: dict[str, Any]) -> None:
    """Say that the running process kept its last good severity file, and why."""
    if not in_force.get("refused"):
        return
    stamp = in_force.get("modified_at")
    modified = f" (modified {readable_utc(stamp)})" if stamp else ""
    typer.echo(
        f"Warning: the running Seamwatch ranks with the last good version of "
        f"{in_force.get('file')}{modified}; the file as it is now is refused:\n"
        f"{in_force['refused']}",
        err=True,
    )


def format_alerts(alerts: list[dict[str, Any]], state: str = "all", width: int = 0) -> str:
    """A table of alerts, or a line saying there are none (in ``state``).

    Columns are as wide as their widest value, flows and kinds cut at a limit, so that the
    table fits a terminal; the money at risk is never cut (each currency side by side, as
    chat writes it); state, scores, amounts and every kind joined are in --json. An
    open alert's resolved time is ``-``. Under each alert's row, an indented line says what
    is wrong (its summary), cut to the table's width or ``width`` if wider (the terminal's
    columns); the whole sentence is in --json.
    """
    if not alerts:
        if state == "all":
            return "No alerts."
        return f"No {state} alerts (--state all lists every alert)."
    header, *rows = text_table(ALERT_COLUMNS, [_alert_cells(alert) for alert in alerts]).split("\n")
    room = max(width, len(header), *(len(row) for row in rows)) - len(SUMMARY_INDENT)
    lines = [header]
    for row, alert in zip(rows, alerts, strict=True):
        summary = " ".join((alert.get("summary") or alert_summary(alert)).split())
        lines += [row, SUMMARY_INDENT + cut(summary, room)]
    return "\n".join(lines)


ALERT_COLUMNS = (
    "id",
    "flow",
    "target",
    "kind",
    "tier",
    "priority",
    "at risk",
    "opened (UTC)",
    "resolved (UTC)",
    "notes",
)
# Sets each alert's summary line apart from the rows of the table.
SUMMARY_INDENT = "    "
# The widest a flow, target or one kind may be in the table before it is cut with an
# ellipsis; a kind may be an alert's category ("category:master_data_missing"), which must
# read whole.
FLOW_WIDTH = 28
TARGET_WIDTH = 12
KIND_WIDTH = 34


def _alert_cells(alert: dict[str, Any]) -> list[str]:
    notes = []
    if alert.get("acknowledged_by"):
        notes.append(f"ack {one_line(alert['acknowledged_by'])}")
    if alert.get("silenced_by"):
        notes.append(f"silenced {alert['silenced_by']}")
    # the kind that opened the alert, then every other kind it has shown, each named (a
    # failure category as category:NAME), so that the summary's kind is among them
    opening, *joined = (cut(name, KIND_WIDTH) for name in kind_names(alert))
    kinds = " ".join([opening, *(f"+{name}" for name in joined)])
    return [
        alert["alert_id"],
        cut(alert["flow"], FLOW_WIDTH),
        cut(alert["target"], TARGET_WIDTH),
        kinds,
        alert["tier"],
        f"{alert['priority']:5.1f} {alert['priority_label']}",
        # each currency whole, never cut: a cut could hide one (an answer without it: "-")
        alert.get("money_text") or "-",
        table_time(alert["opened_at"]),
        table_time(alert.get("resolved_at")),
        ", ".join(notes),
    ]


def _path_part(identifier: str, what: str, listing: str) -> str:
    """``identifier`` as one segment of an API path; an empty one is refused here, so the
    answer is the same whether a running process or the store itself is asked."""
    if not identifier.strip():
        raise _fail(f"the {what} id is empty; list them with '{listing}'")
    return quote(identifier, safe="")


# who acts when --by is not given: read when the command runs, not when the help is built
BY_DEFAULT = "[default: $USER, else someone]"


def _who(by: str | None) -> str:
    """``--by`` as given, else the login name of who runs the command, else ``someone``; a
    login name that cannot be recorded is named as ``$USER``, not as an option not given."""
    if by is not None:
        return by
    user = os.environ.get("USER") or "someone"
    try:
        return check_text("$USER", user, TEXT_FIELD_LIMITS["by"])
    except TextProblem as exc:
        raise _fail(f"{exc}; or give --by") from None


def ack_command(
    ctx: typer.Context,
    alert_id: str = typer.Argument(..., help="The alert's id, as listed by 'seamwatch alerts'."),
    by: str | None = typer.Option(None, "--by", help=f"Who acknowledges {BY_DEFAULT}."),
    note: str = typer.Option("", "--note", help="What is being done."),
    take_over: bool = typer.Option(
        False, "--take-over", help="Acknowledge an alert someone else has acknowledged."
    ),
    data_dir: Path | None = DataDirOption,
    clickhouse_url: str | None = ClickHouseOption,
) -> None:
    """Acknowledge an open alert: someone is on it.

    An alert someone else has acknowledged is refused, and nothing changes, unless
    --take-over is given; every acknowledgement is kept either way.
    """
    by = _who(by)
    _check_options({"by": by, "note": note})
    settings = _alert_settings(ctx, data_dir, clickhouse_url)
    body = {"by": by, "note": note, "take_over": take_over}
    path = f"/alerts/{_path_part(alert_id, 'alert', 'seamwatch alerts')}/ack"
    result = _guarded(
        lambda: act(
            settings,
            lambda store: api_times(acknowledge(store, alert_id, by, note, take_over=take_over)),
            path,
            body,
        )
    )
    message = f"Alert {result['alert_id']} acknowledged by {one_line(result['acknowledged_by'])}"
    previous = result.get("taken_over_from")
    if previous:
        message += (
            f", taking over from {one_line(previous['by'])} "
            f"(acknowledged {readable_utc(previous['at'])})"
        )
    typer.echo(message + ".")


def _check_options(values: dict[str, str], patterns: dict[str, str] | None = None) -> None:
    """Refuse a free-text option that is too long or holds a control character, or a pattern
    that is too long, naming it as typed (``--by``), before any store or running process is
    asked."""
    try:
        check_free_text(values, prefix="--")
        check_pattern_lengths(patterns or {}, prefix="--")
    except AlertActionError as exc:
        raise _fail(str(exc)) from None


@repeat_advice(
    **{
        name: f"a silence takes one --{name}: give a glob that matches every {name} meant, or "
        "make one silence for each"
        for name in ("flow", "target", "kind")
    }
)
def silence_command(
    ctx: typer.Context,
    duration: str = typer.Option(..., "--for", help="How long, e.g. 30m, 2h, 1d; at most 365d."),
    flow: str = typer.Option("*", "--flow", help="Flow name or glob."),
    target: str = typer.Option("*", "--target", help="Target system or glob."),
    kind: str = typer.Option(
        "*",
        "--kind",
        help=f"{', '.join(ALERT_KINDS)} or a glob; or category:NAME for one failure category, "
        "as 'seamwatch alerts' shows it.",
    ),
    everything: bool = typer.Option(
        False, "--all", help="Silence every alert; needed when no --flow, --target or --kind."
    ),
    reason: str = typer.Option("", "--reason", help="Why, for the people who see it."),
    by: str | None = typer.Option(None, "--by", help=f"Who silences {BY_DEFAULT}."),
    data_dir: Path | None = DataDirOption,
    clickhouse_url: str | None = ClickHouseOption,
) -> None:
    """Silence matching alerts until the silence expires (they are still recorded).

    A warning names a --flow or --target that matches nothing seen so far; the silence is
    kept, for a flow that comes later.
    """
    length = _silence_length(duration)
    by = _who(by)
    _check_options({"reason": reason, "by": by}, {"flow": flow, "target": target, "kind": kind})
    settings = _alert_settings(ctx, data_dir, clickhouse_url)
    body = {
        "seconds": length.total_seconds(),
        "flow": flow,
        "target": target,
        "kind": kind,
        "all": everything,
        "reason": reason,
        "by": by,
    }

    def local(store: Store) -> dict[str, Any]:
        patterns = (flow, target, kind, reason, by)
        return add_silence(store, length, *patterns, everything=everything)

    result = _guarded(lambda: act(settings, local, "/silences", body))
    for warning in result.get("warnings", []):
        typer.echo(f"Warning: {warning}", err=True)
    expires = readable_utc(result["expires_at"])
    typer.echo(f"Silence {result['silence_id']} in force until {expires}.")


def unsilence_command(
    ctx: typer.Context,
    silence_id: str = typer.Argument(..., help="The silence's id."),
    data_dir: Path | None = DataDirOption,
    clickhouse_url: str | None = ClickHouseOption,
) -> None:
    """End a silence before it expires."""
    settings = _alert_settings(ctx, data_dir, clickhouse_url)
    path = f"/silences/{_path_part(silence_id, 'silence', 'seamwatch alerts silences')}/cancel"
    result = _guarded(
        lambda: act(
            settings,
            lambda store: cancel_silence(store, silence_id),
            path,
            {},
        )
    )
    typer.echo(f"Silence {result['silence_id']} ended at {readable_utc(result['cancelled_at'])}.")


def silences_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
    data_dir: Path | None = DataDirOption,
    clickhouse_url: str | None = ClickHouseOption,
) -> None:
    """List the silences in force: what each matches, who created it, until when and why."""
    settings = _alert_settings(ctx, data_dir, clickhouse_url)
    document = _guarded(lambda: answer(settings, silences_document, "/silences"))
    silences = document["silences"]
    if _with_group(ctx, "as_json", as_json):
        typer.echo(json.dumps(silences, indent=2))
        return
    typer.echo(format_silences(silences))


SILENCE_COLUMNS = ("id", "flow", "target", "kind", "by", "until (UTC)", "reason")


def format_silences(silences: list[dict[str, Any]]) -> str:
    """A table of silences: what each matches, who created it, until when and why."""
    if not silences:
        return "No silences in force."
    rows = [
        [
            item["silence_id"],
            one_line(item["flow"]),
            one_line(item["target"]),
            one_line(silenced_kind(item)),
            one_line(item["created_by"]) or "-",
            table_time(item["expires_at"]),
            one_line(item["reason"]),
        ]
        for item in silences
    ]
    return text_table(SILENCE_COLUMNS, rows)


def _silence_length(text: str) -> timedelta:
    try:
        length = parse_duration(text, longest=LONGEST_SILENCE)
        check_silence_length(length)
    except AlertActionError as exc:
        raise _fail(f"--for {quoted(text)}: {exc}") from None
    except ValueError as exc:  # parse_duration's errors quote the text already
        raise _fail(f"--for {exc}") from None
    return length


def alerts_app() -> typer.Typer:
    """The ``alerts`` command group: list (no sub-command), ack, silence, unsilence, silences."""
    group = typer.Typer(
        help="List, acknowledge and silence alerts.", no_args_is_help=False, rich_markup_mode=None
    )
    group.callback(invoke_without_command=True)(alerts_command)
    group.command("ack")(ack_command)
    group.command("silence")(silence_command)
    group.command("unsilence")(unsilence_command)
    group.command("silences")(silences_command)
    return group
