"""Thresholding with hysteresis: turn a detector's scores into alert onsets."""

from __future__ import annotations

import math

from detectors.base import SeriesDetector, is_gap


class HysteresisAlarm:
    """Open an alarm when the score reaches ``threshold``; close it once the signal settles.

    An open alarm gives no new onset. It closes after ``settle`` consecutive scores below
    ``release`` (the signal is back to normal, or the detector has learned a new level),
    and only then can a new alarm open. It also closes after ``expire`` consecutive scores
    below ``threshold``: a score that hovers between the two for that long (a quantised
    series whose new level sits a step above the old one) is the series' new usual, and an
    alarm held open by it would swallow the next real anomaly. A gap fed to :meth:`update`
    neither opens nor calms the alarm: a series that stops reporting has not shown that it
    recovered.

    Parameters
    ----------
    detector
        The scorer to wrap.
    threshold
        Score at which an alarm opens (``h``).
    release
        Score under which a value counts as calm (``h_0 < h``).
    settle
        Consecutive calm values needed to close the alarm (``m``).
    expire
        Consecutive values under ``threshold`` that close the alarm however far above
        ``release`` they are; 0 for never.

    References
    ----------
    Page, E. S. (1954). Continuous inspection schemes. Biometrika, 41(1/2), 100-115 (alarm
    on a decision interval, then restart).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.robust_zscore import RobustSeasonalZScore
    >>> rng = np.random.default_rng(3)
    >>> stream = 50 + rng.normal(0, 1, 400)
    >>> stream[250:] += 15  # the level shifts once and stays
    >>> alarm = HysteresisAlarm(RobustSeasonalZScore(season=24, history=48),
    ...                         threshold=6, release=2, settle=6)
    >>> [i for i, x in enumerate(stream) if alarm.update(x)]
    [250]
    """

    def __init__(
        self,
        detector: SeriesDetector,
        threshold: float,
        release: float,
        settle: int,
        expire: int = 0,
    ) -> None:
        if not release < threshold:
            raise ValueError(f"release ({release}) must be below threshold ({threshold})")
        self.detector = detector
        self.threshold = threshold
        self.release = release
        self.settle = max(1, int(settle))
        self.expire = max(0, int(expire))
        self._reset()

    def _reset(self) -> None:
        self.is_open = False
        self.score = 0.0
        self._calm = 0
        self._under = 0

    def update(self, x: float) -> bool:
        """Feed one value (NaN for a gap); True when an alarm opens on it (an onset)."""
        self.score = self.detector.update(x)
        if is_gap(x) or not math.isfinite(x):
            return False
        return self.step(self.score)

    def step(self, score: float) -> bool:
        """Advance the open/closed state with an already computed score."""
        if not self.is_open:
            if score >= self.threshold:
                self.is_open = True
                self._calm = self._under = 0
                return True
            return False
        self._calm = self._calm + 1 if score < self.release else 0
        self._under = self._under + 1 if score < self.threshold else 0
        if self._calm >= self.settle or 0 < self.expire <= self._under:
            self.is_open = False
        return False
