"""What an alert says in words, alike in `seamwatch alerts`, the API and the dashboard.

The stored alert keeps numbers (the signal of its peak, its baseline and observed value) and
one quote (``top_error``); these functions put them into the sentence on-call reads first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Signals whose alerts quote their findings: the quote says what is wrong, with the keys.
FINDING_SIGNALS = ("duplicate_posting", "dropped")


def what_changed(alert: Mapping[str, Any]) -> str:
    """The peak signal's change from its baseline, e.g. ``error rate 1.00% → 40.00%``."""
    signal = str(alert.get("signal") or alert.get("kind") or "")
    baseline, observed = alert.get("baseline"), alert.get("observed")
    if baseline is None or observed is None:
        return signal
    if signal == "error_rate":
        return f"error rate {baseline:.2%} → {observed:.2%}"
    if signal.startswith("category:"):
        # a category's usual share of transactions against its share in the window
        return f"{signal.split(':', 1)[1]} failures {baseline:.2%} → {observed:.2%} of transactions"
    if signal in FINDING_SIGNALS:
        return f"{signal.replace('_', ' ')}: {observed:,.0f} transaction(s)"
    unit = " ms" if signal.startswith("latency") else " tx/min"
    return f"{signal} {baseline:,.0f}{unit} → {observed:,.0f}{unit}"


def alert_summary(alert: Mapping[str, Any]) -> str:
    """What is wrong, in one sentence: the findings of a duplicate or dropped alert, which
    name their transactions; otherwise what changed at the peak and the error quoted."""
    top_error = str(alert.get("top_error") or "")
    if alert.get("signal") in FINDING_SIGNALS and top_error:
        return top_error
    change = what_changed(alert)
    return f"{change}; top error: {top_error}" if top_error else change
