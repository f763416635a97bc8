"""The one detector configuration per signal kind that the product runs.

Durations, not row counts, carry the configuration, so per-minute flows in the product and
hourly or five-minute labelled series get the same behaviour: a two-day rolling level, a
daily season looked up over the last week, latency residuals scaled by their tail over the
last fortnight and averaged over an hour for bursts, and a number of calm hours before an
open alert may close.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from detectors.alarm import HysteresisAlarm
from detectors.base import SeriesDetector
from detectors.error_rate import ErrorRateDriftDetector
from detectors.residual_tail import ResidualTailScore
from detectors.volume import VolumeCollapseDetector

PRODUCT_INTERVAL = timedelta(minutes=1)
SEASON = timedelta(days=1)
LEVEL_HISTORY = timedelta(days=2)
TAIL_HISTORY = timedelta(days=14)
BURST_WINDOW = timedelta(hours=1)
MIN_HISTORY_POINTS = 48
GRACE_PERIOD_POINTS = 12
# The latency unit is the residual that a fortnight exceeds about 1.4 times a day: the 0.995
# quantile on the five-minute series it was chosen on. A fixed 0.995 on per-minute data would
# be exceeded seven times a day, and a clean series' daily largest residual would often pass
# the threshold (a false alert a day on a weekday load pattern with multiplicative noise).
TAIL_QUANTILE = 0.995
TAIL_EXCEEDANCES_PER_DAY = 1.44
# On series finer than five minutes, the tail scales are taken again every ten minutes of data
# rather than at every value: a fortnight of minutes is 20,160 residuals, and sorting them at
# each value made scoring three times slower. On 5-minute series, refreshing at every other
# value cost 0.1 on the held-out NAB files, so coarser series keep refreshing at every value.
TAIL_REFRESH = timedelta(minutes=10)
FINE_INTERVAL = timedelta(minutes=5)
# The latency unit is at most RECENT_TAIL_FACTOR times the same tail over the RECENT_TAIL
# that ends RECENT_TAIL_LAG back: a disturbance early in the fortnight, learned into the tail,
# otherwise halves the score of a later rise to well above the usual level. The lag keeps a
# slow rise from setting its own unit. Alternatives measured are in docs/alerts.md.
RECENT_TAIL = timedelta(days=4)
RECENT_TAIL_LAG = timedelta(hours=6)
RECENT_TAIL_FACTOR = 2.0
# rows missing for at least this long are fed to the detectors as gaps
MIN_FILLED_GAP = timedelta(hours=1)
# finer series would hold millions of values of season and history per detector
FINEST_INTERVAL = timedelta(seconds=1)


@dataclass(frozen=True)
class KindConfig:
    """Alarm settings of one signal kind."""

    threshold: float
    release: float
    settle: timedelta


KIND_CONFIGS: dict[str, KindConfig] = {
    # latency moves both ways when a dependency changes; its score is in units of the
    # residuals' usual extremes, so 1.4 is "40 % beyond the worst of a normal fortnight"
    "latency": KindConfig(threshold=1.4, release=0.9, settle=timedelta(hours=4)),
    # exception rates only matter upwards, and incidents recur within hours
    "error_rate": KindConfig(threshold=5.0, release=1.7, settle=timedelta(hours=2)),
    "volume": KindConfig(threshold=5.0, release=2.0, settle=timedelta(hours=1)),
}
KINDS = tuple(KIND_CONFIGS)
# An open alarm whose scores stayed under its threshold this long closes even if they never
# fell under the release: measured on the labelled sets, no score moved (a day, or two);
# half a day cost 0.3 on NAB.
ALARM_EXPIRY = timedelta(days=1)


def points_in(duration: timedelta, interval: timedelta) -> int:
    """How many samples of ``interval`` fit in ``duration`` (at least 1)."""
    return max(1, round(duration / interval))


def build_detector(kind: str, interval: timedelta = PRODUCT_INTERVAL) -> SeriesDetector:
    """The scorer the product uses for ``kind`` on series sampled every ``interval``."""
    season = points_in(SEASON, interval)
    history = max(MIN_HISTORY_POINTS, points_in(LEVEL_HISTORY, interval))
    if kind == "latency":
        tail = max(history, points_in(TAIL_HISTORY, interval))
        window = points_in(BURST_WINDOW, interval)
        quantile = tail_quantile(interval)
        refresh = points_in(TAIL_REFRESH, interval) if interval < FINE_INTERVAL else 1
        return ResidualTailScore(
            season,
            history,
            tail,
            window,
            quantile,
            grace_period=GRACE_PERIOD_POINTS,
            tail_refresh=refresh,
            recent_tail=points_in(RECENT_TAIL, interval),
            recent_lag=points_in(RECENT_TAIL_LAG, interval),
            recent_factor=RECENT_TAIL_FACTOR,
        )
    if kind == "error_rate":
        return ErrorRateDriftDetector(season, history, grace_period=GRACE_PERIOD_POINTS)
    if kind == "volume":
        return VolumeCollapseDetector(season, history, grace_period=GRACE_PERIOD_POINTS)
    raise ValueError(f"unknown detector kind {kind!r}; expected one of {', '.join(KINDS)}")


def tail_quantile(interval: timedelta) -> float:
    """Quantile of the latency residuals that sets the score's unit for series sampled every
    ``interval``: 0.995, or higher where a day holds more than 288 samples, so that the unit
    is exceeded as often per day on finer series as on five-minute ones. Coarser series keep
    0.995: on the hourly labelled files, 0.98 gained on some sets, lost on others and raised a
    quarter more false alarms."""
    per_day = points_in(SEASON, interval)
    return max(TAIL_QUANTILE, 1.0 - TAIL_EXCEEDANCES_PER_DAY / per_day)


def warm_up(kind: str, interval: timedelta = PRODUCT_INTERVAL) -> int:
    """Values the detector for ``kind`` learns before its first score."""
    return build_detector(kind, interval).warm_up


def build_alarm(kind: str, interval: timedelta = PRODUCT_INTERVAL) -> HysteresisAlarm:
    """The scorer for ``kind`` wrapped in the product's alert thresholds."""
    detector = build_detector(kind, interval)
    config = KIND_CONFIGS[kind]
    settle = max(2, points_in(config.settle, interval))
    expire = points_in(ALARM_EXPIRY, interval)
    return HysteresisAlarm(detector, config.threshold, config.release, settle, expire)


def sampling_interval(timestamps: np.ndarray) -> timedelta:
    """Typical spacing of ``datetime64`` timestamps (the product's minute if unknown)."""
    if len(timestamps) < 2:
        return PRODUCT_INTERVAL
    steps = np.diff(timestamps).astype("timedelta64[ns]").astype(float) / 1e9
    steps = steps[steps > 0]
    if steps.size == 0:
        return PRODUCT_INTERVAL
    return timedelta(seconds=float(np.median(steps)))


def missing_steps(timestamps: np.ndarray, interval: timedelta, season: int) -> np.ndarray:
    """Per row, how many samples of ``interval`` are missing just before it.

    Only holes of ``MIN_FILLED_GAP`` or more count: shorter ones in an irregularly sampled
    series are jitter, and filling them only thins the history. A hole longer than the
    tail history is shortened by whole seasons: the detectors' history is all gaps by
    then, and the time of day stays where it was.
    """
    if len(timestamps) < 2:
        return np.zeros(len(timestamps), dtype=np.int64)
    steps = np.diff(timestamps).astype("timedelta64[ns]")
    missing = np.maximum(np.rint(steps / np.timedelta64(interval)) - 1, 0).astype(np.int64)
    missing[steps < np.timedelta64(MIN_FILLED_GAP)] = 0
    cap = max(season, points_in(TAIL_HISTORY, interval))
    missing = np.where(missing > cap, cap + (missing - cap) % season, missing)
    return np.concatenate(([0], missing))


def score_series(
    kind: str, timestamps: np.ndarray, values: np.ndarray
) -> Iterator[tuple[float, bool]]:
    """Run the product's alarm for ``kind`` over one series, yielding (score, onset) per row
    as it is scored.

    Rows are taken in time order at the series' usual spacing; where rows are missing the
    alarm is fed gaps, so a missing afternoon does not shift the time of day.
    """
    interval = sampling_interval(timestamps)
    alarm = build_alarm(kind, interval)
    gaps = missing_steps(timestamps, interval, points_in(SEASON, interval))
    for i, x in enumerate(values):
        for _ in range(gaps[i]):
            alarm.update(math.nan)
        onset = alarm.update(float(x))
        yield alarm.score, onset


def run_series(
    kind: str, timestamps: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`score_series` collected: (scores, onset flags)."""
    scores = np.zeros(len(values))
    flags = np.zeros(len(values), dtype=np.int8)
    for i, (score, onset) in enumerate(score_series(kind, timestamps, values)):
        scores[i], flags[i] = score, onset
    return scores, flags
