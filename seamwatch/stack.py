"""Running the roles: all in one process over one store, or each on its own.

``run_up`` is the all-in-one mode: the OTLP receiver and the dashboard share one store (the
embedded chDB engine opens its data directory from one process only), and with ``demo`` the
simulator feeds the receiver. Streamlit must own the main thread (it installs the SIGINT and
SIGTERM handlers and returns from its run call when either arrives), so the other roles run in
threads beside it and are stopped in dependency order once it returns: first the simulator,
which flushes its last spans into the receiver, then the receiver, which stores everything it
acknowledged, then the store.
"""

from __future__ import annotations

import _thread
import errno
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.service import Collector
from notify.service import file_problems, start_notifications
from seamwatch import runtime
from seamwatch.api import api_routes, publish_endpoint, withdraw_endpoint
from seamwatch.api_server import serve_api
from seamwatch.settings import Settings
from seamwatch.stopping import stop_on_signals
from storage import Store, StoreError, StoreUnavailable
from storage.pending import PendingServerStore, open_store_or_pending, wait_until_open

if TYPE_CHECKING:
    from sample_data.simulator import SimProgress

logger = logging.getLogger(__name__)

_SIMULATOR_STOP_TIMEOUT_SECONDS = 60.0
_LIVE_LAG = timedelta(minutes=2)
_DEMO_RUNS_FILE_NAME = "demo-runs"
# The last demo run wrote the newest spans: its run number is found among this much history.
_NEWEST_HISTORY = timedelta(hours=1)


@dataclass(frozen=True)
class DemoOptions:
    """How the simulator feeds the all-in-one stack."""

    seed: int
    backfill: timedelta
    labels_path: Path


class PortInUse(RuntimeError):
    """A port this process needs is taken; the message names the setting that moves it."""


class PortClash(ValueError):
    """Two listeners of this command are set to one port: a settings mistake (exit 2)."""


@dataclass(frozen=True)
class _Listener:
    """A port this process listens on, and the option and variable that set it."""

    role: str
    host: str
    port: int
    option: str
    variable: str


class StartProblems(ValueError):
    """Settings mistakes of several kinds found before a start, all in one message (exit 2)."""


def check_before_start(
    settings: Settings, *, receivers: bool, dashboard: bool, notify_file: bool
) -> None:
    """Fail before anything starts (no store opened, no schema migrated, no library's own
    bind error printed), naming every problem at once: the settings mistakes (listeners set
    to one port, a broken severity file, a broken notification file when ``notify_file``),
    then the ports this command needs that other processes have taken. With a settings
    mistake among them it is StartProblems (exit 2), with taken ports alone PortInUse."""
    listeners = _listeners(settings, receivers=receivers, dashboard=dashboard)
    problems = _clashes(listeners) + file_problems(settings.notify_file, notify=notify_file)
    # one round for the user: fixing the ports first only to meet the files' errors next
    taken = _taken_ports(listeners)
    if problems:
        raise StartProblems("\n".join(problems + taken))
    if taken:
        raise PortInUse("\n".join(taken))


def _refuse_clashes(settings: Settings, *, receivers: bool, dashboard: bool) -> None:
    # probed one by one, two of our own on one port both look free: compare them first
    clashes = _clashes(_listeners(settings, receivers=receivers, dashboard=dashboard))
    if clashes:
        raise PortClash("\n".join(clashes))


def ensure_ports_free(settings: Settings, *, receivers: bool, dashboard: bool) -> None:
    """Fail when two listeners of this command are set to one port, or when a port this
    command needs is taken."""
    _refuse_clashes(settings, receivers=receivers, dashboard=dashboard)
    _refuse_taken_ports(_listeners(settings, receivers=receivers, dashboard=dashboard))


def _refuse_taken_ports(listeners: list[_Listener]) -> None:
    problems = _taken_ports(listeners)
    if problems:
        raise PortInUse("\n".join(problems))


def _taken_ports(listeners: list[_Listener]) -> list[str]:
    """One line for each listener whose port is taken: all of them, as one at a time took
    a user three tries."""
    return [problem for problem in map(_port_problem, listeners) if problem]


def _listeners(settings: Settings, *, receivers: bool, dashboard: bool) -> list[_Listener]:
    """The listeners a command starts: the receivers, the dashboard, or both."""
    listeners = []
    if receivers:
        listeners.append(
            _Listener(
                "OTLP/HTTP receiver",
                settings.otlp_http_host,
                settings.otlp_http_port,
                "--otlp-http-port",
                "SEAMWATCH_OTLP_HTTP_PORT",
            )
        )
        if settings.otlp_grpc_port >= 0:
            listeners.append(
                _Listener(
                    "OTLP/gRPC receiver",
                    settings.otlp_grpc_host,
                    settings.otlp_grpc_port,
                    "--otlp-grpc-port",
                    "SEAMWATCH_OTLP_GRPC_PORT",
                )
            )
    if dashboard:
        listeners.append(
            _Listener(
                "dashboard",
                settings.dashboard_host,
                settings.dashboard_port,
                "--dashboard-port",
                "SEAMWATCH_DASHBOARD_PORT",
            )
        )
    return listeners


def _clashes(listeners: list[_Listener]) -> list[str]:
    """One line for each pair of listeners set to one port on overlapping addresses: all of
    them, so fixing one port does not reveal another clash."""
    return [
        _clash_message(earlier, listener)
        for index, listener in enumerate(listeners)
        for earlier in listeners[:index]
        if _collide(earlier, listener)
    ]


def _collide(first: _Listener, second: _Listener) -> bool:
    if first.port != second.port or first.port == 0:  # 0: the system picks a free one each
        return False
    ours, theirs = _addresses(first.host), _addresses(second.host)
    if ours & theirs or "::" in ours | theirs:  # "::" takes IPv4 addresses too
        return True
    any_ipv4 = "0.0.0.0"
    return (any_ipv4 in ours and _has_ipv4(theirs)) or (any_ipv4 in theirs and _has_ipv4(ours))


def _addresses(host: str) -> set[str]:
    """The addresses a listener on ``host`` binds: ``localhost`` is 127.0.0.1 and ::1."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return {host}  # binding will say what is wrong with it
    return {str(info[4][0]) for info in found} | {host}


def _has_ipv4(addresses: set[str]) -> bool:
    return any(":" not in address for address in addresses)


def _clash_message(first: _Listener, second: _Listener) -> str:
    if first.host == second.host:
        where = f"both set to listen on {first.host}:{first.port}"
    else:
        where = (
            f"set to listen on {first.host}:{first.port} and {second.host}:{second.port}, "
            "which overlap"
        )
    return (
        f"The {first.role} ({first.option} or {first.variable}) and the {second.role} "
        f"({second.option} or {second.variable}) are {where}; choose another port for one "
        "of them."
    )


def _port_problem(listener: _Listener) -> str | None:
    """Why ``listener`` cannot listen on its port, or None when it can."""
    if listener.port == 0:  # the system picks a free one
        return None
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as the servers bind: a port left in TIME_WAIT by a stopped process is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((listener.host, listener.port))
        except OSError as exc:
            return _port_message(listener, exc)
    return None


def _port_message(listener: _Listener, exc: OSError) -> str:
    where = f"The {listener.role} cannot listen on {listener.host}:{listener.port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where}: another process is using the port. Stop that process, or choose "
            f"another port with {listener.option} or {listener.variable}."
        )
    host_option = listener.option.replace("-port", "-host")
    host_variable = listener.variable.replace("_PORT", "_HOST")
    return (
        f"{where} ({exc.strerror}). Check {host_option} / {host_variable} (an address of "
        f"this machine), or choose another port with {listener.option} or {listener.variable}."
    )


def with_dashboard_port(settings: Settings) -> Settings:
    """``settings`` with a free dashboard port chosen now when it is 0: the dashboard would
    take one of its own, and the banner and the links of chat messages need to name it."""
    if settings.dashboard_port != 0:
        return settings
    family = socket.AF_INET6 if ":" in settings.dashboard_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((settings.dashboard_host, 0))
        port = probe.getsockname()[1]
    return settings.model_copy(update={"dashboard_port": port})


def run_up(settings: Settings, demo: DemoOptions | None, *, with_dashboard: bool = True) -> None:
    """Run receiver, dashboard and optionally the simulator until SIGINT or SIGTERM.

    With a ClickHouse server that does not answer yet, the receivers answer 503 and the
    dashboard shows a notice; the detectors and the simulator start once it answers."""
    # a broken severity or notification file stops the command before anything is created
    check_before_start(settings, receivers=True, dashboard=with_dashboard, notify_file=True)
    if with_dashboard:
        settings = with_dashboard_port(settings)
    store, store_down = open_store_or_pending(settings)
    waiting = _ServerWait.begin(
        store, store_down, _UP_WAITING if with_dashboard else _HEADLESS_UP_WAITING
    )
    runtime.share_store(store)
    runtime.share_settings(settings)
    collector = Collector(store, settings, extra_routes=api_routes(store), store_down=store_down)
    simulator: _SimulatorThread | None = None
    # here: a lone collector does not need SciPy
    from detectors.runner import RunnerThread, evaluation_timing

    # the runner judges each minute once: in a demo it waits until the backfill is delivered,
    # so no minute of history is judged before its spans have arrived
    backfill = _BackfillGate() if demo is not None else None
    detectors = RunnerThread(
        store, settings.evaluation_delay, hold=backfill.delivered if backfill else None
    )
    notifications = None
    try:
        notifications = start_notifications(settings)
        collector.start()
        detectors.start()
        if not settings.uses_server:
            publish_endpoint(settings.data_dir, collector.endpoint)
        resume = None
        if demo is not None:
            # with the server down, the simulator plans its run once it answers
            resume = plan_demo_resume(store, settings) if waiting is None else None
            simulator = _SimulatorThread(
                collector.endpoint, demo, store, settings, resume, backfill
            )
            simulator.start()
        timing = evaluation_timing(settings.evaluation_delay)
        _print_banner(settings, collector, demo, resume, with_dashboard, store_down, timing)
        _serve_until_stopped(settings, with_dashboard, waiting)
    finally:
        logger.info("Shutting down")
        if waiting is not None:
            waiting.end()
        if simulator is not None:
            simulator.stop()
        detectors.stop()
        if notifications is not None:
            notifications.stop()
        collector.stop()
        runtime.store_closing()
        runtime.share_store(None)
        if not settings.uses_server:
            withdraw_endpoint(settings.data_dir)
        store.close()
        if collector.writer.left_in_spool:
            logger.info("Stopped; every acknowledged span is stored or waits in the spool")
        else:
            logger.info("Stopped; every acknowledged span is stored")
    if waiting is not None:
        waiting.raise_refusal()


def _serve_until_stopped(
    settings: Settings, with_dashboard: bool, waiting: _ServerWait | None
) -> None:
    """Serve the dashboard, or just wait, until SIGINT or SIGTERM."""
    stopped = waiting.stopped if waiting is not None else None
    if stopped is not None and stopped.is_set():
        return  # stopped while starting: Streamlit would take the handlers over and miss it
    if with_dashboard:
        if stopped is not None:
            _pass_on_late_stop(stopped)
        run_dashboard(settings)
    else:
        _wait_for_signal(stopped)


def _pass_on_late_stop(stopped: threading.Event) -> None:
    """A stop that comes while Streamlit starts sets ``stopped``, which Streamlit never
    reads: once Streamlit has put its own handlers in place, send it the stop again."""
    ours = signal.getsignal(signal.SIGTERM)

    def pass_on() -> None:
        stopped.wait()
        while signal.getsignal(signal.SIGTERM) is ours:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=pass_on, name="seamwatch-late-stop", daemon=True).start()


# what waits for the server, in the log line that says it does not answer
_UP_WAITING = "The detectors start and the dashboard shows its pages once it does"
_HEADLESS_UP_WAITING = "The detectors start once it does"
_DASHBOARD_WAITING = "The dashboard shows a notice until it does"


class _ServerWait:
    """A command that started while its ClickHouse server does not answer.

    The store opens in the background (``PendingServerStore.keep_opening``). Until Streamlit
    takes the signal handlers over, SIGINT and SIGTERM set ``stopped``. A server that answers
    but refuses the store stops the command as a SIGTERM would, and the command then fails
    with the refusal, as it would have at start."""

    def __init__(self, store: PendingServerStore, waiting: str) -> None:
        self.store = store
        self.stopped = stop_on_signals()
        self._ended = threading.Event()
        store.keep_opening(waiting)
        threading.Thread(
            target=self._stop_on_refusal, name="seamwatch-refusal", daemon=True
        ).start()

    @classmethod
    def begin(
        cls, store: Store, store_down: StoreUnavailable | None, waiting: str
    ) -> _ServerWait | None:
        """Wait for the server of ``store`` when it was down at start; None when it is open."""
        if store_down is None or not isinstance(store, PendingServerStore):
            return None
        return cls(store, waiting)

    def end(self) -> None:
        """The command is stopping: no more signals on a refusal."""
        self._ended.set()

    def raise_refusal(self) -> None:
        """Raise the server's refusal if it ended the command."""
        if self.store.refusal is not None and not self.store.is_open:
            raise self.store.refusal

    def _stop_on_refusal(self) -> None:
        try:
            self.store.wait_until_open(self._ended)
        except StoreError:
            # again until the command ends: Streamlit may be installing its handlers just now
            while not self._ended.is_set():
                _thread.interrupt_main(signal.SIGTERM)
                self._ended.wait(1.0)


def run_collector(settings: Settings) -> None:
    """Run the OTLP receiver alone until SIGINT or SIGTERM."""
    check_before_start(settings, receivers=True, dashboard=False, notify_file=False)
    stopped = stop_on_signals()  # from the start: a stop during start-up still drains
    # a ClickHouse server that is down does not keep the receivers from starting: the spool
    # keeps what they acknowledged before, clients get 503 until the server answers
    store, store_down = open_store_or_pending(settings)
    collector = Collector(store, settings, extra_routes=api_routes(store), store_down=store_down)
    try:
        collector.start()
        if not settings.uses_server:
            publish_endpoint(settings.data_dir, collector.endpoint)
        print(f"OTLP/HTTP receiver: {collector.endpoint}/v1/traces", flush=True)
        if collector.grpc_endpoint:
            print(f"OTLP/gRPC receiver: {collector.grpc_endpoint}", flush=True)
        _wait_for_signal(stopped)
    finally:
        if stopped.is_set():
            print("Stopping...", flush=True)
        collector.stop()
        if not settings.uses_server:
            withdraw_endpoint(settings.data_dir)
        store.close()


def run_dashboard_alone(settings: Settings) -> None:
    """Run the dashboard alone over its own store until SIGINT or SIGTERM; with a ClickHouse
    server that does not answer yet, its pages show a notice until it does."""
    check_before_start(settings, receivers=False, dashboard=True, notify_file=False)
    settings = with_dashboard_port(settings)
    store, store_down = open_store_or_pending(settings)
    waiting = _ServerWait.begin(store, store_down, _DASHBOARD_WAITING)
    runtime.share_store(store)
    runtime.share_settings(settings)
    api = None
    try:
        # the dashboard holds the embedded store: the CLI's alerts, acks and silences, lineage
        # and reconcile reach it through this API
        api = serve_api(store, settings)
        print(f"Dashboard: {settings.dashboard_url()}", flush=True)
        _serve_until_stopped(settings, True, waiting)
    finally:
        if waiting is not None:
            waiting.end()
        if api is not None:
            api.stop()
        runtime.share_store(None)
        store.close()
    if waiting is not None:
        waiting.raise_refusal()


def run_dashboard(settings: Settings) -> None:
    """Serve the Streamlit dashboard from this process; returns on SIGINT or SIGTERM."""
    from streamlit.web import bootstrap

    import dashboard

    flag_options: dict[str, Any] = {
        "server_address": settings.dashboard_host,
        "server_port": settings.dashboard_port,
        "server_headless": True,
        "server_fileWatcherType": "none",
        "server_runOnSave": False,
        "browser_gatherUsageStats": False,
        "global_developmentMode": False,
        "logger_level": "warning",
        "client_toolbarMode": "minimal",
    }
    bootstrap.load_config_options(flag_options=flag_options)
    bootstrap.run(str(dashboard.APP_PATH), False, [], flag_options)


def _wait_for_signal(stopped: threading.Event | None = None) -> None:
    stopped = stopped or stop_on_signals()
    while not stopped.wait(1.0):
        pass


def _print_banner(
    settings: Settings,
    collector: Collector,
    demo: DemoOptions | None,
    resume: DemoResume | None,
    with_dashboard: bool,
    store_down: StoreUnavailable | None = None,
    detectors_timing: str = "",
) -> None:
    store_text = "ClickHouse server" if settings.uses_server else f"embedded ({settings.data_dir})"
    if store_down is not None:
        store_text += " (does not answer yet; see the log)"
    lines = [
        "",
        "Seamwatch is running.",
        f"  OTLP/HTTP endpoint: {collector.endpoint}  (POST /v1/traces)",
    ]
    if collector.grpc_endpoint:
        lines.append(f"  OTLP/gRPC endpoint: {collector.grpc_endpoint}")
    lines.append(f"  JSON API:           {collector.endpoint}/api/v1")
    if with_dashboard:
        lines.append(f"  Dashboard:          {settings.dashboard_url()}")
    lines.append(f"  Store:              {store_text}")
    if detectors_timing:
        lines.append(f"  Detectors:          {detectors_timing}")
    if demo is not None:
        history = f"backfilling {_describe_timedelta(demo.backfill)} of history"
        if store_down is not None:
            history = "starting once the store answers"
        elif resume is not None and resume.history_end is not None:
            history = (
                f"continuing after the stored history (to {resume.history_end:%Y-%m-%d %H:%M} UTC)"
            )
        lines.append(
            f"  Demo:               simulator seed {demo.seed}, {history}, "
            f"labels in {demo.labels_path}"
        )
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines) + "\n", flush=True)


def _describe_timedelta(span: timedelta) -> str:
    """``1 day``, ``7 days``, ``1 hour``, ``1.5 hours``: a backfill as the banner says it."""
    hours = span.total_seconds() / 3600
    amount, unit = (hours / 24, "day") if hours >= 24 else (hours, "hour")
    return f"{amount:g} {unit}{'' if amount == 1 else 's'}"


@dataclass(frozen=True)
class DemoResume:
    """Where an earlier demo left the store, so a restart continues instead of replaying."""

    history_end: datetime | None
    run_number: int


def plan_demo_resume(store: Store, settings: Settings) -> DemoResume:
    """Continue after the simulated history already stored, as a run of its own.

    A restart that replayed the week would store every transaction twice over; and a new run
    drawing the ids of the first again (its seed is the same) would join two transactions as
    one in lineage and look like duplicate postings. The run number is one more than the
    highest of the stored history (its newest hour) and of the runs counted in the data
    directory, which a store on a server does not share.
    """
    from sample_data.simulator import latest_simulated_run, latest_simulated_time

    history_end = latest_simulated_time(store)
    runs_file = Path(settings.data_dir) / _DEMO_RUNS_FILE_NAME
    earlier_runs = int(runs_file.read_text()) if runs_file.exists() else 0
    if history_end is None:
        return DemoResume(None, 0)
    stored_run = latest_simulated_run(store, history_end - _NEWEST_HISTORY)
    run_number = max(earlier_runs, stored_run) + 1
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    runs_file.write_text(str(run_number))
    logger.info(
        "The store already holds simulated history up to %s; the demo continues from there "
        "as run %d (its business keys are numbered R%d, its ids are its own)",
        history_end.strftime("%Y-%m-%d %H:%M UTC"),
        run_number,
        run_number,
    )
    return DemoResume(history_end, run_number)


class _SimulatorThread:
    """The simulator feeding the receiver: a backfill of history, then real time.

    Without ``resume`` (the store's server did not answer at start) it waits for the store
    and plans the run from what it holds."""

    def __init__(
        self,
        endpoint: str,
        demo: DemoOptions,
        store: Store,
        settings: Settings,
        resume: DemoResume | None,
        backfill: _BackfillGate | None = None,
    ) -> None:
        self._stop = threading.Event()
        self._store = store
        self._settings = settings
        self._backfill = backfill or _BackfillGate()
        self._thread = threading.Thread(
            target=self._run,
            args=(endpoint, demo, resume),
            name="seamwatch-simulator",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_SIMULATOR_STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            logger.warning("Simulator did not stop within %.0fs", _SIMULATOR_STOP_TIMEOUT_SECONDS)

    def _run(self, endpoint: str, demo: DemoOptions, resume: DemoResume | None) -> None:
        from sample_data import simulator

        log = _ProgressLog()

        def progress(reached: SimProgress) -> None:
            log(reached)
            self._backfill(reached)

        try:
            resume = resume or self._plan_once_the_store_opens()
            if resume is None:
                return
            simulator.run_demo(
                endpoint,
                demo.seed,
                demo.backfill,
                self._stop,
                demo.labels_path,
                progress=progress,
                resume_from=resume.history_end,
                run_number=resume.run_number,
            )
        except Exception:  # noqa: BLE001 - a thread boundary: log it, keep the stack running
            logger.exception("The simulator stopped with an error; the stack keeps running")
        finally:
            self._backfill.release()  # a simulator that ended holds nothing back

    def _plan_once_the_store_opens(self) -> DemoResume | None:
        """The run planned from the store once its server answers; None when stopped first."""
        try:
            if not wait_until_open(self._store, self._stop):
                return None
        except StoreError:
            return None  # the server refused the store: the command stops and says why
        return plan_demo_resume(self._store, self._settings)


class _BackfillGate:
    """Tells the detectors when the demo's backfill is delivered: the simulator has reached
    the present and the receiver has acknowledged every span generated until then.

    Backfilling a week takes minutes; a runner that started at once caught up with the
    simulated clock and judged hours of history before their spans arrived. It judges each
    minute once, so those incidents were never alerted, and their spans were counted late.
    Spans still held at that point (transactions under way) are released in real time, which
    the evaluation delay covers; so does ``DELIVERY_WAIT`` if they never are."""

    DELIVERY_WAIT = timedelta(minutes=2)

    def __init__(self) -> None:
        self.delivered = threading.Event()
        self._owed: int | None = None
        self._live_since: float | None = None

    def __call__(self, progress: SimProgress) -> None:
        if self.delivered.is_set():
            return
        if self._owed is None:
            if datetime.now(UTC) - progress.sim_time > _LIVE_LAG:
                return
            self._owed = progress.spans_emitted
            self._live_since = time.monotonic()
        answered = progress.spans_exported + progress.spans_failed
        waited = time.monotonic() - (self._live_since or 0.0)
        if answered >= self._owed or waited >= self.DELIVERY_WAIT.total_seconds():
            self.release()

    def release(self) -> None:
        """Let the detectors catch up."""
        if not self.delivered.is_set():
            self.delivered.set()
            logger.info("The backfill is delivered: the detectors catch up on it now")


class _ProgressLog:
    """One log line every few seconds: how far the backfill is, then that it runs live."""

    def __init__(self, interval_seconds: float = 5.0) -> None:
        self._interval_seconds = interval_seconds
        self._last = 0.0
        self._live = False

    def __call__(self, progress: SimProgress) -> None:
        now = time.monotonic()
        if now - self._last < self._interval_seconds:
            return
        self._last = now
        behind = datetime.now(UTC) - progress.sim_time
        if behind > _LIVE_LAG:
            covered = (progress.sim_time - progress.sim_start).total_seconds()
            total = covered + behind.total_seconds()
            logger.info(
                "Backfill %.0f%%: simulated %s reached, %d spans generated, %d sent",
                100 * covered / total,
                progress.sim_time.strftime("%Y-%m-%d %H:%M UTC"),
                progress.spans_emitted,
                progress.spans_exported,
            )
        elif not self._live:
            self._live = True
            # spans are sent in batches behind the simulation: count what it generated
            if progress.spans_emitted:
                logger.info(
                    "Backfill done: %d spans generated; the simulator now runs in real time",
                    progress.spans_emitted,
                )
            else:  # a restart right after the stored history: nothing was missing
                logger.info("Nothing to backfill; the simulator now runs in real time")
