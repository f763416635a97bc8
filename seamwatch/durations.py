"""Durations as people type them on the command line: ``90s``, ``30m``, ``7d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

from seamwatch.user_text import quoted

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])")
_WHOLE = re.compile(r"^(\s*\d+(?:\.\d+)?\s*[wdhms])+\s*$")
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
ENDLESS = ("forever", "inf", "none")
_LONGEST_SECONDS = timedelta.max.total_seconds()


def parse_duration(
    text: str, *, allow_forever: bool = False, longest: timedelta | None = None
) -> timedelta | None:
    """The duration ``text`` names; ``forever`` gives None when ``allow_forever``; at most
    ``longest`` when given.

    Raises ValueError with a message that shows the accepted forms.
    """
    value = text.strip().lower()
    if allow_forever and value in ENDLESS:
        return None
    if not _WHOLE.match(value):
        forever = ", or 'forever'" if allow_forever else ""
        raise ValueError(
            f"{quoted(text)} is not a duration; use a number with a unit, e.g. 30m, 6h, 1d, 7d "
            f"or 1h30m (units w, d, h, m, s){forever}"
        )
    seconds = written_seconds(value)
    if seconds <= 0:
        raise ValueError(f"{quoted(text)} is no time at all; a duration must be longer than zero")
    limit = _LONGEST_SECONDS if longest is None else longest.total_seconds()
    if seconds > limit or seconds >= _LONGEST_SECONDS:  # inf too, from digits beyond a float
        most = timedelta.max if longest is None else longest
        raise ValueError(f"{quoted(text)} is too long; at most {_days(most)}")
    return timedelta(seconds=seconds)


def written_seconds(text: str) -> float:
    """The seconds a duration written as :func:`looks_like_duration` takes adds up to,
    unbounded (``inf`` beyond a float)."""
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text.strip().lower()))


def looks_like_duration(text: str) -> bool:
    """Whether ``text`` is written as a duration (numbers with units), whatever its length:
    ``0s`` and ``10000000000000000000000s`` are, ``yesterday`` is not."""
    return bool(_WHOLE.match(text.strip().lower()))


def _days(length: timedelta) -> str:
    return f"{length.days:,} days" if length.days != 1 else "1 day"
