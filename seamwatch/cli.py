"""The ``seamwatch`` command: one entry point for every role and tool."""

from __future__ import annotations

from datetime import timedelta
from importlib.metadata import version as package_version
from pathlib import Path

import typer

from seamwatch.cli_args import SeamwatchGroup
from seamwatch.cli_options import clickhouse_url_option, data_dir_option
from seamwatch.durations import parse_duration
from seamwatch.logs import configure_logging
from seamwatch.settings import SettingsError, load_settings
from storage import StoreError

app = typer.Typer(
    name="seamwatch",
    cls=SeamwatchGroup,  # refuses arguments that are not UTF-8, for every command
    help=(
        "Integration-health observability for SaaS-to-ERP stacks: an OTLP receiver writing to "
        "ClickHouse, drift detectors and a dashboard.\n\n"
        "Every option below can also be set with a SEAMWATCH_* environment variable "
        "(for example SEAMWATCH_DATA_DIR, SEAMWATCH_CLICKHOUSE_URL, SEAMWATCH_OTLP_HTTP_PORT); "
        "a flag wins over the environment."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts show [env ...] hints literally
)

_DEFAULT_DEMO_SEED = 7
_DEFAULT_BACKFILL = "7d"

DataDirOption = data_dir_option()
ClickHouseOption = clickhouse_url_option()
OtlpPortOption = typer.Option(
    None, "--otlp-http-port", help="OTLP/HTTP port [env SEAMWATCH_OTLP_HTTP_PORT; default 4318]"
)
OtlpHostOption = typer.Option(
    None, "--otlp-http-host", help="OTLP/HTTP bind address [env SEAMWATCH_OTLP_HTTP_HOST]"
)
GrpcHostOption = typer.Option(
    None, "--otlp-grpc-host", help="OTLP/gRPC bind address [env SEAMWATCH_OTLP_GRPC_HOST]"
)
GrpcPortOption = typer.Option(
    None,
    "--otlp-grpc-port",
    help="OTLP/gRPC port, -1 to turn it off [env SEAMWATCH_OTLP_GRPC_PORT; default 4317]",
)
DashboardPortOption = typer.Option(
    None, "--dashboard-port", help="Dashboard port [env SEAMWATCH_DASHBOARD_PORT; default 8501]"
)
DashboardHostOption = typer.Option(
    None, "--dashboard-host", help="Dashboard bind address [env SEAMWATCH_DASHBOARD_HOST]"
)
LogLevelOption = typer.Option("info", "--log-level", help="debug, info, warning or error")
NotifyFileOption = typer.Option(
    None, "--notify-file", help="Chat notification destinations, YAML [env SEAMWATCH_NOTIFY_FILE]"
)


def _show_version(asked: bool) -> None:
    if asked:
        typer.echo(f"seamwatch {package_version('seamwatch')}")
        raise typer.Exit()


@app.callback()
def _seamwatch(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_show_version,
        help="Print the version and exit.",
    ),
) -> None:
    """The options of ``seamwatch`` itself, before any command."""


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def _configure_logging(level: str) -> None:
    try:
        configure_logging(level)
    except ValueError as exc:
        _fail(str(exc))


def _settings(**flags: object):  # noqa: ANN202 - returns Settings; imported lazily above
    try:
        return load_settings(**flags)
    except SettingsError as exc:
        # the files are checked too, so that one round of fixes clears every start problem
        _fail(str(exc) + "".join(f"\n{problem}" for problem in _file_problems(flags)))


def _file_problems(flags: dict[str, object]) -> list[str]:
    from notify.service import file_problems

    notify_file = flags.get("notify_file")
    given = Path(str(notify_file)) if notify_file else None
    return file_problems(given, notify="notify_file" in flags)


def _check_labels(path: Path) -> None:
    from sample_data.incidents import check_labels_path

    try:
        check_labels_path(path)
    except ValueError as exc:
        _fail(str(exc))


def _duration_option(text: str, flag: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


bench = typer.Typer(
    help="Benchmarks that print their figures.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(bench, name="bench")


@app.command()
def up(
    demo: bool = typer.Option(False, "--demo", help="Feed the stack from the simulator."),
    seed: int = typer.Option(_DEFAULT_DEMO_SEED, help="Simulator seed (with --demo)."),
    backfill: str = typer.Option(
        _DEFAULT_BACKFILL, help="Simulated history to backfill first (with --demo), e.g. 1d, 7d."
    ),
    labels: Path | None = typer.Option(
        None, help="Where the simulator writes its incident labels [default DATA_DIR/labels.jsonl]"
    ),
    no_dashboard: bool = typer.Option(False, "--no-dashboard", help="Run without the dashboard."),
    data_dir: Path | None = DataDirOption,
    clickhouse_url: str | None = ClickHouseOption,
    otlp_http_host: str | None = OtlpHostOption,
    otlp_http_port: int | None = OtlpPortOption,
    otlp_grpc_host: str | None = GrpcHostOption,
    otlp_grpc_port: int | None = GrpcPortOption,
    dashboard_host: str | None = DashboardHostOption,
    dashboard_port: int | None = DashboardPortOption,
    notify_file: Path | None = NotifyFileOption,
    log_level: str = LogLevelOption,
) -> None:
    """Run everything in one process: OTLP receiver, store and dashboard (Ctrl-C stops)."""
    from seamwatch.stack import DemoOptions, run_up

    _configure_logging(log_level)
    settings = _settings(
        data_dir=data_dir,
        clickhouse_url=clickhouse_url,
        otlp_http_host=otlp_http_host,
        otlp_http_port=otlp_http_port,
        otlp_grpc_host=otlp_grpc_host,
        otlp_grpc_port=otlp_grpc_port,
        dashboard_host=dashboard_host,
        dashboard_port=dashboard_port,
        notify_file=notify_file,
    )
    demo_options = None
    if demo:
        demo_options = DemoOptions(
            seed=seed,
            backfill=_duration_option(backfill, "--backfill"),
            labels_path=labels or settings.data_dir / "labels.jsonl",
        )
        _check_labels(demo_options.labels_path)
    _run(run_up, settings, demo_options, with_dashboard=not no_dashboard)


@app.command()
def collector(
    data_dir: Path | None = DataDirOption,
    clickhouse_url: str | None = ClickHouseOption,
    otlp_http_host: str | None = OtlpHostOption,
    otlp_http_port: int | None = OtlpPortOption,
    otlp_grpc_host: str | None = GrpcHostOption,
    otlp_grpc_port: int | None = GrpcPortOption,
    log_level: str = LogLevelOption,
) -> None:
    """Run the OTLP receivers (HTTP and gRPC) alone, writing to the store."""
    from seamwatch.stack import run_collector

    _configure_logging(log_level)
    settings = _settings(
        data_dir=data_dir,
        clickhouse_url=clickhouse_url,
        otlp_http_host=otlp_http_host,
        otlp_http_port=otlp_http_port,
        otlp_grpc_host=otlp_grpc_host,
        otlp_grpc_port=otlp_grpc_port,
    )
    _run(run_collector, settings)


@app.command()
def dashboard(
    data_dir: Path | None = DataDirOption,
    clickhouse_url: str | None = ClickHouseOption,
    dashboard_host: str | None = DashboardHostOption,
    dashboard_port: int | None = DashboardPortOption,
    log_level: str = LogLevelOption,
) -> None:
    """Run the dashboard alone, reading the store."""
    from seamwatch.stack import run_dashboard_alone

    _configure_logging(log_level)
    settings = _settings(
        data_dir=data_dir,
        clickhouse_url=clickhouse_url,
        dashboard_host=dashboard_host,
        dashboard_port=dashboard_port,
    )
    _run(run_dashboard_alone, settings)


def _run(role, *args: object, **kwargs: object) -> None:  # noqa: ANN001 - any role function
    from collector.service import ReceiverStartError
    from detectors.severity import SeverityFileError
    from notify.routing import NotifyFileError
    from seamwatch.api_server import ApiServerError
    from seamwatch.stack import PortClash, PortInUse, StartProblems

    try:
        role(*args, **kwargs)
    except (NotifyFileError, SeverityFileError, PortClash, StartProblems) as exc:
        _fail(str(exc))
    except (StoreError, ReceiverStartError, PortInUse, ApiServerError) as exc:
        _fail(str(exc), code=1)
    except KeyboardInterrupt:
        pass


@bench.command("ingest")
def bench_ingest(
    spans: int = typer.Option(1_000_000, min=1000, help="Spans to send end to end."),
    senders: int = typer.Option(4, min=1, max=64, help="Concurrent HTTP senders."),
) -> None:
    """Spans/s through a running receiver into the embedded store, against the raw insert rate."""
    from rich.console import Console

    from collector.bench import run_ingest_benchmark

    _configure_logging("warning")
    console = Console(stderr=True)
    try:
        figures = run_ingest_benchmark(spans, senders, console)
    except RuntimeError as exc:
        _fail(str(exc), code=1)
    print(f"spans sent end to end:        {figures.spans:,}")
    print(f"end to end (HTTP protobuf):   {figures.end_to_end_spans_per_second:,.0f} spans/s")
    print(f"ceiling (prepared inserts):   {figures.ceiling_rows_per_second:,.0f} rows/s")
    print(f"ratio end to end / ceiling:   {figures.ratio:.2f}")
    print(f"receiver peak RSS:            {figures.receiver_peak_rss_bytes / 2**20:,.0f} MiB")


def _register_feature_commands() -> None:
    """Commands that live with their feature; registered here so one entry point has them all."""
    from detectors.alerts_cli import alerts_app, detectors_command
    from detectors.cli import bench_detect_command, bench_series_command, detect_series_command
    from detectors.evaluate_cli import evaluate_command
    from lineage.cli import bench_lineage_command, lineage_command, reconcile_command
    from notify.cli import notify_app, with_notifications
    from sample_data.cli import simulate_command

    app.command("simulate")(simulate_command)
    app.command("detectors")(with_notifications(detectors_command))
    app.add_typer(notify_app(), name="notify")
    app.add_typer(alerts_app(), name="alerts")
    app.command("lineage")(lineage_command)
    app.command("reconcile")(reconcile_command)
    app.command("detect-series")(detect_series_command)
    app.command("evaluate")(evaluate_command)
    bench.command("detect")(bench_detect_command)
    bench.command("lineage")(bench_lineage_command)
    bench.command("series")(bench_series_command)


_register_feature_commands()
