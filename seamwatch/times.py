"""Times as Seamwatch writes them, in UTC: one format per kind of output.

JSON answers, webhook payloads and labels use ISO-8601 to the millisecond with a ``Z``
(:func:`utc_text`); tables, whose header says "(UTC)", use :func:`table_time`; sentences for
people (CLI messages, chat) use :func:`readable_utc`. :func:`time_or_ago` reads the start of
a window as people give it (``--since``).

A time given by a user must fall within :data:`EARLIEST` and :data:`LATEST`
(:func:`check_supported`): spans are stored as ClickHouse ``DateTime64(9)`` and read as pandas
nanosecond timestamps, which both count nanoseconds in 64 bits and so end in 1677 and 2262.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from seamwatch.durations import looks_like_duration, parse_duration, written_seconds
from seamwatch.user_text import quoted

# whole years within what 64-bit nanoseconds reach (1677-09-21 to 2262-04-11), with room for
# the day that reconciliation reads before its window and the hour a window defaults to
EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
LATEST = datetime(2261, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
SUPPORTED_RANGE = f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC)"


class TimeOutOfRange(ValueError):
    """A time given by a user falls outside what the store and pandas can hold."""


def check_supported(moment: datetime, name: str, given: str | None = None) -> datetime:
    """``moment`` if it lies within :data:`EARLIEST` and :data:`LATEST`; otherwise
    :class:`TimeOutOfRange` naming ``name`` (``since``, ``--until``) and the value as
    ``given`` (the text typed, when there was one)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    if not EARLIEST <= aware <= LATEST:
        raise out_of_range(name, given if given is not None else aware.isoformat())
    return moment


def out_of_range(name: str, given: str) -> TimeOutOfRange:
    """The error for a time outside the supported range, e.g. one too far back to compute;
    an empty ``name`` starts it with the value (for a message that names the option itself)."""
    subject = f"{name} {quoted(given)}" if name else quoted(given)
    return TimeOutOfRange(f"{subject} is outside the supported range, {SUPPORTED_RANGE}.")


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
    except ValueError as exc:
        if looks_like_duration(text):
            if written_seconds(text) > 0:  # longer than any clock reaches back
                raise out_of_range("", text) from None
            raise ValueError(f"{exc}.") from None
        raise ValueError(
            f"{quoted(text)} is neither a time (2025-03-10T12:00:00Z) nor a duration before "
            "now (30m, 6h, 7d)."
        ) from None
    except OverflowError:  # before the year 1: out of range as much as 1600 is
        raise out_of_range("", text) from None


def supported_time_or_ago(text: str, name: str, now: datetime | None = None) -> datetime:
    """:func:`time_or_ago` of ``text``, within :data:`EARLIEST` and :data:`LATEST`; the
    ValueError (or :class:`TimeOutOfRange`) names the option or parameter ``name``."""
    try:
        moment = time_or_ago(text, now)
    except TimeOutOfRange:  # a duration that reaches back before the year 1
        raise out_of_range(name, text) from None
    except ValueError as exc:
        raise ValueError(f"{name} {exc}") from None
    return check_supported(moment, name, text)
