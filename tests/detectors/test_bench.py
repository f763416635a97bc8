"""The detector bench: generated flows and traffic, and the runner's per-minute step."""

from __future__ import annotations

from datetime import timedelta

import pyarrow.compute as pc

from detectors.bench import (
    BENCH_START,
    BenchFlow,
    bench_flows,
    bench_runner,
    traffic_table,
    warmed_series,
)
from detectors.flow_series import read_minutes


def test_bench_flows_mix_targets_and_patterns():
    flows = bench_flows(6)
    assert [f.name for f in flows[:2]] == ["bench.flow-0000", "bench.flow-0001"]
    assert [f.target for f in flows] == ["crm", "erp", "erp", "crm", "erp", "erp"]
    assert [f.event_driven for f in flows] == [True, False, True, False, True, False]
    assert all(0.2 <= f.per_minute <= 30 and 50 <= f.latency_ms <= 800 for f in flows)


def test_traffic_is_what_the_series_query_counts(store):
    flows = [
        BenchFlow("bench.events", "erp", True, 20.0, 100.0),
        BenchFlow("bench.requests", "erp", False, 20.0, 100.0),
    ]
    table = traffic_table(flows, BENCH_START, 1, seed=3)
    store.insert_arrow("otel_traces", table)
    frame = read_minutes(store, BENCH_START, BENCH_START + timedelta(minutes=1))
    kinds = table.column("SpanKind")
    clients = pc.sum(pc.equal(kinds, "Client")).as_py()
    keys = {attributes["business.key"] for attributes in _attributes(table)}
    assert list(frame["flow"]) == ["bench.events", "bench.requests"]
    assert int(frame["transactions"].sum()) == len(keys)
    assert sum(len(d) for d in frame["post_durations_ms"]) == clients
    producers = pc.sum(pc.equal(kinds, "Producer")).as_py()
    servers = pc.sum(pc.equal(kinds, "Server")).as_py()
    assert producers == int(frame["transactions"].iloc[0])
    assert servers == int(frame["transactions"].iloc[1])


def test_warmed_series_is_past_every_warm_up():
    state = warmed_series(BenchFlow("bench.quiet", "erp", True, 0.2, 100.0), seed=1)
    assert state.latency.step([400.0, 400.0, 400.0]) > 4.0  # four times slower alerts
    assert state.categories.step(0.0, {"mapping": ["A", "B"]})[0].failures == 2


def test_bench_runner_steps_every_flow_each_minute(store):
    result = bench_runner(store, flows=12, minutes=2)
    assert (result.flows, result.minutes, result.series) == (12, 2, 12)
    assert result.spans_per_minute > 0
    assert result.cpu_seconds > 0 and result.wall_seconds > 0
    assert result.core_percent == 100.0 * result.cpu_seconds / 60.0
    assert result.meets_target


def _attributes(table):
    return [dict(row) for row in table.column("SpanAttributes").to_pylist()]
