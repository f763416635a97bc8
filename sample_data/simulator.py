"""Run the simulated SaaS-to-ERP stack: backfill history fast, or play it in real time.

The simulation is a discrete-event loop over simulated time. A tick every simulated minute
draws that minute's arrivals (seasonal Poisson per traffic profile); each arrival writes the
first hop's trace and schedules the next hops. The loop advances in chunks: as fast as possible
(``speed`` infinite), ``speed`` times faster than the wall clock, or in ``live`` mode first as
fast as possible up to now and then in step with the wall clock.

Everything random comes from generators seeded by the run's seed and run number, and the loop
is single threaded, so a seed, run number and start time always yield the same spans with the
same ids, whatever the speed. Runs of one seed that share a store (a restarted demo) take
different run numbers, so that no id of one repeats in another.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExporter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sample_data import incidents as inc
from sample_data.delivery import PatientExporter
from sample_data.flows import NS_PER_HOUR, NS_PER_MINUTE, IncidentBook, Scheduler, Stack
from sample_data.seasonality import PROFILES, poisson
from sample_data.telemetry import SERVICES, ReleasingBatchProcessor, ServiceTracers
from sample_data.world import World
from storage import TRACES_TABLE, Store

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
TRACES_PATH = "/v1/traces"
EXPORT_TIMEOUT_SECONDS = 30.0
CHUNK_NS = 60 * 1_000_000_000
NS_PER_DAY = 24 * NS_PER_HOUR
RECONCILIATION_HOUR = 2
# A missing-master-data incident goes on failing the transactions it parked until their
# customers or items reach the ERP: a catch-up sync that fails on an everyday ERP error leaves
# their replays to fail again after the window. Its label waits for the last of those records,
# or this long when one never arrives: the replays of a parked transaction end within about
# four and a half hours of the window (five, backing off from 10 to 120 minutes).
MASTER_DATA_SETTLE_NS = 5 * NS_PER_HOUR
PROGRESS_INTERVAL_SECONDS = 0.5
IDLE_WAIT_SECONDS = 0.2
IDLE_STEP_NS = int(IDLE_WAIT_SECONDS * 1e9)


class SimulationConfig(BaseModel):
    """What to simulate and where to send it.

    ``start`` defaults to now minus ``duration`` (a backfill ending now), or now for an endless
    run; ``duration`` None runs until stopped. ``speed`` is simulated seconds per wall second,
    ``math.inf`` (or 0) as fast as possible. ``live`` makes simulated time follow the wall
    clock: history before now is generated as fast as possible, then time runs in step with
    the wall clock and ``speed`` is ignored. ``incident_plan`` replaces the seeded incident
    schedule with explicit incidents. ``run`` numbers the runs of a seed that share a store:
    run N draws from generators of its own and numbers its business keys apart (``SO-R2-...``),
    so its trace, span and correlation ids and business keys are not those of another run;
    run 0 is the seed's original run.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    endpoint: str = DEFAULT_ENDPOINT
    seed: int = 42
    start: datetime | None = None
    duration: timedelta | None = timedelta(days=1)
    speed: float = math.inf
    labels_path: Path | None = None
    incidents: bool = True
    incident_plan: list[inc.PlannedIncident] | None = None
    live: bool = False
    run: int = Field(0, ge=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:4318")
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise ValueError("its port must be a number from 1 to 65535") from None
        return value

    @field_validator("speed")
    @classmethod
    def _speed_is_positive(cls, value: float) -> float:
        if value == 0:
            return math.inf
        if value < 0 or math.isnan(value):
            raise ValueError("must be a positive number, or 0 / inf for as fast as possible")
        return value

    @field_validator("duration")
    @classmethod
    def _duration_is_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be positive (or None to run until stopped)")
        return value

    @field_validator("start")
    @classmethod
    def _start_is_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def resolved_start(self, now: datetime | None = None) -> datetime:
        """The first simulated moment: ``start``, or now minus the duration, or now."""
        if self.start is not None:
            return self.start.astimezone(UTC)
        now = now or datetime.now(UTC)
        return now - self.duration if self.duration is not None else now

    def traces_url(self) -> str:
        """The OTLP/HTTP traces URL for ``endpoint`` (a base URL gets ``/v1/traces``)."""
        base = self.endpoint.rstrip("/")
        return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


@dataclass(frozen=True)
class SimProgress:
    """Where a run is: simulated time reached and what has been emitted so far."""

    sim_time: datetime
    sim_start: datetime
    sim_end: datetime | None
    spans_emitted: int
    spans_exported: int
    spans_failed: int
    transactions: int
    incidents: int
    wall_seconds: float

    @property
    def fraction(self) -> float | None:
        """Share of the simulated duration covered, or None for an endless run."""
        if self.sim_end is None:
            return None
        total = (self.sim_end - self.sim_start).total_seconds()
        return min(1.0, (self.sim_time - self.sim_start).total_seconds() / total)


@dataclass
class SimSummary:
    """What a finished run produced."""

    sim_start: datetime
    sim_end: datetime
    spans_emitted: int
    spans_exported: int
    spans_failed: int
    transactions: int
    transactions_by_flow: dict[str, int]
    incidents: list[dict[str, object]] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def spans_per_second(self) -> float:
        """Spans emitted per wall-clock second."""
        return self.spans_emitted / self.wall_seconds if self.wall_seconds > 0 else 0.0


class EventLoop(Scheduler):
    """A heap of scheduled hops ordered by simulated time, ties broken by scheduling order."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[..., None], tuple[object, ...]]] = []
        self._order = itertools.count()

    def schedule(self, at_ns: int, action: Callable[..., None], *args: object) -> None:
        """Run ``action(at_ns, *args)`` when simulated time reaches ``at_ns``."""
        heapq.heappush(self._heap, (at_ns, next(self._order), action, args))

    def run_until(self, until_ns: int) -> None:
        """Run every hop scheduled before ``until_ns``, in time order."""
        heap = self._heap
        while heap and heap[0][0] < until_ns:
            at_ns, _, action, args = heapq.heappop(heap)
            action(at_ns, *args)


def run_seed(seed: int, run: int) -> int | str:
    """What seeds the generators of run ``run`` of ``seed``: the seed itself for run 0, so
    that its spans stay those of earlier releases."""
    return seed if run == 0 else f"{seed}/run{run}"


class Simulation:
    """The stack, its traffic and its incidents over one run's simulated time."""

    def __init__(
        self, config: SimulationConfig, tracers: ServiceTracers, start_ns: int, end_ns: int | None
    ) -> None:
        self.config = config
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.loop = EventLoop()
        self.book = IncidentBook()
        self.book.on_records_arrived = self._label_settled
        self.labels = inc.LabelWriter(config.labels_path)
        self.labelled: list[dict[str, object]] = []
        # incidents whose window has closed and whose label waits for their last failures
        self._settling: list[inc.Incident] = []
        self.seed = run_seed(config.seed, config.run)
        self._arrivals_rng = random.Random(f"{self.seed}:arrivals")
        behaviour = random.Random(f"{self.seed}:behaviour")
        self.stack = Stack(
            tracers.tracers, behaviour, World(behaviour, config.run), self.loop, self.book
        )
        self._schedule_routines()
        self._schedule_incidents()

    def _schedule_routines(self) -> None:
        start = self.start_ns
        self.loop.schedule(start, self._minute_tick)
        next_hour = start - start % NS_PER_HOUR + NS_PER_HOUR
        self.loop.schedule(next_hour + 5 * NS_PER_MINUTE, self.stack.close_usage_window)
        reconcile_at = start - start % NS_PER_DAY + RECONCILIATION_HOUR * NS_PER_HOUR
        if reconcile_at <= start:
            reconcile_at += NS_PER_DAY
        self.loop.schedule(reconcile_at, self.stack.reconcile)

    def _schedule_incidents(self) -> None:
        if not self.config.incidents:
            return
        if self.config.incident_plan is not None:
            for planned in self.config.incident_plan:
                self._schedule_incident(inc.from_plan(planned))
            return
        self.loop.schedule(self.start_ns, self._plan_day, 0)

    def _plan_day(self, at_ns: int, day: int) -> None:
        for incident in inc.schedule_day(self.seed, self.start_ns, day, self.end_ns):
            self._schedule_incident(incident)
        self.loop.schedule(at_ns + NS_PER_DAY, self._plan_day, day + 1)

    def _schedule_incident(self, incident: inc.Incident) -> None:
        self.loop.schedule(incident.start_ns, self._start_incident, incident)
        self.loop.schedule(incident.end_ns, self._end_incident, incident)

    def _start_incident(self, at_ns: int, incident: inc.Incident) -> None:
        logger.info(
            "Fault %s put in place on %s at %s; its incident starts with the first transaction "
            "it affects",
            incident.kind,
            incident.flow,
            inc.iso_utc(at_ns),
        )
        self.book.start(incident)

    def _end_incident(self, at_ns: int, incident: inc.Incident) -> None:
        for recover in self.book.finish(incident):
            recover(at_ns)
        if self.book.awaits(incident):
            self._settling.append(incident)
            self.loop.schedule(
                at_ns + MASTER_DATA_SETTLE_NS, lambda at: self._label_settled(incident, at)
            )
            return
        self._label(incident, incident.end_ns)

    def _label_settled(self, incident: inc.Incident, at_ns: int) -> None:
        """Label an incident whose window closed before the records it made missing arrived,
        once they have (or it has waited long enough), ending at its last failure."""
        if incident not in self._settling:
            return
        self._settling.remove(incident)
        self._label(incident, max(incident.end_ns, incident.last_affected_ns or 0))

    def _label(self, incident: inc.Incident, end_ns: int) -> None:
        if not incident.affected_keys:
            # Too little traffic in the window to hit anything: no anomaly to label.
            logger.info(
                "Incident %s on %s affected nothing; not labelled", incident.kind, incident.flow
            )
            return
        record = incident.label(end_ns)
        self.labels.write(record)
        self.labelled.append(record)

    def _minute_tick(self, at_ns: int) -> None:
        """Draw the coming minute's arrivals per traffic profile."""
        moment = datetime.fromtimestamp(at_ns / 1e9, tz=UTC)
        rng = self._arrivals_rng
        for name, profile in PROFILES.items():
            handler = self.stack.arrival(name)
            for _ in range(poisson(rng, profile.rate_per_minute(moment))):
                self.loop.schedule(at_ns + int(rng.random() * NS_PER_MINUTE), handler)
        self.loop.schedule(at_ns + NS_PER_MINUTE, self._minute_tick)

    def close(self, reached_ns: int) -> None:
        """Label incidents cut short by the end of the run at the time reached; with no label
        at all, say in the labels file that no incident happened."""
        for incident in list(self.book.active_incidents):
            self.book.finish(incident)
            self._label(incident, min(incident.end_ns, reached_ns))
        for incident in self._settling:
            self._label(incident, max(incident.end_ns, incident.last_affected_ns or 0))
        self._settling.clear()
        self.labels.close(self.start_ns, reached_ns, self.config.seed)

    @property
    def transactions(self) -> int:
        """Business transactions started so far."""
        return sum(self.stack.transactions.values())


class _Pace:
    """How far simulated time may run ahead at a given moment of the wall clock."""

    def __init__(self, config: SimulationConfig, start_ns: int, clock: Callable[[], int]) -> None:
        self._live = config.live
        self._speed = config.speed
        self._start_ns = start_ns
        self._clock = clock
        self._wall_start = time.monotonic()

    def allowed_ns(self) -> float:
        if self._live:
            return float(self._clock())
        if math.isinf(self._speed):
            return math.inf
        return self._start_ns + (time.monotonic() - self._wall_start) * self._speed * 1e9


def run(
    config: SimulationConfig,
    stop_event: threading.Event | None = None,
    progress: Callable[[SimProgress], None] | None = None,
    *,
    exporter: SpanExporter | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> SimSummary:
    """Simulate until ``config.duration`` is covered or ``stop_event`` is set.

    Spans go to ``config.endpoint`` over OTLP/HTTP protobuf, or to ``exporter`` when given
    (tests pass an in-memory one); while the receiver does not accept connections, the run
    waits for it (``PatientExporter``). ``progress`` is called about twice a second and once at
    the end. On return every span generated has been handed to the exporter and flushed, but
    for those of a run that reached the present which would end after ``clock()`` (the wall
    clock in nanoseconds): a transaction still under way at the stop is not sent from the
    future.
    """
    stop_event = stop_event or threading.Event()
    start = config.resolved_start()
    start_ns = inc.to_ns(start)
    end_ns = start_ns + _ns(config.duration) if config.duration is not None else None
    destination = config.traces_url() if exporter is None else type(exporter).__name__
    exporter = exporter or PatientExporter(
        lambda: OTLPSpanExporter(endpoint=config.traces_url(), timeout=EXPORT_TIMEOUT_SECONDS),
        config.traces_url(),
        stop_event,
    )
    processor = ReleasingBatchProcessor(exporter)
    tracers = ServiceTracers(run_seed(config.seed, config.run), processor)
    simulation = Simulation(config, tracers, start_ns, end_ns)
    logger.info(
        "Simulating from %s for %s, %s, to %s",
        start.isoformat(),
        config.duration or "ever",
        _pace(config, start),
        destination,
    )
    wall_start = time.monotonic()
    pace = _Pace(config, start_ns, clock)
    reached = _advance(simulation, processor, pace, stop_event, progress)
    simulation.close(reached)
    _hold_back_the_future(processor, reached, clock())
    processor.shutdown()
    summary = SimSummary(
        sim_start=start,
        sim_end=_datetime(reached),
        spans_emitted=processor.stats.emitted,
        spans_exported=processor.stats.exported,
        spans_failed=processor.stats.failed,
        transactions=simulation.transactions,
        transactions_by_flow=dict(sorted(simulation.stack.transactions.items())),
        incidents=simulation.labelled,
        wall_seconds=time.monotonic() - wall_start,
    )
    if progress is not None:
        progress(_progress(simulation, processor, reached, summary.wall_seconds))
    logger.info(
        "Simulated %s: %d spans (%d exported, %d failed), %d transactions, %d incidents in %.1fs",
        summary.sim_end - summary.sim_start,
        summary.spans_emitted,
        summary.spans_exported,
        summary.spans_failed,
        summary.transactions,
        len(summary.incidents),
        summary.wall_seconds,
    )
    return summary


def _hold_back_the_future(processor: ReleasingBatchProcessor, reached_ns: int, now_ns: int) -> None:
    """Drop the spans still held that end after ``now_ns``, when the run has not gone past the
    present: a paced or live run (and a backfill up to now) stops with transactions under way,
    whose later spans would reach the store from the future. A run of the future, asked for,
    keeps them."""
    if reached_ns > now_ns:
        return
    unfinished = processor.drop_ending_after(now_ns)
    if unfinished:
        logger.info(
            "%d spans of transactions still under way would end after now; not sent", unfinished
        )


def _advance(
    simulation: Simulation,
    processor: ReleasingBatchProcessor,
    pace: _Pace,
    stop_event: threading.Event,
    progress: Callable[[SimProgress], None] | None,
) -> int:
    """Move simulated time forward chunk by chunk; returns the simulated time reached."""
    cursor = simulation.start_ns
    end_ns = simulation.end_ns
    wall_start = time.monotonic()
    last_report = wall_start
    while not stop_event.is_set() and (end_ns is None or cursor < end_ns):
        target = min(cursor + CHUNK_NS, pace.allowed_ns())
        if end_ns is not None:
            target = min(target, end_ns)
        target = int(target)
        # caught up with the clock, the next step would be microseconds long: stepping at
        # once again kept a core busy in a live demo, so wait for the clock to move on
        if target - cursor < IDLE_STEP_NS and target != end_ns:
            stop_event.wait(IDLE_WAIT_SECONDS)
            continue
        simulation.loop.run_until(target)
        processor.release(target)
        cursor = target
        now = time.monotonic()
        if progress is not None and now - last_report >= PROGRESS_INTERVAL_SECONDS:
            last_report = now
            progress(_progress(simulation, processor, cursor, now - wall_start))
    return cursor


def _progress(
    simulation: Simulation, processor: ReleasingBatchProcessor, reached_ns: int, wall: float
) -> SimProgress:
    stats = processor.stats
    return SimProgress(
        sim_time=_datetime(reached_ns),
        sim_start=_datetime(simulation.start_ns),
        sim_end=_datetime(simulation.end_ns) if simulation.end_ns is not None else None,
        spans_emitted=stats.emitted,
        spans_exported=stats.exported,
        spans_failed=stats.failed,
        transactions=simulation.transactions,
        incidents=len(simulation.labelled) + len(simulation.book.active_incidents),
        wall_seconds=wall,
    )


def _pace(config: SimulationConfig, start: datetime) -> str:
    """How fast simulated time runs, in words for the log."""
    if config.live:
        if start < datetime.now(UTC) - timedelta(seconds=1):
            return "as fast as possible until it reaches the present, then in real time"
        return "in real time"
    if math.isinf(config.speed) or config.speed == 0:
        return "as fast as possible"
    return f"{config.speed:g} times as fast as the clock"


def run_demo(
    endpoint: str,
    seed: int,
    backfill: timedelta,
    stop_event: threading.Event,
    labels_path: Path | None,
    progress: Callable[[SimProgress], None] | None = None,
    *,
    resume_from: datetime | None = None,
    run_number: int = 0,
) -> SimSummary:
    """Backfill ``backfill`` of history as fast as possible, then run in real time until stopped.

    Simulated time equals the wall clock once the backfill has caught up. Setting
    ``stop_event`` ends the run; everything generated by then is flushed to ``endpoint``.
    ``resume_from`` (the end of history already stored) shortens the backfill so that a restart
    fills only the gap; ``run_number`` keeps this run's ids apart from earlier runs'.
    """
    now = datetime.now(UTC)
    start = now - backfill
    if resume_from is not None and resume_from > start:
        start = min(resume_from, now)
    config = SimulationConfig(
        endpoint=endpoint,
        seed=seed,
        start=start,
        duration=None,
        speed=1.0,
        labels_path=labels_path,
        incidents=True,
        live=True,
        run=run_number,
    )
    return run(config, stop_event, progress)


def latest_simulated_time(store: Store) -> datetime | None:
    """When the newest span of the simulated services in ``store`` started, if any."""
    services = ",".join(service.name for service in SERVICES)
    rows = store.query_rows(
        f"SELECT max(Timestamp), count() FROM {store.table(TRACES_TABLE)} "
        "WHERE has(splitByChar(',', {services:String}), ServiceName)",
        {"services": services},
    )
    latest, count = rows[0]
    if not count:
        return None
    # Python datetimes hold microseconds: the stored nanoseconds are dropped on purpose.
    return pd.Timestamp(latest).tz_localize(UTC).floor("us").to_pydatetime()


def latest_simulated_run(store: Store, since: datetime) -> int:
    """The highest run number in the business keys of simulated spans that started at or
    after ``since`` (0 when none carries one): the last run wrote the newest spans."""
    services = ",".join(service.name for service in SERVICES)
    rows = store.query_rows(
        "SELECT max(toUInt32OrZero(extract(SpanAttributes['business.key'], '-R([0-9]+)-'))) "
        f"FROM {store.table(TRACES_TABLE)} "
        "WHERE has(splitByChar(',', {services:String}), ServiceName) "
        "AND Timestamp >= {since:DateTime64(9)}",
        {"services": services, "since": since.astimezone(UTC).replace(tzinfo=None)},
    )
    return int(rows[0][0] or 0) if rows else 0


def _ns(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _datetime(at_ns: int) -> datetime:
    return datetime.fromtimestamp(at_ns // 1_000_000_000, tz=UTC) + timedelta(
        microseconds=(at_ns % 1_000_000_000) // 1000
    )
