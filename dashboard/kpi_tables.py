"""The executive page's tables, made from the KPI rows of :func:`lineage.kpis.kpis`.

A money KPI holds one amount per currency, so its rows here are per currency too: a chart
draws one currency at a time and a table names the currency of every amount. Amounts of
different currencies are never added up.
"""

from __future__ import annotations

import pandas as pd

from dashboard.formats import NO_DATA, count_text, duration_text, missing, percent_text
from lineage.kpis import KPI_NAMES, LAST_WEEK, MONEY_KPIS, THIS_WEEK
from seamwatch.money import amount_text

KPI_LABELS = {
    "sync_latency_p95_ms": "Sync latency p95 (ms)",
    "sync_latency_p50_ms": "Sync latency p50 (ms)",
    "exception_rate": "Exception rate",
    "replay_recovery_p50_minutes": "Replay recovery p50 (min)",
    "order_acceptance_accuracy": "Order acceptance accuracy",
    "invoice_reconciliation_accuracy": "Invoice reconciliation accuracy",
    "onboarding_cycle_time_p50_minutes": "Customer onboarding cycle time p50 (min)",
    "revenue_at_risk_by_currency": "Revenue at risk",
    "transactions": "Transactions",
}
# The week-over-week table writes each value with its unit, so its labels name none.
WEEK_LABELS = {
    name: label.removesuffix(" (ms)").removesuffix(" (min)") for name, label in KPI_LABELS.items()
}
_COUNTS = ("transactions",)
_SHARES = ("exception_rate", "order_acceptance_accuracy", "invoice_reconciliation_accuracy")
_MINUTES = ("replay_recovery_p50_minutes", "onboarding_cycle_time_p50_minutes")
_MILLIS_PER_MINUTE = 60_000
# The currency shown for amounts whose spans named no ``business.currency``.
UNKNOWN_CURRENCY_LABEL = "unknown"
MONEY_COLUMNS = ["period", "flow", "currency", "amount"]
WEEK_COLUMNS = ["flow", "kpi", "currency", "this week", "last week"]


def money_rows(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """One row per day, flow and currency of the money KPI ``name``.

    ``currency`` is the ISO code, or ``UNKNOWN_CURRENCY_LABEL`` where the spans named none.
    """
    records = [
        {
            "period": period,
            "flow": flow,
            "currency": part["currency"] or UNKNOWN_CURRENCY_LABEL,
            "amount": part["amount"],
        }
        for period, flow, parts in zip(frame["period"], frame["flow"], frame[name], strict=True)
        for part in parts
    ]
    return pd.DataFrame(records, columns=MONEY_COLUMNS)


def currencies(money: pd.DataFrame) -> list[str]:
    """The currencies of :func:`money_rows` in order: the codes, then the unknown one."""
    codes = set(money["currency"])
    return sorted(codes - {UNKNOWN_CURRENCY_LABEL}) + sorted(codes & {UNKNOWN_CURRENCY_LABEL})


def week_over_week(weeks: pd.DataFrame) -> pd.DataFrame:
    """Per flow: each KPI over this week and last week, as text with its unit.

    ``weeks`` holds the rows of :func:`lineage.kpis.weekly_kpis` (period ``this week`` or
    ``last week``): each is computed over the week's transactions, so counts and money are
    sums, rates shares of the week's counts and percentiles taken over the week's data. A money
    KPI comes once per currency, with its currency named. A week without data reads ``—``.
    """
    rows = []
    for flow, group in weeks.groupby("flow"):
        by_week = {
            period: row
            for period, row in zip(group["period"], group.to_dict("records"), strict=True)
        }
        for name in KPI_NAMES:
            if name in MONEY_KPIS:
                rows += _money_weeks(flow, name, money_rows(group, name))
                continue
            now, before = (by_week.get(week, {}).get(name) for week in (THIS_WEEK, LAST_WEEK))
            if missing(now) and missing(before):
                continue
            rows.append(
                _week_row(flow, name, "", _value_text(name, now), _value_text(name, before))
            )
    return pd.DataFrame(rows, columns=WEEK_COLUMNS)


def _money_weeks(flow: str, name: str, money: pd.DataFrame) -> list[dict[str, object]]:
    rows = []
    for currency in currencies(money):
        code = "" if currency == UNKNOWN_CURRENCY_LABEL else currency
        amounts = money[money["currency"] == currency].set_index("period")["amount"]
        now, before = (
            amount_text(amounts[week], code) if week in amounts else NO_DATA
            for week in (THIS_WEEK, LAST_WEEK)
        )
        rows.append(_week_row(flow, name, currency, now, before))
    return rows


def _value_text(name: str, value: float | None) -> str:
    """One KPI's value with its unit: a count, a percentage or a duration."""
    if name in _COUNTS:
        return count_text(value)
    if name in _SHARES:
        return percent_text(value)
    if name in _MINUTES:
        return duration_text(None if missing(value) else value * _MILLIS_PER_MINUTE)
    return duration_text(value)


def _week_row(flow: str, name: str, currency: str, now: str, before: str) -> dict[str, object]:
    return {
        "flow": flow,
        "kpi": WEEK_LABELS[name],
        "currency": currency,
        "this week": now,
        "last week": before,
    }
