"""Times as every JSON answer and label writes them: ISO-8601 UTC to the millisecond, with a Z."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd


def utc_text(moment: datetime | pd.Timestamp | str) -> str:
    """``moment`` as ``2025-03-03T13:27:00.000Z``; a naive one is taken as UTC.

    >>> utc_text("2025-03-03 13:27:00")
    '2025-03-03T13:27:00.000Z'
    >>> utc_text(pd.Timestamp("2025-03-03 14:27:00.1234", tz="Europe/Berlin"))
    '2025-03-03T13:27:00.123Z'
    """
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_text_or_none(moment: Any) -> str | None:
    """Like :func:`utc_text`, with None for a missing time (None or NaT)."""
    if moment is None or pd.isna(moment):
        return None
    return utc_text(moment)
