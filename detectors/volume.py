"""Volume collapse: a flow that goes quiet, judged with a Poisson lower tail."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Self

import numpy as np
from scipy import stats

from detectors.base import NEUTRAL_SCORE, SeriesDetector
from detectors.robust_zscore import RobustSeasonalZScore

MAX_SIGNIFICANCE = 40.0


def poisson_drop_significance(count: float, expected: float) -> float:
    """Lower-tail Poisson evidence as a z value: ``Phi^-1(1 - P(K <= k | lambda))``."""
    if expected <= 0 or count >= expected:
        return 0.0
    log_tail = float(stats.poisson.logcdf(math.floor(count), expected))
    if log_tail < -700:
        return MAX_SIGNIFICANCE
    return float(min(MAX_SIGNIFICANCE, max(0.0, stats.norm.isf(math.exp(log_tail)))))


class VolumeCollapseDetector(SeriesDetector):
    """Drops of a flow's call count below its usual (seasonal) volume.

    The downward robust z-score of the count is capped by the Poisson evidence that so few
    calls could come from the expected volume, so a quiet hour on a flow that only sees a
    few calls an hour is not a dropped feed, while zero calls where hundreds are usual is.

    Formula: ``score = min(z_down, Phi^-1(1 - P[Poisson(lambda) <= k]))`` with ``lambda``
    the rolling or seasonal median count.

    Parameters
    ----------
    season
        Values per seasonal period (``P``).
    history
        Values in the rolling level window (``W``).
    grace_period
        Values to learn before scoring (``n_min``).

    References
    ----------
    Lambert, D. and Liu, C. (2006). Adaptive thresholds: monitoring streams of network
    counts. Journal of the American Statistical Association, 101(473), 78-88.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> calls = rng.poisson(120, 200).astype(float)
    >>> calls[150:] = 0  # the feed stops
    >>> detector = VolumeCollapseDetector(season=60, history=120)
    >>> [i for i, k in enumerate(calls) if detector.update(k) > 5][:2]
    [150, 151]
    """

    def __init__(
        self, season: int, history: int, relative_floor: float = 0.05, grace_period: int = 12
    ) -> None:
        self.season = season
        self.history = history
        self.relative_floor = relative_floor
        super().__init__(grace_period)

    def _reset(self) -> None:
        self._counts = RobustSeasonalZScore(
            self.season,
            self.history,
            direction="down",
            relative_floor=self.relative_floor,
            grace_period=self.grace_period,
        )

    def score_one(self, x: float) -> float:
        reference = self._counts.reference(x)
        if reference is None:
            return NEUTRAL_SCORE
        expected, scale = reference
        drop_z = max(0.0, (expected - x) / scale)
        if drop_z == 0.0:
            return NEUTRAL_SCORE
        return min(drop_z, poisson_drop_significance(x, expected))

    def learn_one(self, x: float) -> Self:
        self._counts.learn_one(x)
        return self

    def learn_many(self, values: Iterable[float]) -> Self:
        self._counts.learn_many(np.asarray(list(values), dtype=float))
        return self
