"""Count-aware latency drift: are the last minutes' posting calls slower than the flow's usual?

A per-minute p50 or p95 of one or two calls is one draw of a heavy-tailed distribution, so a
quiet flow's percentiles jump all the time. This test judges the calls themselves instead: each
posting call of the last ``window`` minutes gets a robust z-score of its log duration against
the flow's recent calls (median and MAD of the log durations), clipped to ``[-clip, clip]`` so
one outlier cannot decide alone, and the scores are pooled as Stouffer's statistic::

    z_i = clip((ln d_i - median(ln D)) / (1.4826 MAD(ln D)), -clip, clip)
    Z   = sum(z_i) / sqrt(n)          (n calls in the window, at least ``min_calls``)

Under the usual behaviour ``Z`` is roughly standard normal whatever the traffic, so a threshold
means the same at 3 am with three calls as at noon with three hundred; with fewer than
``min_calls`` calls in the window there is no verdict (a gap). Only slowdowns score, and only
when the window's median call is at least ``min_ratio`` times the usual one: over a batch of
250 postings, a shift of 20% is statistically certain, yet it is the ERP's load varying with
the batch, not an incident (a test of practical rather than statistical significance).

A quiet flow (an order every ten minutes on a weekend morning) rarely has three calls in five
minutes, so the window alone would wait for the first timeouts. Beside it, the calls' scores,
clipped at ``cusum_clip`` (6) rather than ``clip``, feed a one-sided CUSUM over the calls,
whatever the time between them::

    S_i = min(cusum_cap, max(0, S_{i-1} + min(z_i, cusum_clip) - k))

with reference value ``k`` = 2: at a log-scale of 0.5 only calls more than 2.7 times slower
than usual add to it. The score is the larger of ``Z`` and ``S``, so both are judged against
one threshold: at 4.5, two calls twenty and five times slower than usual are enough, ten
minutes apart or one, while for standard normal scores the in-control run length is beyond
10^7 calls (Siegmund's approximation). Posting times are heavier-tailed than that: with
``k`` = 1.2 and the clip at 4, four calls of a subscription flow two to five times slower than
usual within four minutes opened a false alert in three simulated days. ``S`` starts over
when the flow has been silent for ``cusum_horizon`` minutes (stale evidence is not combined
with new) and counts only while the median of the calls of its run is ``min_ratio`` slower.
``S`` stops at ``cusum_cap`` (9, twice the alert threshold): it only has to say that the calls
are slow, and summed without bound an hour of slow calls (hundreds) needs as many usual calls
to fall back, which on a quiet night kept the alert open until the morning traffic, hours
after the ERP had recovered. The CUSUM is for sparse traffic: when the window holds
``dense_calls`` calls or more, the window's own test has the power, and the CUSUM starts
over; over a batch of hundreds of calls a few slow ones in a row are bound to occur, and the
CUSUM would sum them into a false alarm.

A flow is judged from its ``min_history``-th call (30, the warm-up); until the baseline holds
ten times ``refresh`` calls, it is taken again whenever it has grown by a tenth, so a first
day's baseline is not held at its first few dozen calls.

References
----------
Stouffer, S. A. et al. (1949). The American Soldier, Vol. 1 (combining z-scores).
Rousseeuw, P. J. and Croux, C. (1993). Alternatives to the median absolute deviation.
JASA 88(424), 1273-1283.
Page, E. S. (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.
Siegmund, D. (1985). Sequential Analysis: Tests and Confidence Intervals, ch. 2 (run lengths).
Kirk, R. E. (1996). Practical significance: a concept whose time has come. Educational and
Psychological Measurement 56(5), 746-759 (an effect size floor beside the test).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np

MAD_TO_SD = 1.4826
# a floor under the scale, so a flow whose calls all take the same time is not infinitely touchy
MIN_LOG_SCALE = 0.05
# a baseline of fewer than ten times ``refresh`` calls is taken again whenever it grows by a tenth
YOUNG_BASELINE_GROWTH = 10


class LatencyShiftTest:
    """Pooled robust z-score of the log durations of the last ``window`` minutes' calls.

    Parameters
    ----------
    window
        Minutes pooled into one verdict.
    history
        Most recent calls kept as the baseline.
    min_calls
        Fewest calls in the window for a verdict.
    min_history
        Fewest baseline calls before scoring (warm-up).
    clip
        Bound on each call's z-score.
    refresh
        Calls learned between two recomputations of the baseline; fewer while the baseline
        is young: a tenth of its size.
    min_ratio
        Smallest slowdown of the window's median call against the usual median that scores.
    cusum_k
        The CUSUM's reference value, in units of the baseline's log-scale.
    cusum_clip
        Bound on each call's score in the CUSUM.
    cusum_horizon
        Minutes without calls after which the CUSUM starts over.
    cusum_cap
        Largest value of the CUSUM, so that it falls back within a few usual calls.
    dense_calls
        Calls in the window from which the CUSUM stands aside for the window's test.

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> test = LatencyShiftTest()
    >>> test.learn(300 * np.exp(rng.normal(0, 0.5, 2000)))
    >>> round(test.step([310.0, 280.0]), 1)  # two calls: no verdict
    0.0
    >>> test.step(list(300 * 4 * np.exp(rng.normal(0, 0.5, 6)))) > 4.5  # four times slower
    True
    >>> quiet = LatencyShiftTest()
    >>> quiet.learn(300 * np.exp(rng.normal(0, 0.5, 2000)))
    >>> round(quiet.step([6000.0]), 1), round(quiet.step([]), 1)  # one call 20x: not enough
    (3.7, 3.7)
    >>> quiet.step([1500.0]) > 4.5  # and a minute later one 5x slower
    True
    """

    def __init__(
        self,
        window: int = 5,
        history: int = 5000,
        min_calls: int = 3,
        min_history: int = 30,
        clip: float = 4.0,
        refresh: int = 200,
        min_ratio: float = 1.5,
        cusum_k: float = 2.0,
        cusum_clip: float = 6.0,
        cusum_horizon: int = 60,
        dense_calls: int = 20,
        cusum_cap: float = 9.0,
    ) -> None:
        self.window = window
        self.min_calls = min_calls
        self.min_history = min_history
        self.clip = clip
        self.refresh = refresh
        self.min_ratio = min_ratio
        self.cusum_k = cusum_k
        self.cusum_clip = cusum_clip
        self.cusum_horizon = cusum_horizon
        self.dense_calls = dense_calls
        self.cusum_cap = cusum_cap
        self._cusum = 0.0
        self._run: deque[float] = deque(maxlen=history)
        self._silent_minutes = 0
        self._window_calls = 0
        self._history: deque[float] = deque(maxlen=history)
        self._recent: deque[np.ndarray] = deque(maxlen=window)
        self._since_refresh = refresh
        self._center = math.nan
        self._scale = math.nan
        self.baseline_ms = math.nan
        self.observed_ms = math.nan

    def learn(self, durations_ms: Iterable[float]) -> None:
        """Add calls to the baseline without scoring them."""
        logs = _logs(durations_ms)
        self._history.extend(logs.tolist())
        self._since_refresh += len(logs)

    def step(self, durations_ms: Iterable[float], learn_below: float = math.inf) -> float:
        """Score the window ending with this minute's calls; learn them if the score stays
        under ``learn_below`` (so a drift does not teach itself as normal)."""
        logs = _logs(durations_ms)
        self._recent.append(logs)
        score = self._score()
        if score < learn_below and len(logs):
            self._history.extend(logs.tolist())
            self._since_refresh += len(logs)
        return score

    def _score(self) -> float:
        self.observed_ms = math.nan
        learned = len(self._history)
        if learned < self.min_history:
            return 0.0
        # a young baseline is taken again each time it grows by a tenth: held at its first
        # 30 calls until 230, it made a flow's usual calls look slow on its first day
        if self._since_refresh >= min(self.refresh, learned // YOUNG_BASELINE_GROWTH):
            self._refresh()
        window, window_ms = self._window_score()
        cusum, run_ms = self._cusum_step(self._recent[-1])
        if cusum > window:
            self.observed_ms = run_ms
            return cusum
        self.observed_ms = window_ms
        return window

    def _window_score(self) -> tuple[float, float]:
        """Stouffer's Z of the window's calls and their median (ms), 0 without a verdict."""
        pooled = np.concatenate(list(self._recent))
        self._window_calls = pooled.size
        if pooled.size == 0:
            return 0.0, math.nan
        median_ms = float(math.exp(np.median(pooled)))
        if pooled.size < self.min_calls or median_ms < self.min_ratio * self.baseline_ms:
            return 0.0, median_ms
        z = np.clip((pooled - self._center) / self._scale, -self.clip, self.clip)
        return max(0.0, float(z.sum() / math.sqrt(pooled.size))), median_ms

    def _cusum_step(self, logs: np.ndarray) -> tuple[float, float]:
        """Advance the CUSUM by this minute's calls; (its score, the median call of its run in
        ms), the score 0 unless that median is ``min_ratio`` slower than usual."""
        if self._window_calls >= self.dense_calls:
            self._cusum = 0.0
            self._run.clear()
        elif logs.size == 0:
            self._silent_minutes += 1
            if self._silent_minutes >= self.cusum_horizon:
                self._cusum = 0.0
                self._run.clear()
        else:
            self._silent_minutes = 0
            z = np.clip((logs - self._center) / self._scale, -self.clip, self.cusum_clip)
            for log_ms, score in zip(logs.tolist(), z.tolist(), strict=True):
                self._cusum = min(self.cusum_cap, max(0.0, self._cusum + score - self.cusum_k))
                if self._cusum > 0:
                    self._run.append(log_ms)
                else:
                    self._run.clear()
        if not self._run:
            return 0.0, math.nan
        run_ms = float(math.exp(np.median(self._run)))
        if run_ms < self.min_ratio * self.baseline_ms:
            return 0.0, run_ms
        return self._cusum, run_ms

    def _refresh(self) -> None:
        values = np.fromiter(self._history, float, len(self._history))
        self._center = float(np.median(values))
        mad = float(np.median(np.abs(values - self._center)))
        self._scale = max(MAD_TO_SD * mad, MIN_LOG_SCALE)
        self.baseline_ms = math.exp(self._center)
        self._since_refresh = 0


def _logs(durations_ms: Iterable[float]) -> np.ndarray:
    values = np.asarray(list(durations_ms), dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return np.log(values)
