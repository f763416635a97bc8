"""Seasonal residuals judged against their own recent tail, at one and at several values."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Self

import numpy as np

from detectors.base import MAX_SCORE, NEUTRAL_SCORE, SeriesDetector, is_gap
from detectors.history import SeasonalHistory, clip_widened
from detectors.robust_zscore import RobustSeasonalZScore

TINY_SCALE = 1e-9
# the season is trusted when its forecast errors average under a fifth of the level's
SEASON_TRUST = 0.2


def _centre_spread(values: np.ndarray, quantile: float) -> tuple[float, float]:
    """Median of ``values`` and the ``quantile`` of their absolute deviations from it."""
    centre = float(np.median(values))
    return centre, float(np.quantile(np.abs(values - centre), quantile))


def _window_means(values: np.ndarray, window: int) -> np.ndarray:
    """Means of every ``window`` consecutive values."""
    if values.size < window:
        return values[:0]
    sums = np.cumsum(np.concatenate(([0.0], values)))
    return (sums[window:] - sums[:-window]) / window


class ResidualTailScore(SeriesDetector):
    """Residual from a seasonal baseline, in units of the residuals' recent extreme quantile.

    The baseline ``b`` is the rolling or same-time-of-day median, whichever is closer to
    ``x``, so a daily swing does not widen the scale. The unit ``s`` is the ``q`` quantile
    of the past residuals' absolute deviations from their median ``m``: a spiky series must
    spike beyond its usual spikes, a calm one alarms on a small shift. The mean of the last
    ``k`` residuals is judged the same way against past ``k``-means, which catches a burst
    of ordinary spikes or a small sustained shift. Residuals are learned clipped to
    ``m +/- c s``, widened to the ``j``-th largest (smallest) unclipped residual of the tail
    history: a rare anomaly is still seen after it has passed, one that has recurred ``j``
    times (a series that spikes every few hours) is learned in full and becomes normal.

    Where the season forecasts the series far better than the level (a strong daily
    pattern: the seasonal median's mean absolute error is under ``rho`` times the level's,
    as in a scaled-error comparison), ``x`` is also judged against the seasonal median
    alone, in units of the seasonal errors' ``q`` quantile ``u``. Then a value that is
    ordinary for the day but wrong for the hour, such as a missing daily peak, is seen;
    choosing the closer baseline would have called it normal.

    Formula: ``score = max(|x - b| / s, |mean_k(r) - m_k| / s_k, [|x - b_P| / u])`` with
    ``s = Q_q(|r - m|)`` over the last ``R`` residuals ``r``, ``b_P`` the seasonal median
    and the bracketed term only while the season is trusted, each unit bounded by ``F`` times
    the same quantile over the ``R_r`` residuals that end ``L`` back; learned
    ``clip(r, min(m - c s, r_(j)), max(m + c s, r_(R-j+1)))``.

    Parameters
    ----------
    season
        Values per seasonal period (``P``).
    history
        Values in the rolling level window (``W``).
    tail_history
        Residuals the tail quantiles are taken over (``R``).
    window
        Residuals averaged by the second score (``k``; 1 turns it off).
    quantile
        Tail quantile that sets the unit (``q``).
    clip
        Learned residuals are clipped to ``c`` scales around their median (``c``).
    recurrence
        Unclipped residuals beyond the clip needed before that size is learned (``j``).
    relative_floor
        Smallest scale as a fraction of the baseline (``f``), for flat series.
    direction
        ``"up"``, ``"down"`` or ``"both"``.
    grace_period
        Values to learn before scoring (``n_min``), for the level and the residuals.
    season_trust
        Largest ratio of seasonal to level forecast errors at which the season alone also
        judges ``x`` (``rho``); None turns that off.
    tail_refresh
        Residuals learned between two computations of the tail scales (1: at every value);
        over a long tail history the scales move little from one value to the next.
    recent_tail
        Residuals of the recent tail (``R_r``; 0 turns the bound off). The unit ``s`` is at
        most ``F`` times that tail's, so a disturbance learned into the long history does
        not keep blunting the score once the series has calmed down.
    recent_lag
        The recent tail ends this many residuals back (``L``), so that what is being judged
        now, a slow rise, cannot set its own unit.
    recent_factor
        How many recent units the unit may reach (``F``).

    References
    ----------
    Siffer, A., Fouque, P.-A., Termier, A. and Largouet, C. (2017). Anomaly detection in
    streams with extreme value theory. KDD '17, 1067-1075 (thresholds from the tail).
    Hochenbaum, J., Vallis, O. S. and Kejariwal, A. (2017). Automatic anomaly detection in
    the cloud via statistical learning. arXiv:1704.07706 (seasonal median residuals).
    Hyndman, R. J. and Koehler, A. B. (2006). Another look at measures of forecast accuracy.
    International Journal of Forecasting, 22(4), 679-688 (errors scaled by a naive forecast's).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> stream = 100 + rng.normal(0, 2, 400)
    >>> stream[rng.choice(400, 20, replace=False)] += 25  # ordinary spikes
    >>> stream[300:] += 60  # a level shift
    >>> detector = ResidualTailScore(season=48, history=96, tail_history=200, window=4)
    >>> scores = [detector.update(x) for x in stream]
    >>> [i for i, s in enumerate(scores) if s > 1.4 and i >= 200]  # spikes at 225, 251, ...
    [300, 301, 302, 303, 304]
    """

    def __init__(
        self,
        season: int,
        history: int,
        tail_history: int,
        window: int = 1,
        quantile: float = 0.995,
        clip: float = 1.5,
        recurrence: int = 5,
        relative_floor: float = 0.05,
        direction: str = "both",
        grace_period: int = 12,
        season_trust: float | None = SEASON_TRUST,
        tail_refresh: int = 1,
        recent_tail: int = 0,
        recent_lag: int = 0,
        recent_factor: float = 2.0,
    ) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {direction!r}")
        if not 0.5 <= quantile < 1.0:
            raise ValueError(f"quantile must be in [0.5, 1), got {quantile!r}")
        self.season, self.history, self.direction = season, history, direction
        self.tail_history, self.window = max(2, int(tail_history)), max(1, int(window))
        self.quantile, self.clip, self.relative_floor = quantile, clip, relative_floor
        self.recurrence = max(1, int(recurrence))
        self.season_trust = season_trust
        self.tail_refresh = max(1, int(tail_refresh))
        self.recent_tail, self.recent_lag = max(0, int(recent_tail)), max(0, int(recent_lag))
        self.recent_factor = recent_factor
        super().__init__(grace_period)

    def _reset(self) -> None:
        self._level = RobustSeasonalZScore(
            self.season,
            self.history,
            self.direction,
            self.relative_floor,
            self.grace_period,
            self.season_trust,
            self.tail_history,
        )
        self._residuals = SeasonalHistory(self.tail_history)
        self._raw = SeasonalHistory(self.tail_history)
        self._cached_tails: tuple[tuple[float, float], tuple[float, float] | None] | None = None
        self._tails_learned = 0

    def _evaluate(self, x: float) -> tuple[float, float, float]:
        """Score of ``x``, its residual and the residual to learn (NaN when there is none)."""
        baseline = self._level.baseline(x)
        if baseline is None:
            return NEUTRAL_SCORE, math.nan, math.nan
        residual = x - baseline
        past = self._residuals.latest(self.tail_history)
        past = past[~np.isnan(past)]
        if past.size < self.grace_period:
            return NEUTRAL_SCORE, residual, residual
        floor = abs(baseline) * self.relative_floor
        (centre, spread), means_tail = self._tails(past)
        scale = max(spread, floor, TINY_SCALE)
        scores = [residual / scale]
        if means_tail is not None:
            mean_centre, mean_spread = means_tail
            mean_scale = max(mean_spread, floor / math.sqrt(self.window), TINY_SCALE)
            latest = (past[1 - self.window :].sum() + residual) / self.window
            scores.append((latest - mean_centre) / mean_scale)
        seasonal = self._seasonal_score(x)
        if seasonal is not None:
            scores.append(seasonal)
        low, high = centre - self.clip * scale, centre + self.clip * scale
        learned = residual
        if not low <= residual <= high:
            learned = clip_widened(
                residual, low, high, self._raw.latest(self.tail_history), self.recurrence
            )
        signed = {"up": max(scores), "down": -min(scores)}.get(self.direction)
        score = max(abs(s) for s in scores) if signed is None else max(signed, 0.0)
        return min(score, MAX_SCORE), residual, learned

    @property
    def warm_up(self) -> int:
        """The level's warm-up, then as many residuals before they set a scale."""
        return 2 * self.grace_period

    def _seasonal_score(self, x: float) -> float | None:
        """Signed deviation of ``x`` from the seasonal median in units of the seasonal
        errors' tail, while the season is trusted; None otherwise."""
        if not self._level.season_is_trusted():
            return None
        seasonal = self._level.seasonal_median()
        if seasonal is None:
            return None
        floor = abs(seasonal) * self.relative_floor
        unit = float(np.quantile(self._level.seasonal_errors(), self.quantile))
        return (x - seasonal) / max(unit, floor, TINY_SCALE)

    def _tails(self, past: np.ndarray) -> tuple[tuple[float, float], tuple[float, float] | None]:
        """(centre, spread) of the past residuals and of their ``k``-means (None while too
        few), taken again once ``tail_refresh`` residuals have been learned since."""
        learned = self._residuals.seen
        if self._cached_tails is None or learned - self._tails_learned >= self.tail_refresh:
            recent = self._recent(past)
            means_tail = None
            if self.window > 1 and past.size >= 4 * self.window:
                means_tail = self._bounded_tail(
                    _window_means(past, self.window), _window_means(recent, self.window)
                )
            self._cached_tails = (self._bounded_tail(past, recent), means_tail)
            self._tails_learned = learned
        return self._cached_tails

    def _recent(self, past: np.ndarray) -> np.ndarray:
        """The residuals of the recent tail, or none while the history is not longer than it
        and its lag (the whole history is recent then)."""
        span = self.recent_tail + self.recent_lag
        if self.recent_tail == 0 or past.size <= span:
            return past[:0]
        return past[past.size - span : past.size - self.recent_lag]

    def _bounded_tail(self, past: np.ndarray, recent: np.ndarray) -> tuple[float, float]:
        """(centre, spread) of ``past``, the spread at most ``F`` times the recent one."""
        centre, spread = _centre_spread(past, self.quantile)
        if recent.size >= self.grace_period:
            _, recent_spread = _centre_spread(recent, self.quantile)
            spread = min(spread, self.recent_factor * recent_spread)
        return centre, spread

    def _step(self, x: float, learn: bool) -> float:
        gap = is_gap(x) or not math.isfinite(x)
        score, residual, learned = (NEUTRAL_SCORE, math.nan, math.nan) if gap else self._evaluate(x)
        if learn:
            self._level.learn_one(x)
            self._residuals.append(learned)
            self._raw.append(residual)
        return score

    def score_one(self, x: float) -> float:
        return self._step(x, learn=False)

    def learn_one(self, x: float) -> Self:
        self._step(x, learn=True)
        return self

    def update(self, x: float) -> float:
        """Score ``x``, then learn it (one baseline look-up for both)."""
        return self._step(x, learn=True)

    def learn_many(self, values: Iterable[float]) -> Self:
        """Learn a block at once (warm start); residuals are taken from the block's median."""
        values = np.asarray(list(values), dtype=float)
        values = np.where(np.isfinite(values), values, np.nan)
        self._level.learn_many(values)
        if np.isfinite(values).any():
            self._residuals.extend(values - np.nanmedian(values))
            self._raw.extend(values - np.nanmedian(values))
        return self
