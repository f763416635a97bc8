"""NAB-style scoring of alarm onsets against labelled anomaly windows.

Reimplements the scoring rules published with the Numenta Anomaly Benchmark (Lavin and
Ahmad, 2015, "Evaluating Real-time Anomaly Detection Algorithms -- the Numenta Anomaly
Benchmark", IEEE ICMLA):

* each labelled anomaly has a window of rows; the earliest alarm inside a window earns
  ``tp_weight`` times a scaled sigmoid of its position, 1.0 at the window's first row and
  falling towards 0 at its last row;
* a window without an alarm costs ``fn_weight``;
* an alarm outside every window costs ``fp_weight``, fully before the first window and
  scaled by the sigmoid of its distance after the preceding window otherwise;
* the probationary rows (the first 15 % of a file, at most 750) are not scored;
* a set's score is normalised so that the null detector (never alarms) gets 0 and the
  perfect detector (alarms on the first row of every window) gets 100.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PROBATIONARY_FRACTION = 0.15
PROBATIONARY_MAX_ROWS = 750


@dataclass(frozen=True)
class Profile:
    """Weights of one NAB application profile."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


# NAB v1.1 config/profiles.json
PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
    "reward_low_FP_rate": Profile(
        "reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0
    ),
    "reward_low_FN_rate": Profile(
        "reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0
    ),
}

Window = tuple[int, int]


@dataclass(frozen=True)
class FileScore:
    """Raw NAB score of one file and its window-level counts."""

    raw: float
    windows: int
    caught: int
    missed: int
    false_alarms: int


def probationary_length(n_rows: int) -> int:
    """Rows at the start of a file that are not scored: 15 % of them, at most 750."""
    return int(min(math.floor(PROBATIONARY_FRACTION * n_rows), PROBATIONARY_MAX_ROWS))


def scaled_sigmoid(position: float) -> float:
    """NAB's scaled sigmoid: ``2 / (1 + exp(5 y)) - 1``, and -1 from ``y >= 3`` on.

    ``y = -1`` is a window's first row (0.9866), ``y = 0`` its end (0.0), ``y > 0`` past it.
    """
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def windows_to_rows(timestamps: np.ndarray, bounds: Iterable[Sequence[object]]) -> list[Window]:
    """Map ``[start, end]`` timestamp bounds to inclusive row ranges.

    A bound on a repeated timestamp maps to its first row for a start and its last row
    for an end; ``timestamps`` must be sorted (``datetime64``).
    """
    rows = []
    for start, end in bounds:
        first = int(np.searchsorted(timestamps, np.datetime64(start), side="left"))
        last = int(np.searchsorted(timestamps, np.datetime64(end), side="right")) - 1
        if first <= last:
            rows.append((first, last))
    return sorted(rows)


def score_file(
    alarm_rows: Iterable[int], windows: Sequence[Window], n_rows: int, profile: Profile
) -> FileScore:
    """Score one file's alarm rows (onsets) against its windows under ``profile``."""
    probation = probationary_length(n_rows)
    windows = sorted(windows)
    scored = [w for w in windows if w[1] >= probation]
    best: dict[Window, float] = {}
    fp_cost = 0.0
    false_alarms = 0
    for row in sorted(set(int(r) for r in alarm_rows)):
        if row < probation or row >= n_rows:
            continue
        window = next((w for w in windows if w[0] <= row <= w[1]), None)
        if window is not None:
            width = window[1] - window[0] + 1
            gain = scaled_sigmoid(-(window[1] - row + 1) / width) / _MAX_TP * profile.tp_weight
            best[window] = max(best.get(window, -math.inf), gain)
            continue
        false_alarms += 1
        fp_cost += _false_alarm_cost(row, windows, profile)
    caught = sum(1 for w in scored if w in best)
    missed = len(scored) - caught
    raw = sum(best.values()) - missed * profile.fn_weight - fp_cost
    return FileScore(raw, len(scored), caught, missed, false_alarms)


def _false_alarm_cost(row: int, windows: Sequence[Window], profile: Profile) -> float:
    preceding = [w for w in windows if w[1] < row]
    if not preceding:
        return profile.fp_weight
    start, end = preceding[-1]
    width = end - start + 1
    # a one-row window has no scale; NAB divides by zero there, so count it as far away
    position = (row - end) / (width - 1) if width > 1 else 3.0
    return -scaled_sigmoid(position) * profile.fp_weight


def normalised_score(scores: Iterable[FileScore], profile: Profile) -> float:
    """Normalise summed raw scores: 0 for the null detector, 100 for the perfect one."""
    scores = list(scores)
    n_windows = sum(s.windows for s in scores)
    if n_windows == 0:
        return float("nan")
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    return 100.0 * (sum(s.raw for s in scores) - null) / (perfect - null)
