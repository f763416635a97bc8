"""What an alert says in words, alike in `seamwatch alerts`, the API and the dashboard.

The stored alert keeps numbers (the signal of its peak, its baseline and observed value) and
one quote (``top_error``); these functions put them into the sentence on-call reads first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seamwatch.money import amount_text, round_amount

# Signals whose alerts quote their findings: the quote says what is wrong, with the keys.
FINDING_SIGNALS = ("duplicate_posting", "dropped")
# The part of an amount whose currency no span said (``business.currency`` missing).
UNKNOWN_CURRENCY = ""
# Less than a cent is a rounding remainder, not money of an unknown currency.
_CENT = 0.005


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


def currency_split(total: float, by_currency: Mapping[str, float]) -> list[tuple[str, float]]:
    """``total`` by currency, each rounded to its currency's minor units (cents for most): the
    known currencies in order, then the rest of the total, whose currency is not known, as
    ``UNKNOWN_CURRENCY`` (when there is any).

    >>> currency_split(150.0, {"USD": 50.0, "EUR": 60.0})
    [('EUR', 60.0), ('USD', 50.0), ('', 40.0)]
    >>> currency_split(12000.4, {"JPY": 12000.4})
    [('JPY', 12000.0)]
    """
    known = {
        code: amount
        for code, amount in by_currency.items()
        if code and round_amount(amount, code) != 0
    }
    split = [(code, round_amount(known[code], code)) for code in sorted(known)]
    # what is left once every named currency is taken out: less than half a yen is still yen
    rest = total - sum(amount for code, amount in by_currency.items() if code)
    if abs(rest) >= _CENT:
        split.append((UNKNOWN_CURRENCY, round_amount(rest, UNKNOWN_CURRENCY)))
    return split


def money_text(total: float, by_currency: Mapping[str, float]) -> str:
    """An amount with its currency, saying so when it mixes currencies or has none: amounts
    of different currencies are listed side by side, never added up, each with its
    currency's decimals.

    >>> money_text(4321.0, {"EUR": 4321.0})
    '4,321.00 EUR'
    >>> money_text(4321.0, {})
    '4,321.00 (currency unknown)'
    >>> money_text(4321.0, {"EUR": 3000.0, "USD": 1321.0})
    '3,000.00 EUR + 1,321.00 USD (mixed currencies)'
    >>> money_text(120000.0, {"JPY": 120000.0})
    '120,000 JPY'
    """
    split = currency_split(total, by_currency)
    if not split:
        return amount_text(total)
    if len(split) == 1:
        code, amount = split[0]
        return amount_text(amount, code) if code else f"{amount_text(amount)} (currency unknown)"
    parts = [
        amount_text(amount, code) if code else f"{amount_text(amount)} in an unknown currency"
        for code, amount in split
    ]
    return " + ".join(parts) + " (mixed currencies)"


def currency_list(total: float, by_currency: Mapping[str, float]) -> list[dict[str, Any]]:
    """:func:`currency_split` as JSON gives it: ``[{"currency": "EUR", "amount": 3000.0}]``,
    with ``"currency": None`` for the part whose currency is not known."""
    return [
        {"currency": code or None, "amount": amount}
        for code, amount in currency_split(total, by_currency)
    ]


def single_currency(total: float, by_currency: Mapping[str, float]) -> str | None:
    """The one currency all of ``total`` is in, or None when it mixes them or has none."""
    split = currency_split(total, by_currency)
    return (split[0][0] or None) if len(split) == 1 else None
