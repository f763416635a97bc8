"""The business KPIs of docs/kpis.md, per flow and day, from the reconciled transactions.

Each KPI is computed over the transactions that *started* in a day (UTC) and is ``None`` where
it does not apply to the flow (order acceptance only for sales orders, and so on) or where no
transaction qualifies. Revenue at risk is kept by currency, never added across currencies.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from lineage.reconcile import DEFAULT_TARGET, Window, findings, transactions
from seamwatch.money import currency_records, round_amount
from seamwatch.times import utc_text

KPI_NAMES = (
    "transactions",
    "sync_latency_p50_ms",
    "sync_latency_p95_ms",
    "exception_rate",
    "replay_recovery_p50_minutes",
    "order_acceptance_accuracy",
    "invoice_reconciliation_accuracy",
    "onboarding_cycle_time_p50_minutes",
    "revenue_at_risk_by_currency",
)
# KPIs of money: a list of {"currency", "amount"} rather than one number.
MONEY_KPIS = ("revenue_at_risk_by_currency",)
ORDER_OBJECTS = ("SalesOrder",)
INVOICE_OBJECTS = ("Invoice",)
ONBOARDING_OBJECTS = ("CustomerAccount",)
_MILLIS_PER_MINUTE = 60_000
# The executive page's comparison: the 7 days before the end of its window, and the 7 before.
WEEK = timedelta(days=7)
THIS_WEEK, LAST_WEEK = "this week", "last week"
# What identifies a transaction: the same business key may travel several flows.
_TRANSACTION = ["flow", "business_key", "correlation_id"]


def kpis(
    store: Any,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str = DEFAULT_TARGET,
) -> dict[str, Any]:
    """KPIs per flow and day over the window (default: the last day); JSON-ready."""
    window = Window.ending(since, until)
    frame = transactions(store, window, target)
    rows = kpi_rows(frame)
    return {
        "since": utc_text(window.since),
        "until": utc_text(window.until),
        "target": target,
        "kpis": rows,
    }


def weekly_kpis(
    store: Any, until: datetime | None = None, target: str = DEFAULT_TARGET
) -> dict[str, Any]:
    """KPIs over the two weeks before ``until`` (default now), per flow and day (``days``) and
    per flow over each week (``weeks``: period ``this week``, the last 7 days, or ``last
    week``, the 7 before), from one reading of the transactions.

    A week's KPIs are computed over the week's transactions as a day's are over the day's:
    counts and money (per currency) are sums, rates and accuracies shares of the week's
    transactions, and percentiles are taken over the week's latencies, not over daily values.
    """
    end = until or pd.Timestamp.now(tz="UTC").to_pydatetime()
    window = Window.ending(end - 2 * WEEK, end)
    frame = transactions(store, window, target)
    this_week = frame["first_seen"] >= pd.Timestamp(window.until - WEEK)
    return {
        "since": utc_text(window.since),
        "until": utc_text(window.until),
        "target": target,
        "days": kpi_rows(frame),
        "weeks": kpi_rows(frame, np.where(this_week, THIS_WEEK, LAST_WEEK)),
    }


def kpi_rows(frame: pd.DataFrame, periods: Any = None) -> list[dict[str, Any]]:
    """One record per (period, flow) with every KPI of ``KPI_NAMES``; the period of each
    transaction is its UTC day (``YYYY-MM-DD``) unless ``periods`` names one per row."""
    if frame.empty:
        return []
    as_of = frame.attrs.get("as_of") or pd.Timestamp.now(tz="UTC")
    frame = frame.assign(
        day=frame["first_seen"].dt.strftime("%Y-%m-%d") if periods is None else periods,
        at_risk=_amount_at_risk(frame),
    )
    money = _risk_by_currency(frame)
    rows = []
    for (day, flow), group in frame.groupby(["day", "flow"], sort=True):
        values = _flow_kpis(group, as_of)
        values["revenue_at_risk_by_currency"] = money.get((day, flow), [])
        rows.append({"period": day, "flow": flow, **values})
    return rows


def _flow_kpis(group: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, Any]:
    posted = group[group["postings"] > 0]
    latency_ms = (posted["first_posted"] - posted["first_seen"]).dt.total_seconds() * 1000
    # failures exclude redeliveries the target rejected as duplicates after the posting
    # (lineage.reconcile.transactions): the transaction posted once, the check worked
    failed = group[(group["failed_postings"] > 0) | group["categories"].map(bool)]
    # recovered: failed first, posted later; a failure after the posting was not recovered
    recovered = failed[
        (failed["postings"] > 0) & (failed["first_failure"] <= failed["first_posted"])
    ]
    recovery_s = (recovered["first_posted"] - recovered["first_failure"]).dt.total_seconds()
    objects = set(group["business_object"])
    return {
        "transactions": len(group),
        "sync_latency_p50_ms": _quantile(latency_ms, 0.5),
        "sync_latency_p95_ms": _quantile(latency_ms, 0.95),
        "exception_rate": len(failed) / len(group),
        "replay_recovery_p50_minutes": _quantile(recovery_s / 60, 0.5),
        "order_acceptance_accuracy": _first_time_right(group)
        if objects & set(ORDER_OBJECTS)
        else None,
        "invoice_reconciliation_accuracy": _posted_exactly_once(group, as_of)
        if objects & set(INVOICE_OBJECTS)
        else None,
        "onboarding_cycle_time_p50_minutes": _quantile(latency_ms / _MILLIS_PER_MINUTE, 0.5)
        if objects & set(ONBOARDING_OBJECTS)
        else None,
    }


def _first_time_right(group: pd.DataFrame) -> float:
    """Share posted on the first attempt: accepted, with no failure before the posting."""
    clean = (
        (group["postings"] > 0) & (group["failed_postings"] == 0) & ~group["categories"].map(bool)
    )
    return float(clean.mean())


def _posted_exactly_once(group: pd.DataFrame, as_of: pd.Timestamp) -> float | None:
    """Share of transactions old enough to judge that posted exactly once."""
    due = group["first_seen"] + group["objective"] < as_of
    judged = group[(group["postings"] > 0) | due]
    if judged.empty:
        return None
    return float((judged["postings"] == 1).mean())


def _amount_at_risk(frame: pd.DataFrame) -> np.ndarray:
    """Per transaction of ``frame``: the money not (yet) where it belongs, from the open
    findings, in the transaction's own currency (0 where nothing is at risk).

    An unposted transaction risks its whole amount; a duplicate risks each extra posting.
    """
    found = findings(frame)
    amount = found["amount"].astype(float)
    risk = amount.where(~found["recovered"].astype(bool) & (found["postings"] == 0), 0.0)
    risk = risk.mask(found["kind"] == "duplicate", amount * (found["postings"] - 1))
    at_risk = found.assign(risk=risk.fillna(0.0)).groupby(_TRANSACTION)["risk"].sum()
    keys = pd.MultiIndex.from_frame(frame[_TRANSACTION])
    return at_risk.reindex(keys, fill_value=0.0).to_numpy()


def _risk_by_currency(frame: pd.DataFrame) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (day, flow): the revenue at risk in each currency of its transactions that carry
    an amount, 0 where none of them is at risk; amounts of no named currency come last."""
    priced = frame[frame["amount"].notna()]
    sums = priced.groupby(["day", "flow", "currency"], sort=True)["at_risk"].sum()
    split: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for (day, flow, currency), amount in sums.items():
        split.setdefault((day, flow), []).append((currency, round_amount(amount, currency)))
    # '' sorts first; the amounts whose currency is not known go after the named ones
    return {
        place: currency_records(sorted(parts, key=lambda part: (not part[0], part[0])))
        for place, parts in split.items()
    }


def _quantile(values: pd.Series, level: float) -> float | None:
    values = values.dropna()
    if values.empty:
        return None
    return round(float(values.quantile(level)), 3)
