"""How fast ``seamwatch detect-series`` judges a long per-minute series.

A generated series (a daily load pattern, multiplicative noise and a few threefold spikes) is
written to a CSV file, then read, scored and written out as ``detect-series`` does, each
stage timed.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectors.corpus import read_series_with_text
from detectors.product import score_series

BENCH_START = np.datetime64("2024-01-01T00:00:00")
MINUTES_A_DAY = 24 * 60


@dataclass(frozen=True)
class SeriesBenchResult:
    """Seconds each stage of one ``detect-series`` run took."""

    kind: str
    rows: int
    read_seconds: float
    score_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.read_seconds + self.score_seconds

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.total_seconds


def minute_series_csv(kind: str, rows: int, seed: int = 0) -> str:
    """A per-minute series as CSV text: latency in ms, or an error rate between 0 and 1."""
    rng = np.random.default_rng(seed)
    minute = np.arange(rows)
    load = 1.0 + 0.5 * np.sin(2 * np.pi * (minute % MINUTES_A_DAY) / MINUTES_A_DAY)
    noise = rng.lognormal(0.0, 0.1, rows)
    spikes = np.where(rng.random(rows) < 1 / MINUTES_A_DAY, 3.0, 1.0)
    if kind == "latency":
        values = 200.0 * load * noise * spikes
    else:
        values = np.minimum(0.01 * load * noise * spikes, 1.0)
    stamps = (BENCH_START + minute.astype("timedelta64[m]")).astype(str)
    lines = (
        f"{stamp.replace('T', ' ')},{value:.4f}"
        for stamp, value in zip(stamps, values, strict=True)
    )
    return "timestamp,value\n" + "\n".join(lines) + "\n"


def bench_detect_series(kind: str, rows: int, folder: Path, seed: int = 0) -> SeriesBenchResult:
    """Time reading ``rows`` generated per-minute rows, then scoring and writing each row."""
    path = folder / f"bench-{kind}-{rows}.csv"
    path.write_text(minute_series_csv(kind, rows, seed))
    started = time.perf_counter()
    text, stamps, values = read_series_with_text(path)
    read = time.perf_counter()
    writer = csv.writer(io.StringIO(), lineterminator="\n")
    for stamp, (score, onset) in zip(text, score_series(kind, stamps, values), strict=True):
        writer.writerow((stamp, f"{score:.6g}", int(onset)))
    scored = time.perf_counter()
    return SeriesBenchResult(kind, rows, read - started, scored - read)
