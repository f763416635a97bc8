"""An alert's priority: how anomalous, how important, how much traffic, how much money.

Each factor is brought to ``[0, 1]`` and the blend is scaled by the tier's weight::

    anomaly  = min(score / 20, 1)
    traffic  = min(log10(1 + affected transactions) / 4, 1)   # 10,000 saturate
    money    = min(log10(1 + money at risk * 10**6 / full weight) / 6, 1)  # 1,000,000 by default
    priority = round(100 * weight * (0.4 anomaly + 0.3 traffic + 0.3 money), 1)

So a priority lies between 0 and 100, and only a critical flow (weight 1) can reach 100. The
logarithms let a hundred failed invoices count for more than ten without letting one huge batch
drown every other signal. ``docs/alerts.md`` explains the choice of weights and caps.

Money at risk is in the reporting currency of the severity file's ``money`` section, converted
with its rates (:meth:`detectors.severity.Severity.convert`); money it cannot convert (no rate,
no known currency, or no reporting currency at all) counts for nothing here, so amounts of
different currencies are never added up as they are. The full weight is in that currency too
(``money.full_weight_at``, 1,000,000 unless set): money is counted in millionths of it, so
the same sums weigh alike whichever currency reports them once the full weights match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCORE_SATURATION = 20.0
TRAFFIC_SATURATION_DECADES = 4.0
DEFAULT_MONEY_FULL_WEIGHT = 1_000_000.0
# money is counted in millionths of its full weight: six decades between a unit and the cap
MONEY_UNITS = 1_000_000.0
ANOMALY_SHARE = 0.4
TRAFFIC_SHARE = 0.3
MONEY_SHARE = 0.3

# Lower bounds of the on-call labels, highest first.
PRIORITY_LABELS: tuple[tuple[float, str], ...] = ((60.0, "P1"), (35.0, "P2"), (15.0, "P3"))
LOWEST_LABEL = "P4"


@dataclass(frozen=True)
class PriorityFactors:
    """The three normalised factors of one alert, each in ``[0, 1]``."""

    anomaly: float
    traffic: float
    money: float


def priority_factors(
    score: float,
    affected: float,
    money_at_risk: float,
    money_full_weight: float = DEFAULT_MONEY_FULL_WEIGHT,
) -> PriorityFactors:
    """Normalise the detector score, affected transactions and money at risk (in the
    reporting currency, weighing fully from ``money_full_weight``)."""
    anomaly = min(max(score, 0.0) / SCORE_SATURATION, 1.0)
    traffic = min(math.log10(1.0 + max(affected, 0.0)) / TRAFFIC_SATURATION_DECADES, 1.0)
    units = max(money_at_risk, 0.0) * MONEY_UNITS / money_full_weight
    money = min(math.log10(1.0 + units) / math.log10(MONEY_UNITS), 1.0)
    return PriorityFactors(anomaly, traffic, money)


def priority(
    score: float,
    weight: float,
    affected: float,
    money_at_risk: float,
    money_full_weight: float = DEFAULT_MONEY_FULL_WEIGHT,
) -> float:
    """The alert's priority, 0 to 100, rounded to one decimal."""
    factors = priority_factors(score, affected, money_at_risk, money_full_weight)
    blend = (
        ANOMALY_SHARE * factors.anomaly
        + TRAFFIC_SHARE * factors.traffic
        + MONEY_SHARE * factors.money
    )
    return round(100.0 * weight * blend, 1)


def priority_label(value: float) -> str:
    """``P1`` (act now) to ``P4`` (look when convenient) for a priority value."""
    for bound, label in PRIORITY_LABELS:
        if value >= bound:
            return label
    return LOWEST_LABEL
