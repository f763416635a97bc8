"""Exception-rate drift: a robust rate z-score, gated by a binomial tail test on counts."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Self

import numpy as np
from scipy import stats

from detectors.base import MAX_SCORE, NEUTRAL_SCORE, SeriesDetector, is_gap
from detectors.robust_zscore import RobustSeasonalZScore

MAX_SIGNIFICANCE = 40.0


def binomial_significance(failures: float, calls: float, rate: float) -> float:
    """Upper-tail binomial evidence as a z value: ``Phi^-1(1 - P(K >= k | n, p))``."""
    if calls <= 0 or failures <= 0:
        return 0.0
    log_tail = float(stats.binom.logsf(math.ceil(failures) - 1, math.floor(calls), rate))
    if log_tail < -700:
        return MAX_SIGNIFICANCE
    return float(min(MAX_SIGNIFICANCE, max(0.0, stats.norm.isf(math.exp(log_tail)))))


class ErrorRateDriftDetector(SeriesDetector):
    """Rises of a flow's exception rate above its usual (seasonal) rate.

    With a rate alone (``update``), the score is the upward robust z-score of the rate
    (:class:`~detectors.robust_zscore.RobustSeasonalZScore`). With counts
    (``update_counts``), the rate z-score is capped by the evidence that the failures could
    not come from the baseline rate ``p_0`` with that many calls, so one failure in twenty
    calls at night is not an outage while the same rate over thousands of calls is.

    Formula: ``score = min(z_rate, Phi^-1(1 - P[Bin(n, max(p_0, p_min)) >= k]))``.

    Parameters
    ----------
    season
        Values per seasonal period (``P``).
    history
        Values in the rolling level window (``W``).
    prior_rate
        Smallest baseline rate ``p_min`` in the binomial test, so a flow that has never
        failed does not make its first failure infinitely surprising.
    grace_period
        Values to learn before scoring (``n_min``).

    References
    ----------
    Brown, L. D., Cai, T. T. and DasGupta, A. (2001). Interval estimation for a binomial
    proportion. Statistical Science, 16(2), 101-133.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(11)
    >>> calls = rng.poisson(400, 300)
    >>> failures = rng.binomial(calls, 0.01)
    >>> failures[240:] = rng.binomial(calls[240:], 0.06)  # a new failure mode
    >>> detector = ErrorRateDriftDetector(season=60, history=120)
    >>> scores = [detector.update_counts(k, n) for k, n in zip(failures, calls)]
    >>> [i for i, s in enumerate(scores) if s > 5][:2]
    [240, 241]
    """

    def __init__(
        self,
        season: int,
        history: int,
        prior_rate: float = 1e-3,
        relative_floor: float = 0.05,
        grace_period: int = 12,
    ) -> None:
        self.season = season
        self.history = history
        self.prior_rate = prior_rate
        self.relative_floor = relative_floor
        super().__init__(grace_period)

    def _reset(self) -> None:
        self._rates = RobustSeasonalZScore(
            self.season,
            self.history,
            direction="up",
            relative_floor=self.relative_floor,
            grace_period=self.grace_period,
        )

    def score_one(self, x: float) -> float:
        return min(self._rates.score_one(x), MAX_SCORE)

    def learn_one(self, x: float) -> Self:
        self._rates.learn_one(x)
        return self

    def learn_many(self, values: Iterable[float]) -> Self:
        self._rates.learn_many(np.asarray(list(values), dtype=float))
        return self

    def score_counts(self, failures: float, calls: float) -> float:
        """Score one interval's failure and call counts (no calls is a gap)."""
        if is_gap(failures) or is_gap(calls) or calls <= 0:
            return NEUTRAL_SCORE
        rate = failures / calls
        reference = self._rates.reference(rate)
        if reference is None:
            return NEUTRAL_SCORE
        baseline, scale = reference
        rate_z = max(0.0, (rate - baseline) / scale)
        if rate_z == 0.0:
            return NEUTRAL_SCORE
        base_rate = min(max(baseline, self.prior_rate), 1.0 - 1e-9)
        return min(rate_z, binomial_significance(failures, calls, base_rate))

    def update_counts(self, failures: float, calls: float) -> float:
        """Score the interval's counts, then learn its rate; return the score."""
        score = self.score_counts(failures, calls)
        rate = failures / calls if not is_gap(calls) and calls > 0 else math.nan
        self._rates.learn_one(rate)
        return score
