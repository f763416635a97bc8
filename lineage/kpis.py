"""The business KPIs of docs/kpis.md, per flow and day, from the reconciled transactions.

Each KPI is computed over the transactions that *started* in a day (UTC) and is ``None`` where
it does not apply to the flow (order acceptance only for sales orders, and so on) or where no
transaction qualifies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from lineage.reconcile import DEFAULT_TARGET, Window, findings, transactions
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
    "revenue_at_risk",
)
ORDER_OBJECTS = ("SalesOrder",)
INVOICE_OBJECTS = ("Invoice",)
ONBOARDING_OBJECTS = ("CustomerAccount",)
_MILLIS_PER_MINUTE = 60_000


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


def kpi_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One record per (day, flow) with every KPI of ``KPI_NAMES``."""
    if frame.empty:
        return []
    at_risk = _amount_at_risk(frame)
    as_of = frame.attrs.get("as_of") or pd.Timestamp.now(tz="UTC")
    frame = frame.assign(
        day=frame["first_seen"].dt.strftime("%Y-%m-%d"),
        at_risk=frame["business_key"].map(at_risk).fillna(0.0),
    )
    rows = []
    for (day, flow), group in frame.groupby(["day", "flow"], sort=True):
        rows.append({"period": day, "flow": flow, **_flow_kpis(group, as_of)})
    return rows


def _flow_kpis(group: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, Any]:
    posted = group[group["postings"] > 0]
    latency_ms = (posted["first_posted"] - posted["first_seen"]).dt.total_seconds() * 1000
    failed = group[(group["failed_postings"] > 0) | group["categories"].map(bool)]
    recovered = failed[failed["postings"] > 0]
    recovery_ms = (recovered["first_posted"] - recovered["first_failure"]).dt.total_seconds()
    objects = set(group["business_object"])
    return {
        "transactions": len(group),
        "sync_latency_p50_ms": _quantile(latency_ms, 0.5),
        "sync_latency_p95_ms": _quantile(latency_ms, 0.95),
        "exception_rate": len(failed) / len(group),
        "replay_recovery_p50_minutes": _quantile(recovery_ms / 60, 0.5),
        "order_acceptance_accuracy": _first_time_right(group)
        if objects & set(ORDER_OBJECTS)
        else None,
        "invoice_reconciliation_accuracy": _posted_exactly_once(group, as_of)
        if objects & set(INVOICE_OBJECTS)
        else None,
        "onboarding_cycle_time_p50_minutes": _quantile(latency_ms / _MILLIS_PER_MINUTE, 0.5)
        if objects & set(ONBOARDING_OBJECTS)
        else None,
        "revenue_at_risk": round(float(group["at_risk"].sum()), 2),
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


def _amount_at_risk(frame: pd.DataFrame) -> dict[str, float]:
    """Per business key: the money not (yet) where it belongs, from the open findings.

    An unposted transaction risks its whole amount; a duplicate risks each extra posting.
    """
    found = findings(frame)
    risk: dict[str, float] = {}
    for row in found.itertuples(index=False):
        if row.amount is None or pd.isna(row.amount):
            continue
        if row.kind == "duplicate":
            amount = row.amount * (row.postings - 1)
        elif not row.recovered and row.postings == 0:
            amount = row.amount
        else:
            continue
        risk[row.business_key] = risk.get(row.business_key, 0.0) + amount
    return risk


def _quantile(values: pd.Series, level: float) -> float | None:
    values = values.dropna()
    if values.empty:
        return None
    return round(float(values.quantile(level)), 3)
