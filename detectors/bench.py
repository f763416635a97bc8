"""Throughput of the detectors: what the runner does each minute, for many flows.

:func:`bench_runner` times the runner's live step: one new minute evaluated by
:meth:`detectors.runner.DetectorRunner.catch_up`, which reads the minute's series from the
store (one query), runs the lineage checks of :mod:`detectors.posting_watch` (duplicate
postings and unconsumed events, one query each), steps every series' signals (latency shift,
exception-category drift, error rate and volume), writes the alerts that changed and records
its position. The store is filled with generated spans for a few minutes only; the series are
warmed from generated history in memory (a week of per-minute error rates and volumes, the
latency baseline's 5,000 calls, category counts past their warm-up), so the bench finishes well
within a minute while each step costs what it costs with a full history.

:func:`bench_series_alarms` keeps the earlier figure: the per-minute residual alarms of
latency and error rate on one point per flow, without the store.

The target is 5 % of one core, i.e. at most 3 seconds of work per minute of data.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from detectors.alarm import HysteresisAlarm
from detectors.posting_watch import CONSUME_WITHIN
from detectors.product import build_alarm
from detectors.runner import BASELINE_MINUTES, DetectorRunner, SeriesState
from storage import Store
from storage.schema import TRACES_ARROW_SCHEMA, TRACES_TABLE

TARGET_SECONDS_PER_MINUTE = 3.0
BENCH_START = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
WEEK_MINUTES = 7 * 24 * 60
# per-minute category counts each series learns before the bench: enough minutes for this
# many transactions (past the category test's warm-up of 200), within these bounds
CATEGORY_WARMUP_TRANSACTIONS = 400
CATEGORY_WARMUP_MINUTES = (180, 2400)
LATENCY_HISTORY_CALLS = 5000
# per transaction: the share that fails, goes unconsumed, or is posted twice
FAILURE_SHARE = 0.01
UNCONSUMED_SHARE = 0.002
DUPLICATE_SHARE = 0.002
CATEGORIES = ("mapping", "validation", "master_data_missing", "timeout")
SYSTEM_OF_RECORD = "erp"


@dataclass(frozen=True)
class BenchResult:
    """Wall and CPU seconds to evaluate ``flows`` flows for one minute of data."""

    flows: int
    wall_seconds: float
    cpu_seconds: float

    @property
    def core_percent(self) -> float:
        """CPU time as a share of one core over the minute the data covers."""
        return 100.0 * self.cpu_seconds / 60.0


@dataclass(frozen=True)
class RunnerBenchResult:
    """The runner's per-minute cost for ``flows`` flows, averaged over ``minutes`` minutes."""

    flows: int
    minutes: int
    spans_per_minute: float
    wall_seconds: float
    cpu_seconds: float
    worst_wall_seconds: float
    query_seconds: float
    watch_seconds: float
    detect_seconds: float
    setup_seconds: float
    series: int
    alerts_opened: int

    @property
    def core_percent(self) -> float:
        """CPU time per minute of data as a share of one core."""
        return 100.0 * self.cpu_seconds / 60.0

    @property
    def meets_target(self) -> bool:
        """Both the CPU and the wall time per minute of data are within the target."""
        return max(self.cpu_seconds, self.wall_seconds) <= TARGET_SECONDS_PER_MINUTE


@dataclass(frozen=True)
class BenchFlow:
    """One generated flow: its name, target, pattern and traffic."""

    name: str
    target: str
    event_driven: bool
    per_minute: float
    latency_ms: float


def bench_flows(flows: int, seed: int = 0) -> list[BenchFlow]:
    """Generated flows: two thirds bound for the system of record, half of them event-driven,
    traffic log-uniform from one call in five minutes to 30 a minute (about 6 on average)."""
    rng = np.random.default_rng(seed)
    rates = np.exp(rng.uniform(math.log(0.2), math.log(30.0), flows))
    latencies = np.exp(rng.uniform(math.log(50.0), math.log(800.0), flows))
    return [
        BenchFlow(
            name=f"bench.flow-{i:04d}",
            target=SYSTEM_OF_RECORD if i % 3 else "crm",
            event_driven=i % 2 == 0,
            per_minute=float(rates[i]),
            latency_ms=float(latencies[i]),
        )
        for i in range(flows)
    ]


def traffic_table(flows: list[BenchFlow], start: datetime, minutes: int, seed: int = 0) -> pa.Table:
    """Spans of ``minutes`` minutes from ``start`` for every flow, as ``otel_traces`` rows.

    Each transaction is a trace: event-driven flows publish (producer), consume (consumer) and
    post (client span to the target); request flows receive (server) and post. A share of the
    postings fail with an exception category, a share of the events are never consumed, and a
    share of the transactions are posted twice."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list] = {name: [] for name in TRACES_ARROW_SCHEMA.names}
    base = pd.Timestamp(start).tz_convert(None).value
    counter = 0

    def add(
        at_ns: int,
        trace: str,
        kind: str,
        service: str,
        duration_ms: float,
        attributes: dict[str, str],
        error: str = "",
    ) -> None:
        nonlocal counter
        counter += 1
        columns["Timestamp"].append(at_ns)
        columns["TraceId"].append(trace)
        columns["SpanId"].append(f"{counter:016x}")
        columns["ParentSpanId"].append("")
        columns["TraceState"].append("")
        columns["SpanName"].append(kind.lower())
        columns["SpanKind"].append(kind)
        columns["ServiceName"].append(service)
        columns["ResourceAttributes"].append({})
        columns["ScopeName"].append("bench")
        columns["ScopeVersion"].append("")
        columns["SpanAttributes"].append(attributes)
        columns["Duration"].append(int(duration_ms * 1e6))
        columns["StatusCode"].append("Error" if error else "Unset")
        columns["StatusMessage"].append(error)
        for name in ("Events.Timestamp", "Events.Name", "Events.Attributes"):
            columns[name].append([])
        for name in ("Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes"):
            columns[name].append([])

    for minute in range(minutes):
        counts = rng.poisson([flow.per_minute for flow in flows])
        for index, (flow, count) in enumerate(zip(flows, counts, strict=True)):
            for number in range(int(count)):
                at = base + minute * 60_000_000_000 + int(rng.uniform(0, 50e9))
                trace = uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | counter).hex
                key = f"BK-{index}-{minute}-{number}"
                shared = {
                    "integration.flow": flow.name,
                    "integration.target": flow.target,
                    "business.key": key,
                    "business.object": "BenchObject",
                    "business.amount": f"{rng.uniform(10, 5000):.2f}",
                    "integration.pattern": "event" if flow.event_driven else "api",
                }
                if flow.event_driven:
                    add(
                        at,
                        trace,
                        "Producer",
                        "source",
                        2.0,
                        {**shared, "integration.stage": "publish"},
                    )
                    if rng.random() < UNCONSUMED_SHARE:
                        continue
                    at += 1_000_000_000
                    received = {**shared, "integration.stage": "receive"}
                    add(at, trace, "Consumer", "integration", 5.0, received)
                else:
                    received = {**shared, "integration.stage": "receive"}
                    add(at, trace, "Server", "integration", 5.0, received)
                posting = {**shared, "integration.stage": "post", "peer.service": flow.target}
                failed = rng.random() < FAILURE_SHARE
                if failed:
                    category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
                    posting["integration.exception.category"] = category
                duration = flow.latency_ms * math.exp(rng.normal(0.0, 0.4))
                add(at, trace, "Client", "integration", duration, posting, "rejected" * failed)
                if not failed and rng.random() < DUPLICATE_SHARE:
                    again = uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | counter).hex
                    add(at + 2_000_000_000, again, "Client", "integration", duration, posting)
    return pa.table(columns, schema=TRACES_ARROW_SCHEMA)


def warmed_series(flow: BenchFlow, seed: int) -> SeriesState:
    """A series state with the history a week of running gives it, generated in memory."""
    rng = np.random.default_rng(seed)
    state = SeriesState(flow.name, flow.target, "BenchObject")
    volumes = rng.poisson(flow.per_minute, WEEK_MINUTES).astype(float)
    failed = rng.binomial(volumes.astype(int), FAILURE_SHARE).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(volumes > 0, failed / volumes, np.nan)
    for signal, series in (("error_rate", rates), ("volume", volumes)):
        state.alarms[signal].detector.learn_many(series)
        state.recent[signal].extend(series[-BASELINE_MINUTES:])
    state.latency.learn(flow.latency_ms * np.exp(rng.normal(0.0, 0.4, LATENCY_HISTORY_CALLS)))
    fewest, most = CATEGORY_WARMUP_MINUTES
    span = min(most, max(fewest, math.ceil(CATEGORY_WARMUP_TRANSACTIONS / flow.per_minute)))
    for minute in range(WEEK_MINUTES - span, WEEK_MINUTES):
        count = float(volumes[minute])
        failures: dict[str, list[str]] = {}
        for number in range(int(failed[minute])):
            category = CATEGORIES[number % len(CATEGORIES)]
            failures.setdefault(category, []).append(f"W-{minute}-{number}")
        state.categories.learn(count, failures)
    return state


def bench_runner(
    store: Store, flows: int = 1000, minutes: int = 3, seed: int = 0
) -> RunnerBenchResult:
    """Time the runner's live step, one new minute at a time, for ``flows`` flows.

    ``store`` must be migrated and hold no spans of the bench's flows (a fresh database)."""
    began = time.perf_counter()
    generated = bench_flows(flows, seed)
    # the unconsumed-event check looks at publications one deadline before the minute
    lead = int(CONSUME_WITHIN / timedelta(minutes=1)) + 1
    first = BENCH_START - timedelta(minutes=lead)
    table = traffic_table(generated, first, lead + minutes, seed)
    store.insert_arrow(TRACES_TABLE, table)
    runner = DetectorRunner(store, name=f"bench-{uuid.uuid4().hex[:8]}", chunk=timedelta(minutes=1))
    for index, flow in enumerate(generated):
        runner.series[(flow.name, flow.target)] = warmed_series(flow, seed + 1 + index)
    runner.resume_at(BENCH_START)
    setup = time.perf_counter() - began
    walls, cpus = [], []
    query = watch = detect = 0.0
    opened = 0
    for minute in range(1, minutes + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        report = runner.catch_up(BENCH_START + timedelta(minutes=minute))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        query += report.query_seconds
        watch += report.watch_seconds
        detect += report.detect_seconds
        opened += report.opened
    return RunnerBenchResult(
        flows=flows,
        minutes=minutes,
        spans_per_minute=table.num_rows / (lead + minutes),
        wall_seconds=float(np.mean(walls)),
        cpu_seconds=float(np.mean(cpus)),
        worst_wall_seconds=float(max(walls)),
        query_seconds=query / minutes,
        watch_seconds=watch / minutes,
        detect_seconds=detect / minutes,
        setup_seconds=setup,
        series=len(runner.series),
        alerts_opened=opened,
    )


def bench_in_scratch_store(
    data_dir: Path, flows: int = 1000, minutes: int = 3, seed: int = 0
) -> RunnerBenchResult:
    """:func:`bench_runner` on a database of its own in the embedded store in ``data_dir``,
    dropped afterwards."""
    from storage import migrate
    from storage.embedded import EmbeddedStore

    database = f"bench_{uuid.uuid4().hex[:12]}"
    store = EmbeddedStore(data_dir, database)
    try:
        migrate(store)
        return bench_runner(store, flows, minutes, seed)
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
        store.close()


def warmed_flows(
    flows: int, warmup_minutes: int, seed: int = 0
) -> list[tuple[HysteresisAlarm, HysteresisAlarm]]:
    """Per-flow latency and error-rate alarms, each fed ``warmup_minutes`` of data."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(flows):
        latency, errors = build_alarm("latency"), build_alarm("error_rate")
        base = rng.uniform(50, 500)
        latency.detector.learn_many(base + rng.normal(0, base * 0.05, warmup_minutes))
        errors.detector.learn_many(rng.binomial(200, 0.01, warmup_minutes) / 200)
        pairs.append((latency, errors))
    return pairs


def bench_series_alarms(
    flows: int = 1000, warmup_minutes: int = WEEK_MINUTES, seed: int = 0
) -> BenchResult:
    """Time one minute of the per-minute residual alarms (a latency and an error-rate point per
    flow), without the store; the runner no longer runs the latency one."""
    pairs = warmed_flows(flows, warmup_minutes, seed)
    rng = np.random.default_rng(seed + 1)
    latencies = rng.uniform(50, 500, flows)
    failures = rng.binomial(200, 0.01, flows)
    wall, cpu = time.perf_counter(), time.process_time()
    for (latency, errors), x, k in zip(pairs, latencies, failures, strict=True):
        latency.update(float(x))
        errors.step(errors.detector.update_counts(float(k), 200.0))
    return BenchResult(flows, time.perf_counter() - wall, time.process_time() - cpu)
