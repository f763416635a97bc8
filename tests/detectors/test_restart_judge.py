"""The comparison of a restarted runner's alerts with an uninterrupted one's, in words."""

from __future__ import annotations

from datetime import timedelta

from detectors.restart_judge import RestartComparison


def test_a_restart_comparison_tells_of_an_alert_only_the_restarted_run_raised():
    # "4 of 4 alerts the same" hid a fifth alert that only the restarted run opened
    extra = "payments.payment-apply -> erp [latency] 2025-03-03 07:15 to 2025-03-03 07:47"
    comparison = RestartComparison(timedelta(hours=3), 15, 4, 4, [], [extra])
    assert comparison.lines() == [
        "Restarted every 3 h (15 restarts): 4 of 4 alerts the same as without a restart, "
        "and 1 more only with restarts.",
        f"  only with restarts:    {extra}",
    ]
