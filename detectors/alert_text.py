"""What an alert says in words, alike in `seamwatch alerts`, the API and the dashboard.

The stored alert keeps numbers (the signal of its peak, its baseline and observed value) and
one quote (``top_error``); these functions put them into the sentence on-call reads first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from seamwatch.money import (
    Converted,
    amount_text,
    amounts_text,
    converted_text,
    currency_records,
    currency_split,
)

if TYPE_CHECKING:
    from detectors.category_drift import CategoryScore

# Signals whose alerts quote their findings: the quote says what is wrong, with the keys.
FINDING_SIGNALS = ("duplicate_posting", "dropped")
# The kind of a failure-category alert, and the prefix of its signals: ``category:mapping``.
EXCEPTION_CATEGORY = "exception_category"
CATEGORY_PREFIX = "category:"
# What the share judged against a tier's error budget is a share of, by signal.
BUDGET_NAMES = {
    "error_budget": "failed transactions",
    "latency_objective": "posting calls slower than the tier's latency objective",
}
# Signals named otherwise than the kind of alert they raise.
_SIGNAL_KINDS = {"latency_shift": "latency"}
# Said in place of a baseline that is not known: a flow without transactions in the hour the
# runner's baseline looks back over has no earlier error rate, and ``nan%`` tells on-call nothing.
NO_BASELINE = "no earlier value to compare with"


def known_number(value: Any) -> float | None:
    """``value`` as a number a reader can be shown; None when it is missing, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def compared(
    name: str,
    baseline: Any,
    observed: Any,
    shown: Callable[[float], str],
    template: str = "{name} from {baseline} to {observed}",
) -> str:
    """``name``'s change from ``baseline`` to ``observed`` in ``template``, each value as
    ``shown`` writes it; only the observed value when the baseline is not known, and only
    the name when neither is, so no ``nan`` reaches a reader.

    >>> compared("error_rate", 0.001, 0.2, "{:.2%}".format)
    'error_rate from 0.10% to 20.00%'
    >>> compared("error_rate", float("nan"), 1.0, "{:.2%}".format)
    'error_rate 100.00% (no earlier value to compare with)'
    """
    before, after = known_number(baseline), known_number(observed)
    if after is None:
        return name
    if before is None:
        return f"{name} {shown(after)} ({NO_BASELINE})"
    return template.format(name=name, baseline=shown(before), observed=shown(after))


def what_changed(alert: Mapping[str, Any]) -> str:
    """The peak signal's change from its baseline, e.g. ``error rate 1.00% → 40.00%``."""
    signal = str(alert.get("signal") or alert.get("kind") or "")
    baseline, observed = alert.get("baseline"), alert.get("observed")
    if signal in FINDING_SIGNALS:
        count = known_number(observed)
        if count is None:
            return signal
        # the peak minute's count: the quote beside it counts the alert's whole life, and
        # "1 transaction(s)" beside "2 ... since the alert opened" read as a contradiction
        return f"{signal.replace('_', ' ')}: {count:,.0f} transaction(s) in its worst minute"
    arrow = "{name} {baseline} → {observed}"
    if signal == "error_rate":
        return compared("error rate", baseline, observed, "{:.2%}".format, arrow)
    if signal in BUDGET_NAMES:
        # the baseline is the tier's budget, the observed value the share of failed
        # transactions (or slow calls) in the minutes the burn was judged on, an hour at most
        budget = "{name} {observed} against the tier's error budget of {baseline}"
        return compared(BUDGET_NAMES[signal], baseline, observed, "{:.2%}".format, budget)
    if signal.startswith(CATEGORY_PREFIX):
        # a category's usual share of transactions against its share in the window
        name = f"{signal.split(':', 1)[1]} failures"
        return compared(name, baseline, observed, "{:.2%}".format, arrow + " of transactions")
    unit = " ms" if signal.startswith("latency") else " tx/min"
    return compared(signal, baseline, observed, lambda value: f"{value:,.0f}{unit}", arrow)


def kind_names(alert: Mapping[str, Any]) -> list[str]:
    """The kinds an alert has shown, as the alerts table names them: the one it opened with
    first, and a failure category as ``category:NAME`` (each category it has shown, in the
    order they first fired), e.g. ``["latency", "category:mapping", "error_rate"]``."""
    kinds = _listed(alert.get("kinds")) or [str(alert.get("kind") or "")]
    categories = [CATEGORY_PREFIX + name for name in _listed(alert.get("categories"))]
    names: list[str] = []
    for kind in kinds:
        names += categories if kind == EXCEPTION_CATEGORY and categories else [kind]
    return names


def _listed(values: Any) -> list[str]:
    """A list column as a list, whether read as a list or an array; empty when missing."""
    return [] if values is None else [str(value) for value in values]


def strongest_kind(alert: Mapping[str, Any]) -> str:
    """The name, as :func:`kind_names` writes it, of the signal at the alert's peak: the one
    its summary describes."""
    signal = str(alert.get("signal") or alert.get("kind") or "")
    return _SIGNAL_KINDS.get(signal, signal)


def strongest_change(alert: Mapping[str, Any]) -> str:
    """:func:`what_changed`, begun with the kind it describes when the alert has shown
    several, so that a reader knows which of the kinds listed it is about:
    ``error_rate (strongest): error rate 1.00% → 40.00%`` under ``latency +error_rate``."""
    return _naming_strongest(alert, what_changed(alert))


def alert_summary(alert: Mapping[str, Any]) -> str:
    """What is wrong, in one sentence: the findings of a duplicate or dropped alert, which
    name their transactions; otherwise what changed at the peak and the error quoted. An
    alert that has shown several kinds says first which one the sentence is about."""
    top_error = str(alert.get("top_error") or "")
    if alert.get("signal") in FINDING_SIGNALS and top_error:
        return _naming_strongest(alert, top_error)
    change = what_changed(alert)
    return _naming_strongest(alert, f"{change}; top error: {top_error}" if top_error else change)


def _naming_strongest(alert: Mapping[str, Any], text: str) -> str:
    """``text`` about the alert's peak, begun with the name of its kind when the alert has
    shown several kinds (the alerts table lists them all)."""
    if len(kind_names(alert)) < 2:
        return text
    return f"{strongest_kind(alert)} (strongest): {text}"


def money_text(
    total: float, by_currency: Mapping[str, float], converted: Converted | None = None
) -> str:
    """An amount with its currency, saying so when it mixes currencies or has none: amounts
    of different currencies are listed side by side, never added up, each with its
    currency's decimals; then, when ``converted`` is given, what the priority weighed of them
    in the reporting currency (:func:`seamwatch.money.converted_text`).

    >>> money_text(4321.0, {"EUR": 4321.0})
    '4,321.00 EUR'
    >>> money_text(4321.0, {})
    '4,321.00 (currency unknown)'
    >>> money_text(0.0, {})
    'none'
    >>> money_text(4321.0, {"EUR": 3000.0, "USD": 1321.0})
    '3,000.00 EUR + 1,321.00 USD (mixed currencies)'
    >>> money_text(120000.0, {"JPY": 120000.0})
    '120,000 JPY'
    >>> money_text(123000.0, {"EUR": 3000.0, "JPY": 120000.0}, Converted("EUR", 3744.0))
    '3,000.00 EUR + 120,000 JPY (mixed currencies) ≈ 3,744.00 EUR'
    """
    split = currency_split(total, by_currency)
    if not split and not total:
        return "none"  # a bare "0.00" read as money whose figure was missing
    text = amounts_text(split) if split else amount_text(total)
    after = converted_text(split, converted) if converted else ""
    return f"{text} {after}" if after else text


def currency_list(total: float, by_currency: Mapping[str, float]) -> list[dict[str, Any]]:
    """:func:`currency_split` as JSON gives it: ``[{"currency": "EUR", "amount": 3000.0}]``,
    with ``"currency": None`` for the part whose currency is not known."""
    return currency_records(currency_split(total, by_currency))


def single_currency(total: float, by_currency: Mapping[str, float]) -> str | None:
    """The one currency all of ``total`` is in, or None when it mixes them or has none."""
    split = currency_split(total, by_currency)
    return (split[0][0] or None) if len(split) == 1 else None


def converted_fields(converted: Converted) -> dict[str, Any]:
    """The money the priority weighed, as JSON gives it: ``money_at_risk_reporting`` in
    ``reporting_currency`` (both None when the severity file names no reporting currency)
    and ``money_not_converted``, the currencies left out (None for money of no known one)."""
    return {
        "money_at_risk_reporting": converted.amount if converted.currency else None,
        "reporting_currency": converted.currency,
        "money_not_converted": [code or None for code in converted.not_converted],
    }


def category_text(found: CategoryScore) -> str:
    """What a failure category's evidence says, as an alert's event records it."""
    counts = f"{found.failures} of {found.transactions} transactions in {found.minutes} min"
    if found.new_to_flow:
        return (
            f"{found.category} is new to this flow (no such failure outside alerts in the "
            f"previous {_hours_text(found.history_hours)}): {counts}"
        )
    if found.history_transactions < 1:
        # the rate it was scored at is the prior alone, not anything the flow showed
        return f"{found.category} failures: {counts} (the flow has no history to compare with)"
    return f"{found.category} failures: {counts} (usual rate {found.baseline_rate:.3%})"


def names_category(detail: str, category: str) -> bool:
    """Whether an event's ``detail`` (what changed, ``; ``-separated) tells of ``category``'s
    evidence, as :func:`category_text` wrote it."""
    return any(
        part.startswith((f"{category} failures: ", f"{category} is new to this flow "))
        for part in detail.split("; ")
    )


def settled_text(signal: str) -> str:
    """What an ``eased`` event says of ``signal``, whose alarm settled while its alert stayed
    open: a category as its failures, another signal as the kind :func:`kind_names` lists.

    >>> settled_text("category:mapping"), settled_text("latency_shift")
    ('mapping failures settled', 'latency settled')
    """
    if signal.startswith(CATEGORY_PREFIX):
        return f"{signal.removeprefix(CATEGORY_PREFIX)} failures settled"
    return f"{_SIGNAL_KINDS.get(signal, signal)} settled"


def settled_signals(detail: str) -> list[str]:
    """The signals an ``eased`` event's ``detail`` (``; ``-separated, as :func:`settled_text`
    wrote each) tells of, by signal name.

    >>> settled_signals("mapping failures settled; error_rate settled; latency settled")
    ['category:mapping', 'error_rate', 'latency_shift']
    """
    signals = {kind: signal for signal, kind in _SIGNAL_KINDS.items()}
    named = []
    for part in detail.split("; "):
        name = part.removesuffix(" settled")
        if name == part:
            continue
        category = name.removesuffix(" failures")
        named.append(CATEGORY_PREFIX + category if category != name else signals.get(name, name))
    return named


def _hours_text(hours: int) -> str:
    """``hours`` in words: hours up to two days, whole days beyond."""
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"
