"""Exception-category drift: windows of 3, 5 and 15 minutes, each held to the same false alarms."""

from __future__ import annotations

import math

from scipy import stats

from detectors.category_drift import CategoryDrift


def _drift(minutes: int, per_minute: float, every: int, category: str = "mapping") -> CategoryDrift:
    """A flow with ``per_minute`` transactions a minute and one ``category`` failure every
    ``every`` minutes, learned for ``minutes`` minutes."""
    drift = CategoryDrift(min_history=100)
    for minute in range(minutes):
        failures = {category: [f"OLD-{minute}"]} if minute % every == every - 1 else {}
        drift.learn(per_minute, failures)
    return drift


def _clean(drift: CategoryDrift, minutes: int, per_minute: float) -> None:
    for _ in range(minutes):
        assert drift.step(per_minute, {}) == []


def test_a_short_burst_scores_in_the_three_minute_window():
    drift = _drift(600, 10.0, 100)  # 6 mapping failures in 6,000 transactions
    _clean(drift, 15, 10.0)
    # one failure never alerts; the hour, with one of the usual failures, scores low
    assert all(s.minutes == 60 and s.score < 1.5 for s in drift.step(10.0, {"mapping": ["A"]}))
    [two] = drift.step(10.0, {"mapping": ["B"]})
    [found] = drift.step(10.0, {"mapping": ["C"]})
    rate = 6.5 / 6001.0
    assert found.baseline_rate == rate
    assert (found.failures, found.transactions, found.minutes) == (3, 30, 3)
    expected = -math.log10(stats.poisson.sf(2, 30 * rate)) - math.log10(5)
    assert math.isclose(found.score, expected)
    assert round(found.score, 2) == 4.55
    # the same three failures in the quarter hour score only 3.2 there
    quarter = -math.log10(stats.poisson.sf(2, 150 * rate))
    assert round(quarter, 2) == 3.2
    assert (two.minutes, round(two.score, 2)) == (3, 2.59)


def test_failures_spread_over_the_quarter_hour_score_in_the_long_window_unpenalised():
    drift = _drift(600, 10.0, 100)
    _clean(drift, 15, 10.0)
    found = []
    for minute in range(15):
        failures = {"mapping": [f"K-{minute}"]} if minute % 5 == 0 else {}
        found = drift.step(10.0, failures)
    [score] = found
    rate = 6.5 / 6001.0
    assert (score.failures, score.transactions, score.minutes) == (3, 150, 15)
    assert math.isclose(score.score, -math.log10(stats.poisson.sf(2, 150 * rate)))


def test_two_failures_of_a_common_category_among_a_night_s_few_transactions_stay_quiet():
    # validation in about 0.4 % of transactions, one transaction a minute at night
    drift = _drift(2500, 1.0, 250, "validation")
    _clean(drift, 15, 1.0)
    assert drift.step(1.0, {"validation": ["N-1"]}) == []
    [found] = drift.step(1.0, {"validation": ["N-2"]})
    assert found.failures == 2
    assert found.score < 4.0


def test_rejected_redeliveries_are_not_judged_as_failures():
    # a consumer rebalance redelivers a batch and the ERP answers 409 to each: the
    # idempotency check did its job, so the ``duplicate`` category raises nothing
    drift = _drift(600, 10.0, 100)
    _clean(drift, 15, 10.0)
    assert drift.step(10.0, {"duplicate": ["A", "B", "C", "D"]}) == []
    # the same burst in a category that is a failure scores far above the threshold
    [found] = drift.step(10.0, {"mapping": ["E", "F", "G", "H"]})
    assert (found.category, found.failures) == ("mapping", 4)
    assert found.score > 6
    # a detector told to judge every category sees the redeliveries
    everything = CategoryDrift(min_history=100, ignored=frozenset())
    for _ in range(600):
        everything.learn(10.0, {})
    [redelivered] = everything.step(10.0, {"duplicate": ["A", "B", "C", "D"]})
    assert (redelivered.category, redelivered.failures) == ("duplicate", 4)


def _after_a_burst(forget: bool) -> float:
    """The usual mapping rate the next burst is judged against, an hour after a first one."""
    drift = _drift(600, 10.0, 100)  # 6 mapping failures in 6,000 transactions
    _clean(drift, 15, 10.0)
    drift.step(10.0, {"mapping": ["A", "B"]})
    [opened] = drift.step(10.0, {"mapping": ["C"]})
    assert opened.score > 4  # the alarm opens on these three
    if forget:
        drift.forget("mapping")
    for _ in range(58):  # while the alarm is open nothing of the category is learned
        drift.step(10.0, {}, frozenset({"mapping"}))
    drift.step(10.0, {"mapping": ["D"]})
    [found] = drift.step(10.0, {"mapping": ["E"]})
    return found.baseline_rate


def test_the_failures_an_alarm_opened_on_are_taken_out_of_the_usual_rate():
    # the three failures that opened the alarm were learned before it opened ...
    assert _after_a_burst(forget=False) == 9.5 / 6601.0
    # ... and forgetting them judges the next burst against the usual 6 in 6,600
    assert _after_a_burst(forget=True) == 6.5 / 6601.0


def _batched(minutes: int) -> CategoryDrift:
    """Usage-like: 10 events a minute that are never posted one by one, and once an hour a
    batch of 250 accrual postings over 4 minutes, of which one in 500 is rate limited."""
    drift = CategoryDrift(min_history=100)
    for minute in range(minutes):
        in_batch = minute % 60 < 4
        calls = 62.5 if in_batch else 0.0
        failures = {}
        if in_batch and minute % 120 == 0:  # one 429 every other batch: 1 in 500 calls
            failures = {"rate_limit": [f"ACR-{minute}"]}
        drift.learn(10.0 + calls, failures, calls)
    return drift


def test_a_category_of_posting_calls_is_judged_per_call_in_a_batch():
    drift = _batched(7 * 24 * 60)
    for _ in range(56):
        drift.step(10.0, {})
    # four 429s among a batch's first 188 postings: per transaction (mostly events that are
    # never posted) that would look like a burst; per posting call it is about the usual
    scores = []
    for minute in range(3):
        failures = {"rate_limit": [f"B-{minute}", f"C-{minute}"]} if minute < 2 else {}
        scores += drift.step(72.5, failures, calls=62.5)
    assert max(s.score for s in scores) < 4
    # the same four failures among events alone (no postings in the window) are a burst
    again = _batched(7 * 24 * 60)
    for _ in range(56):
        again.step(10.0, {})
    found = again.step(10.0, {"rate_limit": ["B", "C"]}) + again.step(10.0, {"rate_limit": ["D"]})
    assert max(s.score for s in found) > 4


def _new_category_drift(hours: int, failures_every: int | None = None) -> CategoryDrift:
    """A flow of 5 transactions a minute learned for ``hours`` hours, with one ``mapping``
    failure every ``failures_every`` minutes (none without it)."""
    drift = CategoryDrift(min_history=100, new_category_score=4.2)
    for minute in range(hours * 60):
        due = failures_every is not None and minute % failures_every == failures_every - 1
        drift.learn(5.0, {"mapping": [f"OLD-{minute}"]} if due else {})
    return drift


def test_the_first_reference_data_failure_after_a_day_without_one_scores_at_the_threshold():
    drift = _new_category_drift(25)
    [found] = drift.step(5.0, {"master_data_missing": ["INV-1"]})
    assert found.new_to_flow
    assert (found.failures, found.minutes) == (1, 15)
    assert found.score == 4.2
    # the flow showed none: its alert's "what changed" starts from 0, not from the prior's
    # 0.5 failures in 7,500 transactions it was scored at
    assert found.baseline_rate == 0.0
    # the same failure without the rule is one failure, which never alerts
    plain = _new_category_drift(25)
    plain.new_category_score = None
    assert plain.step(5.0, {"master_data_missing": ["INV-1"]}) == []


def test_a_category_seen_in_the_past_week_or_outside_reference_data_is_not_new():
    seen = _new_category_drift(25, failures_every=600)  # a mapping failure every 10 hours
    assert seen.step(5.0, {"mapping": ["SO-1"]}) == []
    assert _new_category_drift(25).step(5.0, {"timeout": ["SO-1"]}) == []


def test_nothing_is_new_before_the_flow_has_a_day_of_history():
    assert _new_category_drift(23).step(5.0, {"mapping": ["SO-1"]}) == []


def _first_morning(hours: int, failures_every: int | None = None) -> CategoryDrift:
    """A quiet invoice flow's first ``hours`` hours, a transaction every four minutes (under
    ``min_history``), with a ``mapping`` failure every ``failures_every`` minutes."""
    drift = CategoryDrift(min_history=200, new_category_score=4.2)
    for minute in range(hours * 60):
        due = failures_every is not None and minute % failures_every == failures_every - 1
        drift.learn(0.25, {"mapping": [f"OLD-{minute}"]} if due else {})
    return drift


def test_in_a_first_day_two_failures_of_a_reference_category_not_shown_in_hours_are_new():
    # a first-morning mapping burst: two invoices failed a minute apart after seven clean
    # hours; against the first day's default rate they scored 2.7, and the alert came 44
    # minutes later
    drift = _first_morning(7)
    assert drift.step(1.0, {"mapping": ["INV-1"]}) == []  # one alone is not enough
    [found] = drift.step(2.0, {"mapping": ["INV-2"]})
    assert found.new_to_flow
    assert (found.failures, found.score, found.baseline_rate) == (2, 4.2, 0.0)
    # without the rule, the same two failures stay under the threshold
    plain = _first_morning(7)
    plain.new_category_score = None
    plain.step(1.0, {"mapping": ["INV-1"]})
    assert max(s.score for s in plain.step(2.0, {"mapping": ["INV-2"]})) < 4.2


def test_in_a_first_day_two_failures_among_a_busy_flow_s_hundred_transactions_are_not_new():
    # a usage flow of 400 transactions an hour showed its first two mapping failures of the
    # day five minutes apart, among 93 transactions in the quarter hour: not a burst
    drift = CategoryDrift(min_history=200, new_category_score=4.2)
    for _ in range(7 * 60):
        drift.learn(6.5, {})
    found = drift.step(6.0, {"mapping": ["USG-1"]})
    for _ in range(5):
        found += drift.step(6.0, {})
    found += drift.step(6.0, {"mapping": ["USG-2"]})
    assert found and not any(s.new_to_flow for s in found)
    assert max(s.score for s in found) < 4.2


def test_in_a_first_day_a_reference_category_is_not_new_before_hours_of_history_or_once_seen():
    too_soon = _first_morning(2).step(1.0, {"mapping": ["A", "B"]})
    assert too_soon and not any(s.new_to_flow for s in too_soon)
    seen = _first_morning(7, failures_every=300).step(1.0, {"mapping": ["A", "B"]})
    assert seen and not any(s.new_to_flow for s in seen)
    other = _first_morning(7).step(1.0, {"timeout": ["A", "B"]})
    assert other and not any(s.new_to_flow for s in other)


def test_the_failure_an_alarm_on_a_new_category_opened_on_stays_learned():
    drift = _new_category_drift(25)
    [found] = drift.step(5.0, {"mapping": ["SO-1"]})
    assert found.new_to_flow
    drift.forget("mapping")  # the runner forgets the evidence of every alarm it opens
    _clean(drift, 120, 5.0)
    # the category is no longer new: a second lone failure two hours later stays quiet
    assert drift.step(5.0, {"mapping": ["SO-2"]}) == []


def test_a_second_failure_while_the_alarm_is_open_takes_the_first_back_out():
    drift = _new_category_drift(25)
    [found] = drift.step(5.0, {"master_data_missing": ["INV-1"]})
    assert found.new_to_flow
    drift.forget("master_data_missing")
    in_alarm = frozenset({"master_data_missing"})
    drift.step(5.0, {}, in_alarm)
    drift.step(5.0, {"master_data_missing": ["INV-2"]}, in_alarm)  # an incident, not a one-off
    for _ in range(60):
        drift.step(5.0, {}, in_alarm)
    _clean(drift, 6 * 60, 5.0)  # the alarm has closed, and its tail has passed
    # nothing of that incident was learned: the category is still new to the flow
    [again] = drift.step(5.0, {"master_data_missing": ["INV-3"]})
    assert again.new_to_flow


def _alarm_on_new(drift: CategoryDrift, failed: list[str]) -> frozenset[str]:
    [found] = drift.step(5.0, {"mapping": failed})
    assert found.new_to_flow
    drift.forget("mapping")
    return frozenset({"mapping"})


def test_the_same_document_failing_again_on_a_retry_confirms_nothing():
    drift = _new_category_drift(25)
    in_alarm = _alarm_on_new(drift, ["SO-1"])
    drift.step(5.0, {}, in_alarm)
    drift.step(5.0, {"mapping": ["SO-1"]}, in_alarm)  # the middleware retries SO-1
    for _ in range(60):
        drift.step(5.0, {}, in_alarm)
    _clean(drift, 120, 5.0)
    # SO-1 stayed learned: a lone failure of another order is no news
    assert drift.step(5.0, {"mapping": ["SO-9"]}) == []


def test_two_documents_failing_in_the_opening_window_are_the_incident_s_at_once():
    drift = _new_category_drift(25)
    in_alarm = _alarm_on_new(drift, ["SO-1", "SO-2"])
    for _ in range(61):
        drift.step(5.0, {}, in_alarm)
    _clean(drift, 6 * 60, 5.0)  # past the incident's tail
    [again] = drift.step(5.0, {"mapping": ["SO-3"]})
    assert again.new_to_flow


def test_reference_data_is_recognised_however_the_sender_writes_it():
    for written in ("Master-Data-Missing", "MAPPING", " mapping "):
        [found] = _new_category_drift(25).step(5.0, {written: ["INV-1"]})
        assert found.new_to_flow and found.category == written


def _after_an_incident(quiet_minutes: int) -> CategoryDrift:
    """A flow whose mapping incident (two invoices, both taken back) closed ``quiet_minutes``
    ago."""
    drift = _new_category_drift(25)
    in_alarm = _alarm_on_new(drift, ["INV-1", "INV-2"])
    for _ in range(30):
        drift.step(5.0, {}, in_alarm)
    _clean(drift, quiet_minutes, 5.0)
    return drift


def test_a_failure_soon_after_an_alarm_on_the_category_is_its_tail_not_news():
    # a late invoice of the incident, an hour after it closed, once opened a false alert
    assert _after_an_incident(60).step(5.0, {"mapping": ["INV-3"]}) == []
    [found] = _after_an_incident(6 * 60).step(5.0, {"mapping": ["INV-4"]})
    assert found.new_to_flow


def _spread_burst(category: str) -> tuple[CategoryDrift, list[list]]:
    """A quiet flow (5 transactions a minute, one ``category`` failure every 4 hours for a
    day), then an hour in which one transaction in ten minutes fails: 6 in the hour, never
    more than 2 in a quarter."""
    drift = _drift(1440, 5.0, 240, category)
    _clean(drift, 60, 5.0)
    steps = []
    for minute in range(60):
        failed = {category: [f"SO-{minute}"]} if minute % 10 == 9 else {}
        steps.append(drift.step(5.0, failed))
    return drift, steps


def test_reference_failures_spread_over_an_hour_are_judged_over_the_hour():
    # a broken mapping on a quiet order flow was never alerted: 6 failures in 66 minutes
    drift, steps = _spread_burst("mapping")
    best_quarter = max(s.score for step in steps for s in step if s.minutes <= 15)
    [hour] = steps[-1]
    assert (hour.minutes, hour.failures, hour.transactions) == (60, 6, 300)
    assert hour.baseline_rate == 6.5 / 7501.0
    assert math.isclose(hour.score, -math.log10(stats.poisson.sf(5, 300 * hour.baseline_rate)))
    assert hour.score > 4.2 > best_quarter  # the runner's category threshold is 4.2


def test_other_categories_are_not_judged_over_the_hour():
    # timeouts and rate limits come and go in clusters: an hour of them is no finding
    _, steps = _spread_burst("timeout")
    assert all(s.minutes <= 15 for step in steps for s in step)


def test_an_alarm_on_the_hour_takes_back_only_the_quarter_hour():
    # taking the whole hour back made two late orders of the incident, a day later, a new
    # burst against a rate that had never seen it
    rates = []
    for forget in (False, True):
        drift, _ = _spread_burst("mapping")
        if forget:
            drift.forget("mapping")
        for _ in range(59):
            drift.step(5.0, {}, frozenset({"mapping"}))
        drift.step(5.0, {"mapping": ["SO-A"]})
        [quarter] = [s for s in drift.step(5.0, {"mapping": ["SO-B"]}) if s.minutes <= 15]
        rates.append(quarter.baseline_rate)
    # 27 hours hold the day's 6, SO-A and the hour's 6, or 4 of them: the quarter's 2 are out
    assert rates == [13.5 / 8101.0, 11.5 / 8101.0]


def test_a_first_day_with_few_transactions_is_judged_against_a_default_rate():
    # a quiet invoice flow on its first morning: 7 hours held under 200 transactions, so no
    # category was scored, and a mapping incident failing 10 of 60 invoices went unnoticed
    drift = CategoryDrift(min_history=200)
    for _ in range(7 * 60):
        drift.learn(0.25, {})
    found = []
    for minute in range(30):
        failed = {"mapping": [f"INV-{minute}"]} if minute % 4 == 3 else {}
        found.extend(drift.step(2.0, failed))
    last = found[-1]
    assert last.baseline_rate == 0.01  # the default, above the 0.5 / 106 the history gives
    assert (last.failures, last.minutes) == (7, 60)
    expected = -math.log10(stats.poisson.sf(6, 67.5 * 0.01))
    assert math.isclose(last.score, expected)
    assert last.score > 4.2  # the runner's category threshold


def test_after_a_first_day_a_flow_this_quiet_is_not_judged_per_category():
    drift = CategoryDrift(min_history=200)
    for _ in range(24 * 60):
        drift.learn(0.1, {})  # 144 transactions in a day
    assert drift.step(5.0, {"mapping": ["A", "B", "C"]}) == []
