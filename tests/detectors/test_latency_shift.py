"""Count-aware latency drift: pooled robust z-scores, and only slowdowns that matter."""

from __future__ import annotations

import numpy as np

from detectors.latency_shift import LatencyShiftTest


def _scores(slowdown: float, calls: int, min_ratio: float = 1.5) -> tuple[float, float]:
    """(score, observed median over usual median) of ``calls`` calls ``slowdown`` times slower
    than a baseline of 3,000 log-normal calls around 300 ms."""
    rng = np.random.default_rng(11)
    test = LatencyShiftTest(min_ratio=min_ratio)
    test.learn(300 * np.exp(rng.normal(0, 0.5, 3000)))
    score = test.step(list(300 * slowdown * np.exp(rng.normal(0, 0.5, calls))))
    return score, test.observed_ms / test.baseline_ms


def test_a_batch_a_quarter_slower_than_usual_is_not_an_incident():
    # 300 calls each a little slower pool to a statistically certain shift ...
    score, ratio = _scores(1.25, 300, min_ratio=0.0)
    assert score > 6
    # ... but their median is 1.25 times the usual one, under ``min_ratio``: no score
    assert 1.15 < ratio < 1.35
    assert _scores(1.25, 300) == (0.0, ratio)


def test_calls_three_times_as_slow_score_few_or_many():
    for calls in (5, 300):
        score, ratio = _scores(3.0, calls)
        assert ratio > 2.5
        assert score > 4, calls
