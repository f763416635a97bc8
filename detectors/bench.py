"""Throughput of the product's detectors: many flows, one new minute each."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from detectors.alarm import HysteresisAlarm
from detectors.product import build_alarm


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


def bench_detect(
    flows: int = 1000, warmup_minutes: int = 7 * 24 * 60, seed: int = 0
) -> BenchResult:
    """Time one minute of data (a latency and an error-rate point per flow)."""
    pairs = warmed_flows(flows, warmup_minutes, seed)
    rng = np.random.default_rng(seed + 1)
    latencies = rng.uniform(50, 500, flows)
    failures = rng.binomial(200, 0.01, flows)
    wall, cpu = time.perf_counter(), time.process_time()
    for (latency, errors), x, k in zip(pairs, latencies, failures, strict=True):
        latency.update(float(x))
        errors.step(errors.detector.update_counts(float(k), 200.0))
    return BenchResult(flows, time.perf_counter() - wall, time.process_time() - cpu)
