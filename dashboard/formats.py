"""Numbers as the pages write them: durations with their unit, rates as percentages.

Money is written by :func:`seamwatch.money.amount_text` (thousands separators and the decimals
of its currency); a value that is missing reads ``NO_DATA`` rather than ``None`` or ``nan``.
"""

from __future__ import annotations

import math

NO_DATA = "—"
_SECOND_MS = 1000.0
_MINUTE_MS = 60 * _SECOND_MS
_HOUR_MS = 60 * _MINUTE_MS
_DAY_MS = 24 * _HOUR_MS


def missing(value: object) -> bool:
    """True for None and NaN: a value there is nothing to write for."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def duration_text(ms: float | None) -> str:
    """A duration in milliseconds in the unit that reads best: ms, s, min, h or days.

    >>> duration_text(350), duration_text(2360), duration_text(1_693_400)
    ('350 ms', '2.4 s', '28.2 min')
    >>> duration_text(9_000_000), duration_text(3 * 86_400_000), duration_text(None)
    ('2.5 h', '3.0 days', '—')
    """
    if missing(ms):
        return NO_DATA
    ms = float(ms)
    size = abs(ms)
    if size < _SECOND_MS:
        return f"{ms:,.0f} ms"
    if size < _MINUTE_MS:
        return f"{ms / _SECOND_MS:,.1f} s"
    if size < _HOUR_MS:
        return f"{ms / _MINUTE_MS:,.1f} min"
    if size < 2 * _DAY_MS:
        return f"{ms / _HOUR_MS:,.1f} h"
    return f"{ms / _DAY_MS:,.1f} days"


def percent_text(fraction: float | None) -> str:
    """A share (0 to 1) as a percentage with two decimals, as the Live health table writes it.

    >>> percent_text(0.0026), percent_text(1.0), percent_text(None)
    ('0.26%', '100.00%', '—')
    """
    if missing(fraction):
        return NO_DATA
    return f"{float(fraction):.2%}"


def count_text(count: float | None) -> str:
    """A count with thousands separators.

    >>> count_text(12345), count_text(None)
    ('12,345', '—')
    """
    if missing(count):
        return NO_DATA
    return f"{int(count):,}"
