"""Times as Seamwatch writes them, in UTC: one format per kind of output.

JSON answers, webhook payloads and labels use ISO-8601 to the millisecond with a ``Z``
(:func:`utc_text`); tables, whose header says "(UTC)", use :func:`table_time`; sentences for
people (CLI messages, chat) use :func:`readable_utc`. :func:`time_or_ago` reads the start of
a window as people give it (``--since``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from seamwatch.durations import parse_duration
from seamwatch.user_text import quoted


def utc_text(moment: datetime | pd.Timestamp | str) -> str:
    """``moment`` as ``2025-03-03T13:27:00.000Z``; a naive one is taken as UTC.

    >>> utc_text("2025-03-03 13:27:00")
    '2025-03-03T13:27:00.000Z'
    >>> utc_text(pd.Timestamp("2025-03-03 14:27:00.1234", tz="Europe/Berlin"))
    '2025-03-03T13:27:00.123Z'
    """
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def table_time(moment: datetime | pd.Timestamp | str | None) -> str:
    """``moment`` as ``2025-03-03 13:27`` for a table column headed "(UTC)"; ``-`` if None.

    >>> table_time("2025-03-03T13:27:59.999Z")
    '2025-03-03 13:27'
    """
    if moment is None or pd.isna(moment):
        return "-"
    return _utc(moment).strftime("%Y-%m-%d %H:%M")


def readable_utc(moment: datetime | pd.Timestamp | str) -> str:
    """``moment`` as ``2025-03-03 13:27 UTC``, for a sentence.

    >>> readable_utc("2025-03-03T14:27:00+01:00")
    '2025-03-03 13:27 UTC'
    """
    return _utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def as_utc(moment: datetime | pd.Timestamp | str) -> datetime:
    """``moment`` as an aware datetime in UTC; a naive one is taken as UTC.

    >>> as_utc(pd.Timestamp("2025-03-03 14:27:00", tz="Europe/Berlin")).isoformat()
    '2025-03-03T13:27:00+00:00'
    """
    return _utc(moment).to_pydatetime()


def _utc(moment: datetime | pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def utc_text_or_none(moment: Any) -> str | None:
    """Like :func:`utc_text`, with None for a missing time (None or NaT)."""
    if moment is None or pd.isna(moment):
        return None
    return utc_text(moment)


def time_or_ago(text: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 time (naive means UTC), or a duration before ``now`` (the clock) such as
    ``6h``, as an aware datetime.

    Raises ValueError naming ``text`` and the forms taken.

    >>> time_or_ago("2025-03-10T12:00:00").isoformat()
    '2025-03-10T12:00:00+00:00'
    >>> time_or_ago("90m", now=datetime(2025, 3, 10, 12, 0, tzinfo=UTC)).isoformat()
    '2025-03-10T10:30:00+00:00'
    """
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    try:
        return (now or datetime.now(UTC)) - parse_duration(text)
    except ValueError:
        raise ValueError(
            f"{quoted(text)} is neither a time (2025-03-10T12:00:00Z) nor a duration before "
            "now (30m, 6h, 7d)."
        ) from None
    except OverflowError:
        raise ValueError(f"{quoted(text)} reaches back before the year 1.") from None
