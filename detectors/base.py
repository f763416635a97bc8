"""The interface every series detector follows (river's anomaly-detector protocol).

A detector sees one value per interval (one flow, one minute in the product), keeps all of
its state in ``_reset()``, and answers "how anomalous is this value" with a score where
higher is more anomalous. Until ``grace_period`` values have been learned it returns
``NEUTRAL_SCORE``. Turning scores into alerts is left to a wrapper
(:class:`detectors.alarm.HysteresisAlarm`).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable
from typing import Self

NEUTRAL_SCORE = 0.0
# past a thousand times its unit a score says nothing more (a flat series' first move
# divided by a vanishing scale), so scores stop there
MAX_SCORE = 1000.0


class SeriesDetector(abc.ABC):
    """Base class: ``score_one`` reads state, ``learn_one`` changes it, ``update`` does both.

    Parameters
    ----------
    grace_period
        Values to learn before scores are given (the warm-up, ``n_min``).
    """

    def __init__(self, grace_period: int) -> None:
        if grace_period < 1:
            raise ValueError(f"grace_period must be at least 1, got {grace_period}")
        self.grace_period = grace_period
        self._reset()

    @property
    def warm_up(self) -> int:
        """Values a new detector learns before it gives its first score."""
        return self.grace_period

    @abc.abstractmethod
    def _reset(self) -> None:
        """Forget everything learned; all mutable state is set here."""

    @abc.abstractmethod
    def score_one(self, x: float) -> float:
        """Score ``x`` against what has been learned so far, without learning it."""

    @abc.abstractmethod
    def learn_one(self, x: float) -> Self:
        """Learn ``x`` (NaN marks a gap: time moves on, nothing is learned)."""

    def learn_many(self, values: Iterable[float]) -> Self:
        """Learn a block of values, oldest first."""
        for x in values:
            self.learn_one(float(x))
        return self

    def update(self, x: float) -> float:
        """Score ``x``, then learn it; return the score."""
        score = self.score_one(x)
        self.learn_one(x)
        return score


def is_gap(x: float | None) -> bool:
    """True for a missing value (None or NaN)."""
    return x is None or (isinstance(x, float) and math.isnan(x))
