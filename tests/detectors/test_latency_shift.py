"""Count-aware latency drift: pooled robust z-scores, and only slowdowns that matter."""

from __future__ import annotations

import math

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
    # ... but their median is 1.25 times the usual one, under ``min_ratio``: the window does
    # not score, and the CUSUM, which leans on each call by its reference value, stays low
    assert 1.15 < ratio < 1.35
    score, _ = _scores(1.25, 300)
    assert score < 1.0


def test_calls_three_times_as_slow_score_few_or_many():
    for calls in (5, 300):
        score, ratio = _scores(3.0, calls)
        assert ratio > 2.5
        assert score > 4, calls


def _quiet_flow(rng: np.random.Generator) -> LatencyShiftTest:
    test = LatencyShiftTest()
    test.learn(400 * np.exp(rng.normal(0, 0.5, 3000)))
    return test


def test_a_quiet_flow_alerts_on_two_very_slow_calls_minutes_apart():
    # a weekend morning: one order every ten minutes, the ERP ramping up (5x, then 20x)
    test = _quiet_flow(np.random.default_rng(3))
    scores = [test.step([1900.0])] + [test.step([]) for _ in range(12)] + [test.step([7900.0])]
    assert scores[0] < 4.5  # one slow call alone is not enough
    assert scores[-1] > 4.5
    assert 4 * 400 < test.observed_ms < 20 * 400  # the median call of the slow run


def test_the_cusum_forgets_a_slow_call_after_an_hour_of_silence():
    test = _quiet_flow(np.random.default_rng(4))
    test.step([1900.0])
    for _ in range(60):
        test.step([])
    assert test.step([7900.0]) < 4.5


def test_a_week_of_usual_calls_one_a_minute_never_scores_high():
    rng = np.random.default_rng(5)
    test = _quiet_flow(rng)
    worst = max(
        test.step(list(400 * np.exp(rng.normal(0, 0.5, rng.poisson(1.5)))))
        for _ in range(7 * 24 * 60)
    )
    assert worst < 4.5


def _calls_until_calm(cap: float) -> int:
    """Usual calls, one every ten minutes, before an hour of 20x slower calls stops scoring."""
    rng = np.random.default_rng(6)
    test = LatencyShiftTest(cusum_cap=cap)
    test.learn(400 * np.exp(rng.normal(0, 0.5, 3000)))
    for _ in range(60):  # the ERP drift: one call a minute, twenty times slower
        test.step([8000.0 * np.exp(rng.normal(0, 0.3))], learn_below=-1.0)
    for calls in range(1, 500):  # the night after: usual calls, ten minutes apart
        score = test.step([400 * np.exp(rng.normal(0, 0.5))], learn_below=-1.0)
        for _ in range(9):
            score = max(score, test.step([], learn_below=-1.0))
        if score < 2.0:
            return calls
    return 500


def test_the_cusum_falls_back_within_a_few_usual_calls_after_a_long_drift():
    assert _calls_until_calm(9.0) <= 8
    assert _calls_until_calm(math.inf) > 100  # summed without bound: a night of calls


def _steps(test: LatencyShiftTest, durations_ms: np.ndarray) -> list[float]:
    """Scores of one call a minute, learned as the runner learns them (under the alarm)."""
    return [test.step([float(ms)], learn_below=4.5) for ms in durations_ms]


def test_a_new_flow_is_judged_from_its_thirtieth_call():
    # an ERP drift 4.5 hours into a flow's first day (66 calls) went unseen for 104 minutes:
    # the test waited for 100 calls and meanwhile learned the slow calls as usual
    rng = np.random.default_rng(23)
    test = LatencyShiftTest()
    assert max(_steps(test, 450 * np.exp(rng.normal(0, 0.5, 40)))) < 4.5
    slow = _steps(test, [2300.0, 2800.0, 2400.0, 4400.0])
    assert max(slow) > 4.5


def test_a_young_baseline_follows_the_flow_as_it_grows():
    # held at its first 30 calls until the 230th, a baseline read a flow's usual calls as a
    # drift (4.9 on these); taken again at each tenth of growth, it stays calm
    rng = np.random.default_rng(3)
    usual = 400 * np.exp(rng.normal(0, 0.5, 260))
    assert max(_steps(LatencyShiftTest(), usual)) < 3.5
