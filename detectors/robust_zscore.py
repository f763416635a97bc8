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
    season_trust
        When set (``rho``), the errors of the level and of the seasonal median as forecasts
        are kept, so a caller can ask whether the season is trusted (see
        :meth:`season_is_trusted`); the score itself does not change.
    error_history
        Seasonal forecast errors kept for :meth:`seasonal_errors` (at least ``history``).

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
        season_trust: float | None = None,
        error_history: int | None = None,
    ) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {direction!r}")
        self.season = max(1, int(season))
        self.history = max(2, int(history))
        self.direction = direction
        self.relative_floor = relative_floor
        self.season_trust = season_trust
        self.error_history = max(self.history, int(error_history or 0))
        super().__init__(grace_period)

    def _reset(self) -> None:
        self._values = SeasonalHistory(max(self.history, SEASONAL_DAYS * self.season))
        self.n_learned = 0
        # absolute errors of the level and of the seasonal median as forecasts of each value,
        # kept only when asked for (a fortnight of per-minute errors takes 80 kB a series)
        kept = self.season_trust is not None
        self._level_errors = SeasonalHistory(self.history if kept else 1)
        self._seasonal_errors = SeasonalHistory(self.error_history if kept else 1)

    def learn_one(self, x: float) -> Self:
        if is_gap(x) or not math.isfinite(x):
            self._values.append(math.nan)
        else:
            if self.season_trust is not None:
                self._track_forecast_errors(float(x))
            self._values.append(float(x))
            self.n_learned += 1
        return self

    def _track_forecast_errors(self, x: float) -> None:
        recent = self._recent()
        seasonal = self.seasonal_median()
        if recent.size < self.grace_period or seasonal is None:
            return
        self._level_errors.append(abs(x - float(np.median(recent))))
        self._seasonal_errors.append(abs(x - seasonal))

    def _recent(self) -> np.ndarray:
        """The values of the rolling level window, gaps left out."""
        recent = self._values.latest(self.history)
        return recent[~np.isnan(recent)]

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
        recent = self._recent()
        if recent.size < self.grace_period:
            return None
        level, scale = robust_level_scale(recent, self.relative_floor)
        return self._closer_baseline(x, level), scale

    def baseline(self, x: float) -> float | None:
        """The rolling or seasonal median, whichever is closer to ``x``; None in warm-up."""
        if is_gap(x) or not math.isfinite(x) or self.n_learned < self.grace_period:
            return None
        recent = self._recent()
        if recent.size < self.grace_period:
            return None
        return self._closer_baseline(x, float(np.median(recent)))

    def _closer_baseline(self, x: float, level: float) -> float:
        seasonal = self.seasonal_median()
        if seasonal is None:
            return level
        return seasonal if abs(x - seasonal) < abs(x - level) else level

    def seasonal_median(self) -> float | None:
        """Median of the values one to seven periods back; None with fewer than two."""
        if self._values.seen < MIN_SEASONAL_VALUES * self.season:
            return None
        same_time = self._values.lagged(self.season, SEASONAL_DAYS)
        same_time = same_time[~np.isnan(same_time)]
        if same_time.size < MIN_SEASONAL_VALUES:
            return None
        return float(np.median(same_time))

    def season_is_trusted(self) -> bool:
        """Whether the seasonal median has forecast the recent values much better than the
        level: its mean absolute error is under ``season_trust`` times the level's.

        Off (False) unless ``season_trust`` is set, and until a period of errors is known.
        """
        if self.season_trust is None or self._seasonal_errors.seen < self.season:
            return False
        seasonal = np.nanmean(self._seasonal_errors.latest(self.history))
        level = np.nanmean(self._level_errors.latest(self.history))
        return bool(seasonal < self.season_trust * level)

    def seasonal_errors(self) -> np.ndarray:
        """Absolute errors of the seasonal median as a forecast over the last
        ``error_history`` values (NaN-free)."""
        errors = self._seasonal_errors.latest(self.error_history)
        return errors[~np.isnan(errors)]

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
