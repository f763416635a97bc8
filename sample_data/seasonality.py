"""Traffic shape of the simulated company: when business happens and how much of it.

The company sells to businesses in North America and Europe and runs on UTC, so human-driven
flows (orders, onboarding, invoices, payments) follow a business-hours curve between roughly
07:00 and 20:00 UTC, fall to a low at night and drop further on weekends. Usage events come
from customers' machines and stay busy around the clock, so their curve is flatter.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class TrafficProfile:
    """Arrivals of one kind of business transaction.

    ``peak_per_hour`` is the rate at the busiest weekday hour; ``night_floor`` the share of it
    left at night; ``weekend_factor`` scales Saturdays and Sundays.
    """

    name: str
    peak_per_hour: float
    night_floor: float
    weekend_factor: float

    def rate_per_minute(self, at: datetime) -> float:
        """Expected arrivals in the minute starting at ``at``."""
        return self.peak_per_hour / 60.0 * load_factor(at, self.night_floor, self.weekend_factor)


# Arrivals that start business transactions; follow-ups (activation after an accepted order,
# invoices after activation, payments after invoices, hourly usage accruals) are scheduled by
# the flows themselves. Peak volumes add up to roughly 1,400 transactions an hour.
PROFILES: dict[str, TrafficProfile] = {
    profile.name: profile
    for profile in (
        TrafficProfile("customer_onboarding", 10, 0.04, 0.15),
        TrafficProfile("order_submit", 70, 0.05, 0.2),
        TrafficProfile("renewal_invoice", 110, 0.1, 0.3),
        TrafficProfile("usage_event", 700, 0.35, 0.6),
        TrafficProfile("payment_settled", 90, 0.08, 0.25),
        TrafficProfile("catalog_change", 3, 0.0, 0.05),
    )
}

_PEAK_START_HOUR = 7.0
_PEAK_END_HOUR = 20.0


def load_factor(at: datetime, night_floor: float, weekend_factor: float) -> float:
    """Share of peak traffic at ``at``: 1.0 on a weekday afternoon, ``night_floor`` at night.

    A sine bump over business hours, flattened on top so the whole working day stays busy, with
    a small lunch dip around 12:30 UTC.
    """
    at = at.astimezone(UTC)
    hour = at.hour + at.minute / 60.0
    if _PEAK_START_HOUR <= hour <= _PEAK_END_HOUR:
        phase = (hour - _PEAK_START_HOUR) / (_PEAK_END_HOUR - _PEAK_START_HOUR)
        bump = min(1.0, 1.4 * math.sin(math.pi * phase))
        bump *= 1.0 - 0.12 * math.exp(-(((hour - 12.5) / 0.6) ** 2))
    else:
        bump = 0.0
    factor = night_floor + (1.0 - night_floor) * bump
    if at.weekday() >= 5:
        factor *= weekend_factor
    return factor


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw; Knuth's method for the small means of one minute, normal above 30."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    count = 0
    product = rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
