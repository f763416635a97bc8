"""Where the runner's scored signals open and settle."""

from __future__ import annotations

from detectors.runner import CATEGORY_LATCH, LATENCY_LATCH, Latch


def _opens(config, score: float) -> bool:
    return Latch(config).step(score)


def test_a_category_opens_at_4_2_not_at_the_4_1_of_a_chance_cluster():
    # false alerts in simulated weeks sat at 4.05 and 4.10: one category's one-in-10,000
    # window, with five or six categories judged every minute
    assert not _opens(CATEGORY_LATCH, 4.1)
    assert _opens(CATEGORY_LATCH, 4.2)


def test_latency_opens_at_a_pooled_z_of_4_5():
    assert not _opens(LATENCY_LATCH, 4.4)
    assert _opens(LATENCY_LATCH, 4.5)


def test_an_open_latch_settles_after_its_calm_minutes_only():
    latch = Latch(CATEGORY_LATCH)
    assert latch.step(6.0)
    for _ in range(CATEGORY_LATCH.settle - 1):
        assert not latch.step(0.0)
        assert latch.is_open
    latch.step(0.0)
    assert not latch.is_open
