"""Reading alerts with their tier and priority, silencing and acknowledging them.

Tier and priority are computed here, when alerts are read, from the severity rules in force:
a changed severity file re-ranks every alert at once. A silence matches alerts by flow, target
and kind (shell-style globs) until it expires; a silenced alert is still recorded and shown,
marked silenced, so that nothing is lost while notifications stay quiet. Only open alerts are
marked: a silence speaks for what is still going on, not for what was over before it began.
"""

from __future__ import annotations

import fnmatch
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from detectors.lifecycle import ALERTS_TABLE, OPEN, RESOLVED
from detectors.priority import priority, priority_label
from detectors.severity import Severity
from seamwatch.times import utc_text
from storage import Store

STATES = ("open", "resolved", "all")
SILENCES_TABLE = "alert_silences"
ACKS_TABLE = "alert_acks"
DEFAULT_LIST_LIMIT = 500
# ClickHouse's DateTime64 ends in 2299 and a silence nobody remembers is a blind spot: a year
# is long enough for any planned quiet and keeps every expiry storable.
LONGEST_SILENCE = timedelta(days=365)

_TIME = pa.timestamp("ms", tz="UTC")
_SILENCE_SCHEMA = pa.schema(
    [
        ("silence_id", pa.string()),
        ("flow", pa.string()),
        ("target", pa.string()),
        ("kind", pa.string()),
        ("reason", pa.string()),
        ("created_by", pa.string()),
        ("created_at", _TIME),
        ("expires_at", _TIME),
        ("cancelled", pa.uint8()),
        ("version", pa.uint64()),
    ]
)
_ACK_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("acknowledged_by", pa.string()),
        ("acknowledged_at", _TIME),
        ("note", pa.string()),
    ]
)


class AlertActionError(ValueError):
    """A request about alerts cannot be carried out; the message says why."""


class UnknownId(AlertActionError):
    """No alert or silence has the id given."""


# The kinds of alert the runner raises, which a silence's kind pattern must match.
ALERT_KINDS = (
    "latency",
    "error_rate",
    "volume",
    "exception_category",
    "duplicate_posting",
    "dropped",
)


def list_alerts(
    store: Store,
    severity: Severity,
    state: str = "open",
    now: datetime | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
) -> list[dict[str, Any]]:
    """Alerts in ``state`` (open, resolved or all), highest priority first, as plain data."""
    if state not in STATES:
        raise AlertActionError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    now = now or datetime.now(UTC)
    frame = store.query_df(
        f"SELECT a.* EXCEPT version, k.acknowledged_by, k.acknowledged_at "
        f"FROM {store.table(ALERTS_TABLE)} AS a FINAL "
        f"LEFT JOIN (SELECT * FROM {store.table(ACKS_TABLE)} FINAL) AS k "
        "ON a.alert_id = k.alert_id "
        "WHERE {state:String} = 'all' OR a.state = {state:String} "
        "ORDER BY a.opened_at DESC LIMIT {limit:UInt32}",
        {"state": state, "limit": limit},
    )
    silences = active_silences(store, now)
    alerts = [_describe(row, severity, silences) for row in frame.to_dict("records")]
    alerts.sort(key=lambda alert: (alert["state"] != OPEN, -alert["priority"]))
    return alerts


def _describe(
    row: dict[str, Any], severity: Severity, silences: list[dict[str, Any]]
) -> dict[str, Any]:
    tier = severity.tier_for(row["flow"], row["business_object"], row["target"])
    value = priority(row["peak_score"], tier.weight, row["affected"], row["money_at_risk"])
    acknowledged_by = row.pop("acknowledged_by") or None
    acknowledged_at = row.pop("acknowledged_at")
    open_now = row["state"] == OPEN
    silence = next((s for s in silences if open_now and _silence_matches(s, row)), None)
    return {
        **{name: _plain(value) for name, value in row.items()},
        "kinds": list(row["kinds"]),
        # a sum of amounts in floating point: cents, as money is written
        "money_at_risk": round(float(row["money_at_risk"]), 2),
        "tier": tier.name,
        "priority": value,
        "priority_label": priority_label(value),
        "acknowledged_by": acknowledged_by,
        "acknowledged_at": _plain(acknowledged_at) if acknowledged_by else None,
        "silenced_by": silence["silence_id"] if silence else None,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, list | tuple) or getattr(value, "ndim", 0) > 0:
        return [_plain(item) for item in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _silence_matches(silence: dict[str, Any], alert: dict[str, Any]) -> bool:
    kinds = list(alert["kinds"]) or [alert["kind"]]
    return (
        fnmatch.fnmatchcase(alert["flow"], silence["flow"])
        and fnmatch.fnmatchcase(alert["target"], silence["target"])
        and any(fnmatch.fnmatchcase(kind, silence["kind"]) for kind in kinds)
    )


def add_silence(
    store: Store,
    duration: timedelta,
    flow: str = "*",
    target: str = "*",
    kind: str = "*",
    reason: str = "",
    created_by: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Silence alerts that match ``flow``, ``target`` and ``kind`` for ``duration``.

    The patterns are shell-style globs; ``*`` matches anything. An empty one is refused rather
    than read as ``*``, so that a blank value cannot silence every alert.
    """
    check_silence_length(duration)
    patterns = {"flow": flow.strip(), "target": target.strip(), "kind": kind.strip()}
    for name, pattern in patterns.items():
        if not pattern:
            raise AlertActionError(f"{name} is empty; give a {name} or glob, or '*' for any")
    if not any(fnmatch.fnmatchcase(known, patterns["kind"]) for known in ALERT_KINDS):
        raise AlertActionError(
            f"kind {kind!r} matches no alert kind; use one of {', '.join(ALERT_KINDS)}, "
            "a glob of them, or '*'"
        )
    now = now or datetime.now(UTC)
    silence = {
        "silence_id": uuid.uuid4().hex[:12],
        **patterns,
        "reason": reason,
        "created_by": created_by,
        "created_at": now,
        "expires_at": now + duration,
        "cancelled": 0,
        "version": int(now.timestamp() * 1000),
    }
    store.insert_arrow(SILENCES_TABLE, pa.Table.from_pylist([silence], _SILENCE_SCHEMA))
    return {
        **silence,
        "created_at": now.isoformat(),
        "expires_at": silence["expires_at"].isoformat(),
    }


def check_silence_length(duration: timedelta) -> None:
    """Raise AlertActionError unless ``duration`` is more than zero and at most a year."""
    if duration <= timedelta(0):
        raise AlertActionError(f"a silence must last a positive time, got {duration}")
    if duration > LONGEST_SILENCE:
        days = f"{duration / timedelta(days=1):,.1f}".removesuffix(".0")
        raise AlertActionError(
            f"a silence lasts at most {LONGEST_SILENCE.days} days, got {days} days; "
            "silence for less and renew it if needed"
        )


def cancel_silence(store: Store, silence_id: str, now: datetime | None = None) -> None:
    """End a silence before it expires."""
    # Times are read as whole milliseconds, the column's precision, and written back as such:
    # a round trip through pandas' nanosecond floats could alter them.
    rows = store.query_df(
        f"SELECT * REPLACE (toUnixTimestamp64Milli(created_at) AS created_at, "
        f"toUnixTimestamp64Milli(expires_at) AS expires_at) "
        f"FROM {store.table(SILENCES_TABLE)} FINAL WHERE silence_id = {{id:String}}",
        {"id": silence_id},
    )
    if rows.empty:
        raise UnknownId(
            f"no silence with id {silence_id!r}; list them with 'seamwatch alerts silences'"
        )
    now = now or datetime.now(UTC)
    silence = {name: _plain(value) for name, value in rows.to_dict("records")[0].items()}
    silence.update(cancelled=1, version=max(int(silence["version"]) + 1, _millis(now)))
    store.insert_arrow(SILENCES_TABLE, pa.Table.from_pylist([silence], _SILENCE_SCHEMA))


def active_silences(store: Store, now: datetime | None = None) -> list[dict[str, Any]]:
    """Silences in force at ``now``, soonest to expire first."""
    frame = store.query_df(
        f"SELECT * EXCEPT version FROM {store.table(SILENCES_TABLE)} FINAL "
        "WHERE cancelled = 0 AND expires_at > {now:DateTime64(3, 'UTC')} ORDER BY expires_at",
        {"now": _sql_time(now or datetime.now(UTC))},
    )
    return [
        {name: _plain(value) for name, value in row.items()} for row in frame.to_dict("records")
    ]


def acknowledge(
    store: Store, alert_id: str, by: str, note: str = "", now: datetime | None = None
) -> dict[str, Any]:
    """Record that ``by`` is looking at alert ``alert_id``."""
    if not by:
        raise AlertActionError("by (who acknowledges) is empty; give a name")
    found = store.query_rows(
        f"SELECT state FROM {store.table(ALERTS_TABLE)} FINAL WHERE alert_id = {{id:String}}",
        {"id": alert_id},
    )
    if not found:
        raise UnknownId(f"no alert with id {alert_id!r}; list them with 'seamwatch alerts'")
    now = now or datetime.now(UTC)
    ack = {"alert_id": alert_id, "acknowledged_by": by, "acknowledged_at": now, "note": note}
    store.insert_arrow(ACKS_TABLE, pa.Table.from_pylist([ack], _ACK_SCHEMA))
    return {**ack, "acknowledged_at": now.isoformat(), "state": found[0][0]}


def api_times(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its times (the ``*_at`` fields) written as the JSON API writes times."""
    return {
        name: utc_text(value) if name.endswith("_at") and value else value
        for name, value in record.items()
    }


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _sql_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


__all__ = [
    "LONGEST_SILENCE",
    "AlertActionError",
    "OPEN",
    "RESOLVED",
    "STATES",
    "acknowledge",
    "active_silences",
    "add_silence",
    "api_times",
    "cancel_silence",
    "check_silence_length",
    "list_alerts",
]
