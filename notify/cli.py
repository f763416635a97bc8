"""``seamwatch notify``: check the notification file, send a test to every destination, and
read the delivery log.

``seamwatch notify test`` posts a sample alert (marked as a test) to each configured
destination, one attempt after another as the live worker would, and says in plain words what
each one answered. ``seamwatch notify check`` validates the file and lists the destinations.
``seamwatch notify log`` lists what became of the notifications, newest first; while
``seamwatch up`` or ``seamwatch detectors`` holds the embedded store, it asks that process.
:func:`with_notifications` gives a long-running command (``seamwatch detectors``) a
``--notify-file`` option and delivers its alerts while it runs.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from detectors.lifecycle import Alert
from detectors.severity import SeverityFileError, load_severity
from notify.delivery_log import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    OUTCOMES,
    DeliveryFilter,
    DeliveryFilterError,
    deliveries_document,
)
from notify.message import OPENED, RESOLVED, build_notification
from notify.outbox import DestinationWorker, RetryPolicy, make_destination
from notify.records import SENT, CallbackRecorder, Outcome
from notify.routing import NOTIFY_FILE_ENV, NotifyFileError, Route, load_routes
from notify.service import (
    Notifications,
    file_problems,
    public_dashboard_url,
    start_notifications,
)
from seamwatch import runtime
from seamwatch.access import answer
from seamwatch.api import ApiError, ApiRefused
from seamwatch.cli_options import (
    clickhouse_url_option,
    data_dir_option,
    refuse_each,
    require_store,
)
from seamwatch.logs import configure_logging
from seamwatch.settings import Settings, SettingsError, load_settings
from seamwatch.tables import cut, text_table
from seamwatch.times import table_time
from seamwatch.user_text import one_line
from storage import StoreError

BAD_INPUT_EXIT = 2
FAILED_EXIT = 1
# A test should answer within seconds: two tries, a short pause between them.
TEST_POLICY = RetryPolicy(attempts=2, deadline_seconds=30.0, first_backoff_seconds=1.0)

NotifyFileOption = typer.Option(
    None, "--notify-file", help=f"Notification destinations (YAML) [env {NOTIFY_FILE_ENV}]"
)


def _fail(message: str, code: int = BAD_INPUT_EXIT) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def _load(notify_file: Path | None) -> tuple[Settings, list[Route]]:
    try:
        settings = load_settings(notify_file=notify_file)
        routes = load_routes(settings.notify_file)
    except (SettingsError, NotifyFileError) as exc:
        raise _fail(str(exc)) from None
    if not routes:
        raise _fail(f"No notification file: pass --notify-file FILE or set {NOTIFY_FILE_ENV}.")
    return settings, routes


def check_command(notify_file: Path | None = NotifyFileOption) -> None:
    """Validate the notification file and list its destinations (URLs are not shown)."""
    _, routes = _load(notify_file)
    for route in routes:
        model = route.model
        flows = ", ".join(model.flows) or "all flows"
        typer.echo(
            f"{route.name}: {route.kind} at {route.host}; {model.min_tier} tier and up, "
            f"{model.min_priority} and up, {flows}; events {', '.join(model.events)}"
        )


def test_command(
    resolve: bool = typer.Option(
        False, "--resolve", help="Also send the sample alert's resolution."
    ),
    notify_file: Path | None = NotifyFileOption,
) -> None:
    """Send a sample alert, marked as a test, to every destination and say what happened."""
    # Each outcome is printed as a sentence below; the delivery log lines would repeat it.
    notify_logger = logging.getLogger("notify")
    level = notify_logger.level
    notify_logger.setLevel(logging.CRITICAL)
    try:
        _send_samples(resolve, notify_file)
    finally:
        notify_logger.setLevel(level)


def _send_samples(resolve: bool, notify_file: Path | None) -> None:
    settings, routes = _load(notify_file)
    try:
        severity = load_severity()
    except SeverityFileError as exc:
        raise _fail(str(exc)) from None
    url = public_dashboard_url(settings)
    if not settings.dashboard_public_url and settings.dashboard_port == 0:
        # 0 means "any free port" to a dashboard that starts; this command starts none
        typer.echo(
            f"Warning: the dashboard port is 0, so the test message links to {url}, which no "
            "browser opens; set SEAMWATCH_DASHBOARD_PUBLIC_URL (or the port the dashboard "
            "runs on) to send working links.",
            err=True,
        )
    now = datetime.now(UTC).replace(microsecond=0)
    failures = 0
    for route in routes:
        worker = DestinationWorker(make_destination(route), CallbackRecorder(_ignore), TEST_POLICY)
        alert = sample_alert(now - _SAMPLE_OPEN_FOR)
        events = [{"event": OPENED, "at": alert.opened_at, "kind": alert.kind, "detail": _DETAIL}]
        if resolve:
            events.append({"event": RESOLVED, "at": now, "kind": alert.kind, "detail": _DETAIL})
        for event in events:
            if event["event"] == RESOLVED:
                alert.state, alert.resolved_at = RESOLVED, now
            notification = build_notification(alert, event, severity, url, test=True)
            outcome = worker.deliver(notification)
            typer.echo(describe_outcome(route, outcome))
            failures += outcome.outcome != SENT
    if failures:
        raise typer.Exit(FAILED_EXIT)


_DETAIL = "This is a test from 'seamwatch notify test'; no flow is affected."
_SAMPLE_OPEN_FOR = timedelta(minutes=7)


def sample_alert(opened: datetime) -> Alert:
    """A plausible open alert for test messages, opened at ``opened``."""
    return Alert(
        alert_id="test0000000000",
        flow="billing.invoice-post",
        target="erp",
        business_object="Invoice",
        kind="error_rate",
        kinds=["error_rate"],
        state="open",
        opened_at=opened,
        updated_at=opened,
        resolved_at=None,
        signal="error_rate",
        score=12.0,
        peak_score=12.0,
        baseline=0.002,
        observed=0.08,
        affected=42,
        failed=42,
        money_at_risk=18_250.0,
        top_error="422 Unprocessable Entity: tax code T9 is not mapped",
        money_by_currency={"EUR": 18_250.0},
    )


def describe_outcome(route: Route, outcome: Outcome) -> str:
    """One sentence on what a destination did with a test message."""
    where = f"{route.name} ({route.kind} at {route.host})"
    tries = f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}"
    if outcome.outcome == SENT:
        return f"{where}: {outcome.event} message delivered, HTTP {outcome.http_status} ({tries})."
    return f"{where}: {outcome.event} message NOT delivered after {tries}: {outcome.reason}"


def _ignore(outcome: Outcome) -> None:
    """The test command prints outcomes itself and keeps no log of them."""


def with_notifications(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with a ``--notify-file`` option, delivering alerts while it runs."""
    signature = inspect.signature(command)
    option = inspect.Parameter(
        "notify_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=NotifyFileOption,
        annotation=Path | None,
    )

    @functools.wraps(command)
    def run(*args: Any, notify_file: Path | None = None, **kwargs: Any) -> None:
        try:
            # the command's own logging starts later: without it now, the line that says
            # where notifications go is dropped, and nothing shows that they are on
            configure_logging(kwargs.get("log_level", "info"))
        except ValueError as exc:
            raise _fail(str(exc)) from None
        notifications = _start_notifications(notify_file, kwargs)
        if notifications is None:
            command(*args, **kwargs)
            return
        # the command stops them before it closes its store, so that their last outcomes are
        # recorded; here too, for a command that ends before it opens one
        taken_back = runtime.before_store_closes(notifications.stop)
        try:
            command(*args, **kwargs)
        finally:
            taken_back()
            notifications.stop()

    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), option]
    )
    run.__annotations__ = {**command.__annotations__, "notify_file": Path | None}
    return run


def log_command(
    alert: str | None = typer.Option(None, "--alert", help="Only this alert's deliveries."),
    destination: str | None = typer.Option(
        None, "--destination", help="Only this destination's, by its name in the file."
    ),
    outcome: str | None = typer.Option(
        None, "--outcome", help=f"Only those whose latest step is: {', '.join(OUTCOMES)}."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only those recorded since: a time, or a duration before now (2h)."
    ),
    limit: str = typer.Option(
        str(DEFAULT_LIMIT), "--limit", help=f"At most this many, 1 to {MAX_LIMIT}."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    data_dir: Path | None = data_dir_option(),
    clickhouse_url: str | None = clickhouse_url_option(),
) -> None:
    """List what became of each notification at each destination, newest first: when,
    where, which alert and event, the outcome, the attempts and why it failed."""
    values = {"alert": alert, "destination": destination, "outcome": outcome, "since": since}
    try:
        wanted = DeliveryFilter.parse({**values, "limit": limit}, prefix="--")
    except DeliveryFilterError as exc:
        raise refuse_each(str(exc).splitlines()) from None
    settings = _store_settings(data_dir, clickhouse_url)
    try:
        document = answer(
            settings,
            lambda store: deliveries_document(store, wanted),
            "/deliveries",
            wanted.as_query(),
        )
    except ApiRefused as exc:
        raise _fail(str(exc)) from None
    except (StoreError, ApiError) as exc:
        raise _fail(str(exc), FAILED_EXIT) from None
    deliveries = document["deliveries"]
    if as_json:
        typer.echo(json.dumps(deliveries, indent=2))
        return
    typer.echo(format_deliveries(deliveries, wanted))


def _store_settings(data_dir: Path | None, clickhouse_url: str | None) -> Settings:
    """The settings of a command over an existing store."""
    try:
        settings = load_settings(data_dir=data_dir, clickhouse_url=clickhouse_url)
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    require_store(settings)
    return settings


DELIVERY_COLUMNS = (
    "time (UTC)",
    "destination",
    "alert",
    "event",
    "outcome",
    "attempts",
    "reason",
)
# The widest a reason may be in the table; the whole text is in --json.
REASON_WIDTH = 72


def format_deliveries(deliveries: list[dict[str, Any]], wanted: DeliveryFilter) -> str:
    """A table of deliveries, newest first, or a line saying there are none; a last line
    says when the limit may have left older ones out."""
    if not deliveries:
        return "No deliveries match." if wanted.narrows else "No deliveries recorded."
    rows = [
        [
            table_time(item["at"]),
            item["destination"],
            item["alert_id"],
            _event(item),
            item["outcome"],
            str(item["attempts"]),
            cut(one_line(item["reason"]), REASON_WIDTH),
        ]
        for item in deliveries
    ]
    lines = [text_table(DELIVERY_COLUMNS, rows)]
    if len(deliveries) == wanted.limit:
        lines.append(f"The newest {wanted.limit} shown; --limit shows more (at most {MAX_LIMIT}).")
    return "\n".join(lines)


def _event(delivery: dict[str, Any]) -> str:
    """What the message said, and the event it tells of when that differs (an escalation
    sent as a destination's opening: ``opened (escalated)``)."""
    event, source = delivery["event"], delivery["source_event"]
    return event if source in ("", event) else f"{event} ({source})"


def _start_notifications(notify_file: Path | None, flags: dict[str, Any]) -> Notifications | None:
    """Notifications of a long-running command, or one error naming every mistake of its
    settings (``flags`` of the command among them), severity file and notification file."""
    given = {name: value for name, value in flags.items() if name in Settings.model_fields}
    problems = []
    try:
        settings = load_settings(notify_file=notify_file, **given)
    except SettingsError as exc:
        problems.append(str(exc))
    problems += file_problems(notify_file)
    if problems:
        raise _fail("\n".join(problems))
    try:
        return start_notifications(settings)
    except (NotifyFileError, SeverityFileError) as exc:  # a file changed since the check
        raise _fail(str(exc)) from None


def notify_app() -> typer.Typer:
    """The ``notify`` command group: test, check, log."""
    group = typer.Typer(
        help="Chat notifications: test the destinations, check the file, read the delivery log.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    group.command("test")(test_command)
    group.command("check")(check_command)
    group.command("log")(log_command)
    return group
