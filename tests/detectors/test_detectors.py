from datetime import timedelta

import numpy as np
import pytest

from detectors.alarm import HysteresisAlarm
from detectors.base import NEUTRAL_SCORE
from detectors.error_rate import ErrorRateDriftDetector
from detectors.history import clip_widened
from detectors.product import (
    build_alarm,
    build_detector,
    missing_steps,
    run_series,
    tail_quantile,
)
from detectors.residual_tail import ResidualTailScore
from detectors.robust_zscore import RobustSeasonalZScore
from detectors.volume import VolumeCollapseDetector
from tests.detectors.helpers import detection_indices

HOURLY = timedelta(hours=1)


def seasonal_latency(seed: int, days: int = 14) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(24 * days)
    return 100 + 30 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 2, t.size)


def test_daily_cycle_alone_raises_no_alert():
    assert detection_indices(build_alarm("latency", HOURLY), seasonal_latency(1)) == []


def test_level_shift_alerts_once_then_settles():
    stream = seasonal_latency(42)
    stream[250:] += 200
    assert detection_indices(build_alarm("latency", HOURLY), stream) == [250]


def test_separate_bursts_alert_separately():
    stream = seasonal_latency(42)
    stream[200], stream[260] = 400, 420
    assert detection_indices(build_alarm("latency", HOURLY), stream) == [200, 260]


def test_gap_is_neutral_and_time_moves_on():
    rng = np.random.default_rng(42)
    stream = 100 + rng.normal(0, 2, 200)
    stream[50:80] = np.nan
    stream[120] = 200
    detector = build_detector("latency", HOURLY)
    scores = [detector.update(x) for x in stream]
    assert all(s == NEUTRAL_SCORE for s in scores[50:80])
    assert detection_indices(build_alarm("latency", HOURLY), stream) == [120]


def test_warm_up_gives_neutral_scores():
    detector = RobustSeasonalZScore(season=24, history=48, grace_period=12)
    scores = [detector.update(x) for x in [1.0, 500.0, 3.0, 1e6] * 3]
    assert scores == [NEUTRAL_SCORE] * 12


def test_zero_variance_stays_finite_and_quiet():
    stream = np.full(200, 5.0)
    stream[150] = 5.1  # 2 % off a flat line is within the relative floor
    detector = build_detector("latency", HOURLY)
    scores = [detector.update(x) for x in stream]
    assert all(np.isfinite(scores)) and max(scores) < 1
    assert detection_indices(build_alarm("latency", HOURLY), stream) == []


def test_empty_and_all_gap_streams():
    assert detection_indices(build_alarm("latency", HOURLY), []) == []
    detector = build_detector("error_rate", HOURLY)
    assert [detector.update(np.nan) for _ in range(30)] == [NEUTRAL_SCORE] * 30


def test_error_rate_value_path_only_rises_count():
    rng = np.random.default_rng(8)
    rates = rng.binomial(500, 0.02, 300) / 500
    rates[200] = 0.2
    rates[250] = 0.0
    assert detection_indices(build_alarm("error_rate", HOURLY), rates) == [200]


def test_low_volume_failure_is_not_an_outage():
    rng = np.random.default_rng(42)
    detector = ErrorRateDriftDetector(season=24, history=48)
    for _ in range(100):
        detector.update_counts(rng.binomial(1000, 0.001), 1000)
    assert detector.score_one(1 / 20) > 30  # the rate alone looks alarming
    assert detector.score_counts(1, 20) < 2.5  # one in twenty calls is weak evidence
    assert detector.score_counts(50, 1000) > 10
    assert detector.score_counts(0, 0) == NEUTRAL_SCORE


def test_volume_collapse_alerts_once():
    rng = np.random.default_rng(5)
    calls = rng.poisson(120, 300).astype(float)
    calls[200:] = 0
    alarm = HysteresisAlarm(
        VolumeCollapseDetector(season=60, history=120), threshold=5, release=2, settle=5
    )
    assert detection_indices(alarm, calls) == [200]


def test_release_must_be_below_threshold():
    with pytest.raises(ValueError):
        HysteresisAlarm(RobustSeasonalZScore(24, 48), threshold=3, release=3, settle=2)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown detector kind"):
        build_detector("throughput")


def tail_alarm() -> HysteresisAlarm:
    detector = ResidualTailScore(season=24, history=48, tail_history=300, window=6)
    return HysteresisAlarm(detector, threshold=1.4, release=0.9, settle=4)


def test_ordinary_spikes_are_quiet_once_learned_and_a_larger_one_alerts():
    rng = np.random.default_rng(3)
    stream = 100 + rng.normal(0, 2, 600)
    stream[rng.choice(np.arange(50, 600), 30, replace=False)] += 25
    stream[450] += 80
    assert [i for i in detection_indices(tail_alarm(), stream) if i >= 300] == [450]


def test_a_spike_that_keeps_recurring_is_learned_after_recurrence_times():
    rng = np.random.default_rng(5)
    stream = 100 + rng.normal(0, 2, 600)
    stream[np.arange(100, 600, 40)] += 60
    learned = HysteresisAlarm(ResidualTailScore(24, 48, 300, 6, recurrence=5), 1.4, 0.9, 4)
    never = HysteresisAlarm(ResidualTailScore(24, 48, 300, 6, recurrence=10**6), 1.4, 0.9, 4)
    assert detection_indices(learned, stream) == list(range(100, 381, 40))
    assert detection_indices(never, stream) == list(range(100, 541, 40))


def test_clip_widened_to_order_statistics_and_unchanged_with_few_values():
    values = np.array([0.0, 1.0, np.nan, 9.0, 10.0, -8.0])
    assert clip_widened(50.0, -1.0, 1.0, values, 2) == 9.0
    assert clip_widened(-50.0, -1.0, 1.0, values, 1) == -8.0
    assert clip_widened(50.0, -1.0, 1.0, values[:1], 2) == 1.0


def test_tail_score_zero_variance_gaps_and_warm_up():
    flat = np.full(300, 5.0)
    flat[200] = 5.1  # within the relative floor
    detector = ResidualTailScore(season=24, history=48, tail_history=300, window=6)
    assert max(detector.update(x) for x in flat) < 1
    detector = ResidualTailScore(season=24, history=48, tail_history=300, window=6)
    assert [detector.update(np.nan) for _ in range(30)] == [NEUTRAL_SCORE] * 30
    assert [detector.update(x) for x in [1.0, 900.0] * 6] == [NEUTRAL_SCORE] * 12


def test_tail_score_rejects_bad_parameters():
    with pytest.raises(ValueError, match="quantile"):
        ResidualTailScore(24, 48, 300, quantile=1.0)
    with pytest.raises(ValueError, match="direction"):
        ResidualTailScore(24, 48, 300, direction="sideways")


def daily_peaks(seed: int, days: int = 14) -> np.ndarray:
    """Hourly values low all day but for a three-hour peak every afternoon."""
    rng = np.random.default_rng(seed)
    hours = np.arange(24 * days) % 24
    return np.where((hours >= 14) & (hours < 17), 80.0, 20.0) + rng.normal(0, 1, hours.size)


def test_missing_daily_peak_alerts_when_the_season_is_trusted():
    stream = daily_peaks(5)
    day = 10 * 24
    stream[day + 14 : day + 17] = 20.0  # the peak does not come: ordinary for the day
    assert detection_indices(build_alarm("latency", HOURLY), stream) == [day + 14]
    untrusting = ResidualTailScore(24, 48, 336, window=1, season_trust=None)
    assert detection_indices(HysteresisAlarm(untrusting, 1.4, 0.9, 4), stream) == []


def test_daily_peaks_alone_raise_no_alert_and_trust_the_season():
    detector = build_detector("latency", HOURLY)
    assert detection_indices(HysteresisAlarm(detector, 1.4, 0.9, 4), daily_peaks(6)) == []
    assert detector._level.season_is_trusted()


def test_missing_rows_are_gaps_so_the_time_of_day_stays_right():
    stream = daily_peaks(8)
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(stream.size).astype("timedelta64[h]")
    kept = np.ones(stream.size, dtype=bool)
    kept[200:207] = False  # seven hours without a row
    _, flags = run_series("latency", stamps[kept], stream[kept])
    assert flags.sum() == 0
    assert missing_steps(stamps[kept], HOURLY, 24)[200] == 7


def test_a_gap_neither_opens_nor_calms_an_alarm():
    alarm = HysteresisAlarm(RobustSeasonalZScore(season=24, history=48), 6, 2, settle=3)
    stream = list(50 + np.random.default_rng(2).normal(0, 1, 100))
    assert detection_indices(alarm, stream + [90.0] + [np.nan] * 10 + [90.0]) == [100]
    assert alarm.is_open


def test_an_alarm_held_between_release_and_threshold_expires_so_the_next_anomaly_alerts():
    # a quantised series whose score sits at 1.0 after a step, under the opening 1.4 but
    # above the 0.9 release, kept its alarm open for days and swallowed a later spike
    hovering = [1.5] + [1.0] * 300 + [2.0]

    def onsets(alarm: HysteresisAlarm) -> list[int]:
        return [i for i, score in enumerate(hovering) if alarm.step(score)]

    assert onsets(HysteresisAlarm(RobustSeasonalZScore(24, 48), 1.4, 0.9, settle=48)) == [0]
    assert onsets(HysteresisAlarm(RobustSeasonalZScore(24, 48), 1.4, 0.9, 48, expire=288)) == [
        0,
        301,
    ]
    # the product's alarm expires after a day of values at the series' own spacing
    assert build_alarm("latency", timedelta(minutes=5)).expire == 288
    assert build_alarm("error_rate", timedelta(hours=1)).expire == 24


def test_spikes_on_a_quantised_series_each_alert_once_the_first_alarm_has_expired():
    # a CPU share of 2 %, about one value in five 3 %: each 3 scores 1.0, above the release, so
    # the warm-up's alarm never settled and both later spikes to 6 % went unreported
    n = 288 * 12
    values = 2.0 + (np.random.default_rng(4).random(n) < 0.2)
    values[[288 * 4, 288 * 9]] = 6.0
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(n).astype("timedelta64[m]") * 5
    _, flags = run_series("latency", stamps, values)
    onsets = list(np.flatnonzero(flags))
    assert onsets[-2:] == [288 * 4, 288 * 9]
    assert len(onsets) == 4


def test_an_alarm_that_touches_its_threshold_again_does_not_expire():
    alarm = HysteresisAlarm(RobustSeasonalZScore(24, 48), 1.4, 0.9, settle=48, expire=10)
    scores = [1.5] + ([1.0] * 9 + [1.4]) * 5
    assert [i for i, score in enumerate(scores) if alarm.step(score)] == [0]
    assert alarm.is_open


def test_tail_quantile_keeps_the_daily_exceedances_of_five_minute_data():
    assert tail_quantile(timedelta(hours=1)) == 0.995
    assert tail_quantile(timedelta(minutes=5)) == pytest.approx(0.995)
    assert tail_quantile(timedelta(minutes=1)) == pytest.approx(0.999)
    assert build_detector("latency", timedelta(minutes=1)).quantile == pytest.approx(0.999)


def _weekday_load(days: int) -> np.ndarray:
    """Share of peak traffic per minute: busy 07:00-20:00, a tenth at night, weekends at 30%."""
    minute = np.arange(days * 1440)
    hour = (minute % 1440) / 60
    busy = np.clip(1.4 * np.sin(np.pi * (hour - 7) / 13), 0, 1) * ((hour >= 7) & (hour <= 20))
    weekday = (minute // 1440) % 7 < 5
    return (0.1 + 0.9 * busy) * np.where(weekday, 1.0, 0.3)


def test_per_minute_latency_under_load_raises_no_daily_false_alert():
    # a clean p95 that rises with load, with multiplicative noise: the 0.995 quantile of a
    # fortnight of minutes is exceeded seven times a day, and alerted four times in five days
    rng = np.random.default_rng(1)
    p95 = 300 * (1 + 0.5 * _weekday_load(6)) * np.exp(rng.normal(0, 0.3, 6 * 1440))
    fixed = build_alarm("latency")
    fixed.detector.quantile = 0.995
    product = build_alarm("latency")
    opened = [i for i, x in enumerate(p95) if product.update(float(x)) and i >= 1440]
    old = [i for i, x in enumerate(p95) if fixed.update(float(x)) and i >= 1440]
    assert opened == []
    assert len(old) >= 3


def test_fine_series_take_their_tail_every_ten_minutes_and_alert_alike():
    assert build_detector("latency", timedelta(minutes=1)).tail_refresh == 10
    assert build_detector("latency", timedelta(minutes=5)).tail_refresh == 1
    rng = np.random.default_rng(3)
    stream = 300 * np.exp(rng.normal(0, 0.2, 6000))
    stream[5000:5030] *= 2.5  # half an hour of calls two and a half times slower
    onsets = []
    for refresh in (1, 10):
        detector = ResidualTailScore(1440, 2880, 20160, 60, 0.999, tail_refresh=refresh)
        alarm = HysteresisAlarm(detector, 1.4, 0.9, 240)
        onsets.append([i for i, x in enumerate(stream) if alarm.update(float(x))])
    assert onsets[0] == onsets[1]
    assert onsets[0][-1] == 5000


def _disturbed_then_risen() -> tuple[np.ndarray, np.ndarray]:
    """Sixteen hourly days at 100 +/- 5: 400 more for half a day early on, then a rise to
    250 for ten hours on day 13."""
    rng = np.random.default_rng(3)
    hours = 24 * 16
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(hours) * np.timedelta64(1, "h")
    values = 100 + rng.normal(0, 5, hours)
    values[30:42] += 400
    values[300:310] = 250 + rng.normal(0, 5, 10)
    return stamps, values


def test_an_early_disturbance_in_the_fortnight_does_not_hide_a_later_rise():
    # the disturbance's residuals made the unit 80 times the noise: the rise scored 0.39
    stamps, values = _disturbed_then_risen()
    scores, flags = run_series("latency", stamps, values)
    assert np.flatnonzero(flags).tolist() == [30, 300]
    assert scores[300] > 5


def test_the_recent_tail_bounds_the_unit_only_where_it_is_calmer():
    past = np.concatenate([np.full(200, 50.0), np.tile([-1.0, 1.0], 100)])
    bounded = ResidualTailScore(24, 48, 400, recent_tail=96, recent_lag=6, recent_factor=2.0)
    unbounded = ResidualTailScore(24, 48, 400)
    assert bounded._bounded_tail(past, bounded._recent(past))[1] == 2.0
    assert unbounded._bounded_tail(past, unbounded._recent(past))[1] > 20
    calm = np.tile([-1.0, 1.0], 200)
    assert bounded._bounded_tail(calm, bounded._recent(calm)) == (0.0, 1.0)
