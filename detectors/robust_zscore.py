"""Robust z-score against a rolling level and a same-time-of-day seasonal baseline."""

from __future__ import annotations

import math
from typing import Self

import numpy as np

from detectors.base import NEUTRAL_SCORE, SeriesDetector, is_gap
from detectors.history import SeasonalHistory, robust_level_scale

SEASONAL_DAYS = 7
MIN_SEASONAL_VALUES = 2


class RobustSeasonalZScore(SeriesDetector):
    """Median/MAD z-score of a value against its recent level and its seasonal baseline.

    The level is the median of the last ``history`` values and the scale ``s`` a robust
    deviation of the same values (MAD, with floors for flat and zero-variance series). The
    seasonal baseline is the median of the values one, two, ... seven periods back. A value
    is as anomalous as the *smaller* of its two deviations, so a daily peak that happens
    every day is not an anomaly, and a level shift stops scoring once the rolling median
    has moved to the new level.

    Formula: ``z = sign * min(|x - median(level)|, |x - median(seasonal)|) / s``.

    Parameters
    ----------
    season
        Values per seasonal period (``P``; 1440 for per-minute data with a daily cycle).
    history
        Values in the rolling level window (``W``).
    direction
        ``"up"`` scores only increases, ``"down"`` only decreases, ``"both"`` either.
    relative_floor
        Smallest scale as a fraction of the level (``c``), so a flat series does not turn
        a tiny wobble into a huge score.
    grace_period
        Values to learn before scoring (``n_min``).

    References
    ----------
    Rousseeuw, P. J. and Croux, C. (1993). Alternatives to the median absolute deviation.
    Journal of the American Statistical Association, 88(424), 1273-1283.
    Hochenbaum, J., Vallis, O. S. and Kejariwal, A. (2017). Automatic anomaly detection in
    the cloud via statistical learning. arXiv:1704.07706 (seasonal median baseline).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> stream = 100 + rng.normal(0, 2, 300)
    >>> stream[200:] += 30  # a level shift
    >>> detector = RobustSeasonalZScore(season=48, history=96, grace_period=12)
    >>> scores = [detector.update(x) for x in stream]
    >>> [i for i, s in enumerate(scores) if s > 5][:3]
    [200, 201, 202]
    """

    def __init__(
        self,
        season: int,
        history: int,
        direction: str = "both",
        relative_floor: float = 0.05,
        grace_period: int = 12,
    ) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {direction!r}")
        self.season = max(1, int(season))
        self.history = max(2, int(history))
        self.direction = direction
        self.relative_floor = relative_floor
        super().__init__(grace_period)

    def _reset(self) -> None:
        self._values = SeasonalHistory(max(self.history, SEASONAL_DAYS * self.season))
        self.n_learned = 0

    def learn_one(self, x: float) -> Self:
        if is_gap(x) or not math.isfinite(x):
            self._values.append(math.nan)
        else:
            self._values.append(float(x))
            self.n_learned += 1
        return self

    def learn_many(self, values: np.ndarray) -> Self:
        """Learn a block of values at once (warm start, catching up after downtime)."""
        values = np.asarray(values, dtype=float)
        values = np.where(np.isfinite(values), values, np.nan)
        self._values.extend(values)
        self.n_learned += int(np.count_nonzero(~np.isnan(values)))
        return self

    def reference(self, x: float) -> tuple[float, float] | None:
        """Baseline and scale that ``x`` is judged against; None during warm-up or a gap.

        The baseline is the rolling level or the seasonal median, whichever is closer to
        ``x``.
        """
        if is_gap(x) or not math.isfinite(x) or self.n_learned < self.grace_period:
            return None
        recent = self._values.latest(self.history)
        recent = recent[~np.isnan(recent)]
        if recent.size < self.grace_period:
            return None
        level, scale = robust_level_scale(recent, self.relative_floor)
        return self._closer_baseline(x, level), scale

    def baseline(self, x: float) -> float | None:
        """The rolling or seasonal median, whichever is closer to ``x``; None in warm-up."""
        if is_gap(x) or not math.isfinite(x) or self.n_learned < self.grace_period:
            return None
        recent = self._values.latest(self.history)
        recent = recent[~np.isnan(recent)]
        if recent.size < self.grace_period:
            return None
        return self._closer_baseline(x, float(np.median(recent)))

    def _closer_baseline(self, x: float, level: float) -> float:
        if self._values.seen < MIN_SEASONAL_VALUES * self.season:
            return level
        same_time = self._values.lagged(self.season, SEASONAL_DAYS)
        same_time = same_time[~np.isnan(same_time)]
        if same_time.size < MIN_SEASONAL_VALUES:
            return level
        seasonal = float(np.median(same_time))
        return seasonal if abs(x - seasonal) < abs(x - level) else level

    def signed_score(self, x: float) -> float:
        """Signed robust z of ``x`` (positive above the baseline), 0 during warm-up."""
        reference = self.reference(x)
        if reference is None:
            return NEUTRAL_SCORE
        baseline, scale = reference
        return (x - baseline) / scale

    def score_one(self, x: float) -> float:
        z = self.signed_score(x)
        if self.direction == "up":
            return max(z, 0.0)
        if self.direction == "down":
            return max(-z, 0.0)
        return abs(z)
