"""Fixed-size history of a series with robust level, scale and seasonal statistics."""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826
MEAN_ABS_TO_SIGMA = 1.2533


class SeasonalHistory:
    """The last ``capacity`` values of a series (NaN for gaps) in a ring buffer.

    Values are kept as float32: a week of per-minute values costs 40 kB per series.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._buffer = np.full(self.capacity, np.nan, dtype=np.float32)
        self._next = 0
        self.seen = 0

    def append(self, x: float) -> None:
        """Add the newest value (NaN for a gap)."""
        self._buffer[self._next] = x
        self._next = (self._next + 1) % self.capacity
        self.seen += 1

    def extend(self, values: np.ndarray) -> None:
        """Add many values at once, oldest first."""
        values = np.asarray(values, dtype=np.float32)[-self.capacity :]
        positions = (self._next + np.arange(values.size)) % self.capacity
        self._buffer[positions] = values
        self._next = (self._next + values.size) % self.capacity
        self.seen += values.size

    def latest(self, n: int) -> np.ndarray:
        """The last ``n`` values, oldest first (fewer while the history is short)."""
        n = min(n, self.capacity, self.seen)
        start = self._next - n
        if start >= 0:
            return self._buffer[start : self._next].astype(float)
        return np.concatenate((self._buffer[start:], self._buffer[: self._next])).astype(float)

    def lagged(self, lag: int, count: int) -> np.ndarray:
        """Values ``lag``, ``2 lag``, ... ``count lag`` steps back (those still held)."""
        held = min(self.seen, self.capacity)
        steps = np.arange(1, count + 1) * lag
        steps = steps[steps <= held]
        return self._buffer[(self._next - steps) % self.capacity].astype(float)


def robust_level_scale(values: np.ndarray, relative_floor: float) -> tuple[float, float]:
    """Median and a robust scale of ``values`` (NaN-free).

    The scale is the largest of the MAD-based sigma, half the mean-absolute-deviation sigma
    (so a mostly flat series with bursts still has a scale), ``relative_floor`` times the
    level, and a tiny absolute floor that keeps zero-variance series finite.
    """
    level = float(np.median(values))
    deviations = np.abs(values - level)
    scale = max(
        MAD_TO_SIGMA * float(np.median(deviations)),
        0.5 * MEAN_ABS_TO_SIGMA * float(deviations.mean()),
        relative_floor * abs(level),
        1e-9,
    )
    return level, scale


def clip_widened(x: float, low: float, high: float, values: np.ndarray, k: int) -> float:
    """Clip ``x`` to ``[low, high]`` widened to the ``k``-th smallest and largest of ``values``.

    ``values`` may hold NaN (gaps); with fewer than ``k`` of them the bounds stay as given.
    """
    values = values[~np.isnan(values)]
    if values.size >= k >= 1:
        ordered = np.partition(values, (k - 1, values.size - k))
        low, high = min(low, float(ordered[k - 1])), max(high, float(ordered[values.size - k]))
    return min(max(x, low), high)
