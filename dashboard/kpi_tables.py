"""The executive page's tables, made from the KPI rows of :func:`lineage.kpis.kpis`.

A money KPI holds one amount per currency, so its rows here are per currency too: a chart
draws one currency at a time and a table names the currency of every amount. Amounts of
different currencies are never added up.
"""

from __future__ import annotations

import pandas as pd

from lineage.kpis import KPI_NAMES, MONEY_KPIS

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
# The currency shown for amounts whose spans named no ``business.currency``.
UNKNOWN_CURRENCY_LABEL = "unknown"
MONEY_COLUMNS = ["period", "flow", "currency", "amount"]
WEEK_COLUMNS = ["flow", "kpi", "currency", "this week", "last week"]
_WEEK = pd.Timedelta(days=7)


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


def week_over_week(frame: pd.DataFrame) -> pd.DataFrame:
    """Per flow: the mean of each KPI over the last 7 days and the 7 days before; a money KPI
    once per currency, with its currency named."""
    cutoff = pd.to_datetime(frame["period"]).max() - _WEEK
    measures = [name for name in KPI_NAMES if name != "transactions"]
    rows = []
    for flow, group in frame.groupby("flow"):
        this_week = pd.to_datetime(group["period"]) > cutoff
        for name in measures:
            if name in MONEY_KPIS:
                rows += _money_weeks(flow, name, money_rows(group, name), cutoff)
                continue
            now, before = group.loc[this_week, name].mean(), group.loc[~this_week, name].mean()
            if pd.isna(now) and pd.isna(before):
                continue
            rows.append(_week_row(flow, name, "", now, before))
    return pd.DataFrame(rows, columns=WEEK_COLUMNS)


def _money_weeks(
    flow: str, name: str, money: pd.DataFrame, cutoff: pd.Timestamp
) -> list[dict[str, object]]:
    rows = []
    for currency in currencies(money):
        part = money[money["currency"] == currency]
        this_week = pd.to_datetime(part["period"]) > cutoff
        now, before = part.loc[this_week, "amount"].mean(), part.loc[~this_week, "amount"].mean()
        rows.append(_week_row(flow, name, currency, now, before))
    return rows


def _week_row(flow: str, name: str, currency: str, now: float, before: float) -> dict[str, object]:
    return {
        "flow": flow,
        "kpi": KPI_LABELS[name],
        "currency": currency,
        "this week": now,
        "last week": before,
    }
