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


def test_the_error_rate_alarm_settles_through_everyday_single_failures():
    # one failure an hour at a flow's usual rate once held an alert open all afternoon: each
    # scored about 3, over the series' release of 1.7, and restarted the two calm hours
    from detectors.runner import ERROR_RATE_COUNTS_RELEASE, Minute, SeriesState

    series = SeriesState("billing.invoice-post", "erp")
    for minute in range(24 * 60):
        series.step(Minute(calls=2, transactions=2, failed=1 if minute % 240 == 0 else 0))
    alarm = series.alarms["error_rate"]
    for _ in range(10):  # a burst: most transactions fail
        series.step(Minute(calls=4, transactions=4, failed=3))
    assert alarm.is_open
    closed_after = None
    for minute in range(4 * 60):
        series.step(Minute(calls=2, transactions=2, failed=1 if minute % 60 == 30 else 0))
        assert alarm.score < ERROR_RATE_COUNTS_RELEASE  # one failure is no reason to hold
        if not alarm.is_open and closed_after is None:
            closed_after = minute
    assert closed_after is not None and closed_after <= 2 * 60 + 5


def test_one_missing_master_record_on_a_flow_that_never_had_one_opens_at_once():
    # an invoice whose item is not in the ERP item master: every invoice of that item will
    # fail the same way until the record is there, so the first one is reported
    from detectors.runner import EXCEPTION_CATEGORY, Minute, SeriesState

    series = SeriesState("billing.invoice-post", "erp")
    for minute in range(25 * 60):
        failed = {"validation": [f"INV-{minute}"]} if minute % 120 == 0 else {}
        series.step(Minute(calls=3, transactions=3, failed=len(failed), categories=failed))
    onsets, _ = series.step(
        Minute(calls=3, transactions=3, failed=1, categories={"master_data_missing": ["INV-X"]})
    )
    [onset] = [seen for seen in onsets if seen.kind == EXCEPTION_CATEGORY]
    assert onset.signal == "category:master_data_missing"
    assert onset.detail == (
        "master_data_missing is new to this flow (no such failure outside alerts in the previous "
        "25 hours): 1 of 45 transactions in 15 min"
    )
    # a validation failure, common on this flow, is no news however rare it is this hour
    onsets, _ = series.step(
        Minute(calls=3, transactions=3, failed=1, categories={"validation": ["INV-Y"]})
    )
    assert [seen for seen in onsets if seen.kind == EXCEPTION_CATEGORY] == []


def test_a_restart_reopens_the_alarm_of_the_alert_s_category():
    # the generic latch opened instead, and the category's failures were learned as usual
    from detectors.runner import EXCEPTION_CATEGORY, Minute, SeriesState

    series = SeriesState("order-to-cash.order-submit", "erp")
    for _ in range(25 * 60):
        series.step(Minute(calls=3, transactions=3))
    series.mark_open([EXCEPTION_CATEGORY], "category:mapping")
    kind, latch = series.latches["category:mapping"]
    assert kind == EXCEPTION_CATEGORY and latch.is_open
    before = (
        series.categories._week_failures["mapping"] + series.categories._hour_failures["mapping"]
    )
    series.step(Minute(calls=3, transactions=3, failed=1, categories={"mapping": ["SO-7"]}))
    after = (
        series.categories._week_failures["mapping"] + series.categories._hour_failures["mapping"]
    )
    assert after == before  # in alarm: not learned


def test_a_restart_reopens_the_alarm_of_every_category_the_alert_shows():
    # only the strongest signal's category reopened: the other's failures were learned as the
    # usual rate while its incident went on
    from detectors.runner import EXCEPTION_CATEGORY, Minute, SeriesState

    series = SeriesState("order-to-cash.order-submit", "erp")
    for _ in range(25 * 60):
        series.step(Minute(calls=3, transactions=3))
    series.mark_open([EXCEPTION_CATEGORY], "category:mapping", ["mapping", "timeout"])
    assert all(series.latches[f"category:{name}"][1].is_open for name in ("mapping", "timeout"))
    series.step(Minute(calls=3, transactions=3, failed=1, categories={"timeout": ["SO-8"]}))
    assert series.categories._hour_failures["timeout"] == 0  # in alarm: not learned


def test_a_restart_leaves_closed_the_alarms_that_settled_while_the_alert_stayed_open():
    # every alarm of the alert's kinds reopened, the latch of a category that had settled
    # while the error rate held the alert open too (its failures left out of the history
    # again), and so did the latches of categories of the flow's earlier alerts
    from detectors.runner import EXCEPTION_CATEGORY, Minute, SeriesState

    series = SeriesState("order-to-cash.order-submit", "erp")
    for _ in range(25 * 60):
        series.step(Minute(calls=3, transactions=3))
    series._latch("category:timeout", EXCEPTION_CATEGORY)  # an earlier alert's, settled
    series.mark_open(
        [EXCEPTION_CATEGORY, "error_rate"],
        "category:mapping",
        ["mapping", "master_data_missing"],
        frozenset({"category:mapping"}),
    )
    assert not series.is_open("category:mapping")
    assert not series.is_open("category:timeout")
    assert series.is_open("category:master_data_missing") and series.is_open("error_rate")
    series.step(Minute(calls=3, transactions=3, failed=1, categories={"mapping": ["SO-7"]}))
    assert series.categories._hour_failures["mapping"] == 1  # settled: learned
    assert series.settled == []


def test_a_step_tells_which_alarms_settled_in_it():
    from detectors.runner import EXCEPTION_CATEGORY, Minute, SeriesState

    series = SeriesState("order-to-cash.order-submit", "erp")
    for _ in range(25 * 60):
        series.step(Minute(calls=3, transactions=3))
    series.mark_open([EXCEPTION_CATEGORY], "category:mapping", ["mapping"])
    for _ in range(CATEGORY_LATCH.settle - 1):
        series.step(Minute(calls=3, transactions=3))
        assert series.settled == []
    series.step(Minute(calls=3, transactions=3))
    assert [signal.signal for signal in series.settled] == ["category:mapping"]
    series.step(Minute(calls=3, transactions=3))
    assert series.settled == []


def test_the_warm_up_learns_a_flow_s_calls_as_its_evaluation_did():
    # the warm-up learned every call: a slow spell's calls, which the evaluation had left out
    # (they scored above the release), widened the baseline after a restart, and a young
    # flow's baseline was taken again at other points, which opened a latency alert that
    # the run without a restart never did
    import numpy as np
    import pandas as pd

    from detectors.runner import Minute, SeriesState

    rng = np.random.default_rng(7)
    calls = [list(200 * np.exp(rng.normal(0, 0.3, 3))) for _ in range(400)]
    for minute in range(300, 312):
        calls[minute] = [6000.0, 7000.0, 8000.0]  # the ERP slows down for twelve minutes
    evaluated = SeriesState("billing.invoice-post", "erp")
    for durations in calls:
        evaluated.step(Minute(calls=3, transactions=3, post_durations_ms=durations))
    learned = SeriesState("billing.invoice-post", "erp")
    minutes = pd.DataFrame(
        {
            "transactions": 3.0,
            "failed": 0.0,
            "calls": 3.0,
            "post_durations_ms": calls,
            "failed_categories": [[] for _ in calls],
        },
        index=pd.date_range("2025-03-03", periods=len(calls), freq="1min"),
    )
    learned.learn(minutes)

    assert 6000.0 not in np.exp(list(evaluated.latency._history)).round()
    assert list(learned.latency._history) == list(evaluated.latency._history)
