"""Reading alerts with their tier and priority, silencing and acknowledging them.

Tier and priority are computed here, when alerts are read, from the severity rules in force:
a changed severity file re-ranks every alert at once. A silence matches alerts by flow, target
and kind (shell-style globs), or by one failure category (:mod:`detectors.silence_scope`),
until it expires; a silenced alert is still recorded and shown, marked silenced, so that
nothing is lost while notifications stay quiet. Only open alerts are marked: a silence speaks
for what is still going on, not for what was over before it began.

Every acknowledgement is kept. An alert has one holder at a time, the latest to acknowledge it:
a second person is refused unless they take it over, so that nobody's claim is replaced
without them or the one taking over knowing.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from detectors.alert_text import (
    alert_summary,
    converted_fields,
    currency_list,
    currency_split,
    money_text,
)
from detectors.lifecycle import ALERTS_TABLE, OPEN, RESOLVED, currency_map, stored_id
from detectors.priority import priority, priority_label
from detectors.severity import Severity, check_glob
from detectors.silence_scope import (
    covering_silence,
    matches_every_name,
    same_category,
    split_category,
)
from lineage.schema import LINEAGE_TABLE, ROLLUP_TABLE
from seamwatch.times import readable_utc, utc_text
from seamwatch.user_text import (
    KEY_LIMIT,
    NAME_LIMIT,
    TEXT_LIMIT,
    TextProblem,
    check_length,
    check_text,
    one_line,
    quoted,
)
from storage import Store

STATES = ("open", "resolved", "all")
SILENCES_TABLE = "alert_silences"
ACKS_TABLE = "alert_ack_history"
DEFAULT_LIST_LIMIT = 500
# ClickHouse's DateTime64 ends in 2299 and a silence nobody remembers is a blind spot: a year
# is long enough for any planned quiet and keeps every expiry storable.
LONGEST_SILENCE = timedelta(days=365)
# The most characters each free-text field takes, by its name in the API (seamwatch.user_text).
# Patterns are not limited: they must match flows, targets and categories as spans name
# them, which may be long or hold any character (a category may hold the unit separator).
TEXT_FIELD_LIMITS = {"by": NAME_LIMIT, "note": TEXT_LIMIT, "reason": TEXT_LIMIT}
# How many known flows or targets a warning about a pattern that matches none of them lists.
SEEN_EXAMPLES = 5

_TIME = pa.timestamp("ms", tz="UTC")
_SILENCE_SCHEMA = pa.schema(
    [
        ("silence_id", pa.string()),
        ("flow", pa.string()),
        ("target", pa.string()),
        ("kind", pa.string()),
        ("category", pa.string()),
        ("reason", pa.string()),
        ("created_by", pa.string()),
        ("created_at", _TIME),
        ("expires_at", _TIME),
        ("cancelled", pa.uint8()),
        ("cancelled_at", _TIME),
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


class Conflict(AlertActionError):
    """The alert or silence is not in a state that allows the change; nothing was changed."""


# The longest flow, target or kind pattern of a silence: a glob that long is a paste gone
# wrong, and every alert listing matches it again.
PATTERN_LIMIT = 200

# The kinds of alert the runner raises, which a silence's kind pattern must match.
ALERT_KINDS = (
    "latency",
    "error_rate",
    "volume",
    "exception_category",
    "error_budget",
    "latency_objective",
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
        raise AlertActionError(f"state must be one of {', '.join(STATES)}, got {quoted(state)}")
    now = now or datetime.now(UTC)
    frame = store.query_df(
        f"SELECT * EXCEPT version FROM {store.table(ALERTS_TABLE)} FINAL "
        "WHERE {state:String} = 'all' OR state = {state:String} "
        "ORDER BY opened_at DESC LIMIT {limit:UInt32}",
        {"state": state, "limit": limit},
    )
    rows = frame.to_dict("records")
    acks = acknowledgements(store, [row["alert_id"] for row in rows])
    silences = active_silences(store, now)
    alerts = [_describe(row, severity, silences, acks.get(row["alert_id"], [])) for row in rows]
    alerts.sort(key=lambda alert: (alert["state"] != OPEN, -alert["priority"]))
    return alerts


def acknowledgements(store: Store, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every acknowledgement of the alerts ``alert_ids``, oldest first, by alert id."""
    if not alert_ids:
        return {}
    frame = store.query_df(
        f"SELECT alert_id, acknowledged_by, acknowledged_at, note "
        f"FROM {store.table(ACKS_TABLE)} FINAL "
        "WHERE has(splitByChar(',', {ids:String}), alert_id) "
        "ORDER BY alert_id, acknowledged_at",
        # one string, not an array: the embedded store passes arrays unquoted; ids are hex
        {"ids": ",".join(alert_ids)},
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in frame.to_dict("records"):
        found.setdefault(row["alert_id"], []).append(
            {
                "by": row["acknowledged_by"],
                "at": _plain(row["acknowledged_at"]),
                "note": row["note"],
            }
        )
    return found


def _describe(
    row: dict[str, Any],
    severity: Severity,
    silences: list[dict[str, Any]],
    acks: list[dict[str, Any]],
) -> dict[str, Any]:
    tier = severity.tier_for(row["flow"], row["business_object"], row["target"])
    # split before any rounding: each currency is rounded to its own minor units, and a sum
    # rounded to cents would leave a mill of a BHD amount over as money of no currency
    money = float(row["money_at_risk"])
    by_currency = currency_map(row.get("money_by_currency"))
    converted = severity.convert(currency_split(money, by_currency))
    value = priority(
        row["peak_score"],
        tier.weight,
        row["affected"],
        converted.amount,
        severity.money_full_weight,
    )
    holder = acks[-1] if acks else {}
    open_now = row["state"] == OPEN
    silence = _covering(silences, row) if open_now else None
    plain = {name: _plain(value) for name, value in row.items()}
    return {
        **plain,
        "summary": alert_summary(plain),
        "kinds": list(row["kinds"]),
        # the sum of every currency, in cents, kept for the clients that read it before the
        # split (a sum of amounts in floating point)
        "money_at_risk": round(money, 2),
        "money_by_currency": currency_list(money, by_currency),
        "money_text": money_text(money, by_currency, converted),
        **converted_fields(converted),
        "tier": tier.name,
        "priority": value,
        "priority_label": priority_label(value),
        # the holder is the latest to acknowledge; every acknowledgement is in the list
        "acknowledged_by": holder.get("by"),
        "acknowledged_at": holder.get("at"),
        "ack_note": holder.get("note"),
        "acknowledgements": acks,
        "silenced_by": silence["silence_id"] if silence else None,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else utc_text(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, list | tuple) or getattr(value, "ndim", 0) > 0:
        return [_plain(item) for item in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _covering(silences: list[dict[str, Any]], alert: dict[str, Any]) -> dict[str, Any] | None:
    kinds = list(alert["kinds"]) or [alert["kind"]]
    categories = list(alert["categories"])
    return covering_silence(silences, alert["flow"], alert["target"], kinds, categories)


def add_silence(
    store: Store,
    duration: timedelta,
    flow: str = "*",
    target: str = "*",
    kind: str = "*",
    reason: str = "",
    created_by: str = "someone",
    now: datetime | None = None,
    everything: bool = False,
) -> dict[str, Any]:
    """Silence alerts that match ``flow``, ``target`` and ``kind`` for ``duration``.

    The patterns are shell-style globs; ``*`` matches anything. An empty one is refused rather
    than read as ``*``, so that a blank value cannot silence every alert; nor can leaving them
    all out, unless ``everything`` says that every alert is meant. A ``kind`` of
    ``category:NAME`` silences the alerts of that failure category alone
    (:mod:`detectors.silence_scope`). The answer's ``warnings`` name a flow, target or
    category that matches nothing seen in the store: the silence is kept, since that flow may
    come later, but a typo should not pass unnoticed.
    """
    check_silence_length(duration)
    check_free_text({"reason": reason, "by": created_by})
    # as for an acknowledgement: a blank name would list a silence that nobody set
    created_by = created_by.strip()
    if not created_by:
        raise AlertActionError("by (who silences) is empty; give a name")
    patterns = _silence_patterns(flow, target, kind, everything)
    now = now or datetime.now(UTC)
    silence = {
        "silence_id": uuid.uuid4().hex[:12],
        **patterns,
        "reason": reason,
        "created_by": created_by,
        "created_at": now,
        "expires_at": now + duration,
        "cancelled": 0,
        "cancelled_at": None,
        "version": _millis(now),
    }
    store.insert_arrow(SILENCES_TABLE, pa.Table.from_pylist([silence], _SILENCE_SCHEMA))
    return {
        **_silence_record(silence),
        "warnings": _unseen_pattern_warnings(store, patterns),
    }


def _silence_patterns(flow: str, target: str, kind: str, everything: bool) -> dict[str, str]:
    """The patterns of a new silence and its category (empty for none), checked;
    AlertActionError says what is wrong. A pattern may hold any character a flow name may,
    in at most :data:`PATTERN_LIMIT` characters."""
    check_pattern_lengths({"flow": flow, "target": target, "kind": kind})
    stored_kind, category = split_category(kind.strip())
    if category == "":
        raise AlertActionError(
            f"kind {quoted(kind)} names no category; give it as the alerts table shows it, "
            "e.g. category:mapping, or use exception_category for every category"
        )
    patterns = {"flow": flow.strip(), "target": target.strip(), "kind": stored_kind}
    for name, pattern in patterns.items():
        if not pattern:
            raise AlertActionError(f"{name} is empty; give a {name} or glob, or '*' for any")
        try:
            check_glob(pattern)
        except ValueError as exc:
            raise AlertActionError(f"{name} {quoted(pattern)}: {exc}") from None
    if not any(fnmatch.fnmatchcase(known, patterns["kind"]) for known in ALERT_KINDS):
        written = patterns["kind"].replace("-", "_").lower()
        meant = difflib.get_close_matches(written, ALERT_KINDS, 1)
        guess = f"did you mean {meant[0]}? Otherwise " if meant else ""
        raise AlertActionError(
            f"kind {quoted(kind)} matches no alert kind; {guess}use one of "
            f"{', '.join(ALERT_KINDS)}, a glob of them, '*', or category:NAME for one failure "
            "category"
        )
    matches_all = category is None and _mutes_every_alert(patterns)
    if everything and not matches_all:
        raise AlertActionError(
            'a silence of every alert (--all; in the API, "all": true) takes no flow, target '
            "or kind; leave out either the patterns or the request for every alert"
        )
    if matches_all and not everything:
        raise AlertActionError(
            "a silence without a flow, target or kind would mute every alert (so would flow "
            "and target globs that match any name, such as '*' or '?*', with a kind that "
            "matches every alert kind); name what to silence, or ask for every alert "
            'explicitly (--all; in the API, "all": true)'
        )
    return {**patterns, "category": category or ""}


def _mutes_every_alert(patterns: dict[str, str]) -> bool:
    """Whether a silence of these patterns covers every alert: its flow and target globs
    match any name and its kind every kind the runner raises."""
    return (
        matches_every_name(patterns["flow"])
        and matches_every_name(patterns["target"])
        and all(fnmatch.fnmatchcase(known, patterns["kind"]) for known in ALERT_KINDS)
    )


def _unseen_pattern_warnings(store: Store, patterns: dict[str, str]) -> list[str]:
    """A warning for each flow or target pattern, or category, that matches nothing the
    store has seen, and for a category that reads like a glob (it is compared whole)."""
    warnings = []
    for name in ("flow", "target"):
        pattern = patterns[name]
        if matches_every_name(pattern):  # matches whatever comes, even in an empty store
            continue
        seen = _seen(store, name)
        if not any(fnmatch.fnmatchcase(value, pattern) for value in seen):
            warnings += _unseen_warning(name, pattern, seen)
    category = patterns["category"]
    if not category:
        return warnings
    if _GLOB_CHARACTERS.search(category):
        warnings.append(
            f"category {quoted(category)} is compared whole, not as a glob (a category name may "
            "hold any character); kind exception_category silences every category"
        )
    seen = _seen_categories(store)
    if not any(same_category(value, category) for value in seen):
        warnings += _unseen_warning("category", category, seen)
    return warnings


# What makes a pattern a glob; a category name is never one.
_GLOB_CHARACTERS = re.compile(r"[*?\[]")


def _unseen_warning(name: str, pattern: str, seen: list[str]) -> list[str]:
    """The warning that ``pattern`` matches none of the ``seen`` values of ``name``, also
    when the store has seen none yet: a typo there silences nothing as surely."""
    kinds = "categories" if name == "category" else f"{name}s"
    if not seen:
        return [
            f"{name} {quoted(pattern)} matches none of the {kinds} seen in the store (it has "
            f"seen none yet); the silence is kept and applies if such a {name} appears"
        ]
    shown = ", ".join(seen[:SEEN_EXAMPLES])
    more = f" and {len(seen) - SEEN_EXAMPLES} more" if len(seen) > SEEN_EXAMPLES else ""
    return [
        f"{name} {quoted(pattern)} matches none of the {len(seen)} {kinds} seen in the store "
        f"({shown}{more}); the silence is kept and applies if such a {name} appears"
    ]


def _seen(store: Store, column: str) -> list[str]:
    """The flows or targets (``column``) of the stored traffic and alerts, sorted."""
    return _distinct_names(
        store,
        f"SELECT {column} AS name FROM {store.table(ROLLUP_TABLE)}",
        f"SELECT {column} AS name FROM {store.table(ALERTS_TABLE)}",
    )


def _seen_categories(store: Store) -> list[str]:
    """The failure categories of the stored hops and alerts, sorted."""
    return _distinct_names(
        store,
        f"SELECT toString(exception_category) AS name FROM {store.table(LINEAGE_TABLE)}",
        f"SELECT arrayJoin(categories) AS name FROM {store.table(ALERTS_TABLE)}",
    )


def _distinct_names(store: Store, *selects: str) -> list[str]:
    """The distinct, non-empty ``name`` of every row the ``selects`` give, sorted."""
    union = " UNION ALL ".join(selects)
    rows = store.query_rows(f"SELECT DISTINCT name FROM ({union}) WHERE name != '' ORDER BY name")
    return [str(row[0]) for row in rows]


def _silence_record(silence: dict[str, Any]) -> dict[str, Any]:
    """A silence as plain data: times as text, ``cancelled`` a boolean, no version."""
    record = {name: _plain(value) for name, value in silence.items() if name != "version"}
    # a silence without a category says so with null, not with an empty name
    category = record.get("category") or None
    return {**record, "category": category, "cancelled": bool(record["cancelled"])}


def check_free_text(values: dict[str, str], prefix: str = "") -> None:
    """Raise AlertActionError unless each free-text value is within its field's limit and
    free of control characters; the field is named ``prefix`` + its API name (``--by``)."""
    for name, value in values.items():
        try:
            check_text(prefix + name, value, TEXT_FIELD_LIMITS[name])
        except TextProblem as exc:
            raise AlertActionError(str(exc)) from None


def check_pattern_lengths(patterns: dict[str, str], prefix: str = "") -> None:
    """Raise AlertActionError for a silence pattern longer than :data:`PATTERN_LIMIT`; the
    field is named ``prefix`` + its API name (``--flow``)."""
    for name, pattern in patterns.items():
        _check_length(prefix + name, pattern, PATTERN_LIMIT)


def _check_length(field: str, value: str, limit: int = KEY_LIMIT) -> None:
    """Raise AlertActionError for a value longer than ``limit`` (by default, than any key
    Seamwatch looks up)."""
    try:
        check_length(field, value, limit)
    except TextProblem as exc:
        raise AlertActionError(str(exc)) from None


def check_silence_length(duration: timedelta) -> None:
    """Raise AlertActionError unless ``duration`` is at least a second and at most a year."""
    if duration < timedelta(seconds=1):
        # a shorter one ends before it could be read back; 1e-7 s was "got 0:00:00"
        raise AlertActionError(
            f"a silence must last at least a second, got {duration.total_seconds():g} s"
        )
    if duration > LONGEST_SILENCE:
        days = f"{duration / timedelta(days=1):,.1f}".removesuffix(".0")
        raise AlertActionError(
            f"a silence lasts at most {LONGEST_SILENCE.days} days, got {days} days; "
            "silence for less and renew it if needed"
        )


def cancel_silence(store: Store, silence_id: str, now: datetime | None = None) -> dict[str, Any]:
    """End a silence before it expires; Conflict if it had already ended or expired. The id
    may be typed in any case."""
    _check_length("silence id", silence_id)
    missing = UnknownId(
        f"no silence with id {quoted(silence_id)}; list them with 'seamwatch alerts silences'"
    )
    if not silence_id.isprintable():
        raise missing  # ids are letters and digits: one with a control character is none
    # Times are read as whole milliseconds, the column's precision, and written back as such:
    # a round trip through pandas' nanosecond floats could alter them.
    rows = store.query_df(
        f"SELECT * REPLACE (toUnixTimestamp64Milli(created_at) AS created_at, "
        f"toUnixTimestamp64Milli(expires_at) AS expires_at) "
        f"FROM {store.table(SILENCES_TABLE)} FINAL WHERE silence_id = {{id:String}}",
        {"id": stored_id(silence_id)},
    )
    if rows.empty:
        raise missing
    now = now or datetime.now(UTC)
    silence = {name: _plain(value) for name, value in rows.to_dict("records")[0].items()}
    _check_still_in_force(silence, now)
    silence.update(
        cancelled=1, cancelled_at=now, version=max(int(silence["version"]) + 1, _millis(now))
    )
    store.insert_arrow(SILENCES_TABLE, pa.Table.from_pylist([silence], _SILENCE_SCHEMA))
    return {"silence_id": silence["silence_id"], "cancelled_at": utc_text(now)}


def _check_still_in_force(silence: dict[str, Any], now: datetime) -> None:
    """Raise Conflict, saying when, if ``silence`` (as stored) has already ended."""
    name = silence["silence_id"]
    if silence["cancelled"]:
        # silences ended before cancelled_at was recorded: their version is the time they ended
        ended = silence["cancelled_at"] or _from_millis(int(silence["version"]))
        raise Conflict(
            f"silence {name} had already ended, at {readable_utc(ended)}; nothing changed"
        )
    expires = _from_millis(int(silence["expires_at"]))
    if expires <= now:
        raise Conflict(
            f"silence {name} had already expired, at {readable_utc(expires)}; nothing changed"
        )


def active_silences(store: Store, now: datetime | None = None) -> list[dict[str, Any]]:
    """Silences in force at ``now``, soonest to expire first."""
    frame = store.query_df(
        f"SELECT * FROM {store.table(SILENCES_TABLE)} FINAL "
        "WHERE cancelled = 0 AND expires_at > {now:DateTime64(3, 'UTC')} ORDER BY expires_at",
        {"now": _sql_time(now or datetime.now(UTC))},
    )
    return [_silence_record(row) for row in frame.to_dict("records")]


def acknowledge(
    store: Store,
    alert_id: str,
    by: str,
    note: str = "",
    now: datetime | None = None,
    take_over: bool = False,
) -> dict[str, Any]:
    """Record that ``by`` is looking at open alert ``alert_id``, and return the record.

    Conflict if the alert is resolved, or if someone else holds it and ``take_over`` is not
    given. Acknowledging again as the holder records the new note. Every acknowledgement is
    kept; ``taken_over_from`` names the previous holder's acknowledgement, if any. The id
    may be typed in any case.
    """
    check_free_text({"by": by, "note": note})
    # a blank or padded name would read as someone else than the holder ("ana " is ana)
    by = by.strip()
    if not by:
        raise AlertActionError("by (who acknowledges) is empty; give a name")
    state = _alert_state(store, alert_id)
    alert_id = stored_id(alert_id)  # found: from here on, as the alert is stored
    history = acknowledgements(store, [alert_id]).get(alert_id, [])
    holder = history[-1] if history and history[-1]["by"] != by else None
    if holder and not take_over:
        noted = f" ({one_line(holder['note'])})" if holder["note"] else ""
        raise Conflict(
            f"alert {alert_id} is already acknowledged by {one_line(holder['by'])} at "
            f"{readable_utc(holder['at'])}{noted}; nothing changed. To take it over, "
            'acknowledge again with --take-over (in the API, "take_over": true)'
        )
    now = now or datetime.now(UTC)
    ack = {"alert_id": alert_id, "acknowledged_by": by, "acknowledged_at": now, "note": note}
    store.insert_arrow(ACKS_TABLE, pa.Table.from_pylist([ack], _ACK_SCHEMA))
    return {**ack, "acknowledged_at": utc_text(now), "state": state, "taken_over_from": holder}


def _alert_state(store: Store, alert_id: str) -> str:
    """The state of alert ``alert_id``: UnknownId if none, Conflict if it is resolved."""
    _check_length("alert id", alert_id)
    missing = UnknownId(f"no alert with id {quoted(alert_id)}; list them with 'seamwatch alerts'")
    if not alert_id.isprintable():
        raise missing  # ids are letters and digits: one with a control character is none
    found = store.query_rows(
        f"SELECT state, resolved_at FROM {store.table(ALERTS_TABLE)} FINAL "
        "WHERE alert_id = {id:String}",
        {"id": stored_id(alert_id)},
    )
    if not found:
        raise missing
    state, resolved_at = found[0]
    if state == RESOLVED:
        when = f" at {readable_utc(resolved_at)}" if not pd.isna(resolved_at) else ""
        # named as stored, as every answer names it, not in the case it was typed
        raise Conflict(f"alert {stored_id(alert_id)} resolved{when}; nothing to acknowledge")
    return state


def api_times(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its times (the ``*_at`` fields) written as the JSON API writes times."""
    return {
        name: utc_text(value) if name.endswith("_at") and value else value
        for name, value in record.items()
    }


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_millis(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


def _sql_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


__all__ = [
    "LONGEST_SILENCE",
    "AlertActionError",
    "Conflict",
    "OPEN",
    "RESOLVED",
    "STATES",
    "acknowledge",
    "acknowledgements",
    "active_silences",
    "add_silence",
    "api_times",
    "cancel_silence",
    "check_free_text",
    "check_silence_length",
    "list_alerts",
]
