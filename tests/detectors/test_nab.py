import math

import numpy as np
import pytest

from detectors.nab import (
    PROFILES,
    normalised_score,
    probationary_length,
    scaled_sigmoid,
    score_file,
    windows_to_rows,
)

STANDARD = PROFILES["standard"]
N_ROWS = 1000  # probation: 150 rows
WINDOWS = [(400, 499), (700, 799)]


def test_profiles_match_nab_weights():
    assert [(p.tp_weight, p.fp_weight, p.fn_weight) for p in PROFILES.values()] == [
        (1.0, 0.11, 1.0),
        (1.0, 0.22, 1.0),
        (1.0, 0.11, 2.0),
    ]


def test_probationary_length_is_15_percent_capped_at_750():
    assert probationary_length(1000) == 150
    assert probationary_length(720) == 108
    assert probationary_length(18050) == 750


def test_scaled_sigmoid_landmarks():
    assert scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.0) == -1.0


def test_perfect_detector_scores_100_and_null_scores_0():
    for profile in PROFILES.values():
        perfect = score_file([w[0] for w in WINDOWS], WINDOWS, N_ROWS, profile)
        null = score_file([], WINDOWS, N_ROWS, profile)
        assert perfect.raw == pytest.approx(2.0)
        assert normalised_score([perfect], profile) == pytest.approx(100.0)
        assert normalised_score([null], profile) == pytest.approx(0.0)


def test_one_false_alarm_before_any_window_costs_fp_weight():
    for profile in PROFILES.values():
        result = score_file([200, 400, 700], WINDOWS, N_ROWS, profile)
        assert result.raw == pytest.approx(2.0 - profile.fp_weight)
        assert result.false_alarms == 1
    expected = 100 * (2.0 - 0.11 + 2.0) / 4.0
    assert normalised_score(
        [score_file([200, 400, 700], WINDOWS, N_ROWS, STANDARD)], STANDARD
    ) == pytest.approx(expected)


def test_false_alarm_after_a_window_is_scaled_by_distance():
    # 50 rows after a 100-row window: position 50 / 99
    result = score_file([400, 549, 700], WINDOWS, N_ROWS, STANDARD)
    cost = -scaled_sigmoid(50 / 99) * 0.11
    assert result.raw == pytest.approx(2.0 - cost)
    assert 0 < cost < 0.11


def test_late_detection_earns_less_and_a_miss_costs_fn_weight():
    mid = score_file([449], WINDOWS, N_ROWS, PROFILES["reward_low_FN_rate"])
    gain = scaled_sigmoid(-51 / 100) / scaled_sigmoid(-1.0)
    assert mid.raw == pytest.approx(gain - 2.0)
    assert (mid.caught, mid.missed) == (1, 1)


def test_only_the_best_alarm_in_a_window_counts():
    assert score_file([400, 450, 499], [(400, 499)], N_ROWS, STANDARD).raw == pytest.approx(1.0)


def test_alarms_in_probation_are_ignored():
    result = score_file([10, 149, 400, 700], WINDOWS, N_ROWS, STANDARD)
    assert result.raw == pytest.approx(2.0)
    assert result.false_alarms == 0


def test_window_bounds_on_repeated_timestamps():
    stamps = np.array(
        [
            "2018-01-01T00",
            "2018-01-01T01",
            "2018-01-01T01",
            "2018-01-01T02",
            "2018-01-01T02",
            "2018-01-01T03",
        ],
        dtype="datetime64[ns]",
    )
    rows = windows_to_rows(stamps, [("2018-01-01 01:00:00.000000", "2018-01-01 02:00:00")])
    assert rows == [(1, 4)]


def test_no_windows_gives_nan_normalised_score():
    assert math.isnan(normalised_score([score_file([], [], 100, STANDARD)], STANDARD))
