"""Reading the delivery log: what became of each notification, newest first.

``notify_deliveries`` (:mod:`notify.records`) holds a row per step of a notification at a
destination: ``queued``, then its outcome. A listing shows one row per alert event and
destination, its latest step: a final outcome over ``queued`` (a start that queued an event
again leaves the same outcome), the latest one otherwise. ``seamwatch notify log`` and
``GET /api/v1/deliveries`` give the same document, with the same filters: one alert, one
destination, one outcome, and a start time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from detectors.lifecycle import stored_id
from notify.message import NOTIFIED_EVENTS
from notify.records import (
    DELIVERIES_TABLE,
    DROPPED,
    FAILED,
    QUEUED,
    SENT,
    SILENCED,
    STALE,
    epoch_millis,
)
from notify.routing import NAME_MAX_LENGTH, NAME_PATTERN
from seamwatch.times import supported_time_or_ago, utc_text
from seamwatch.user_text import KEY_LIMIT, TextProblem, check_text, is_whole_number, quoted

if TYPE_CHECKING:
    from storage.base import Store

OUTCOMES = (QUEUED, SENT, FAILED, DROPPED, STALE, SILENCED)
# Newest first, and the same order every time, so that pages cut by the limit neither skip
# nor repeat an entry and the CLI and the API agree: entries recorded in the same
# millisecond by the later alert event first (its time, then resolved over escalated over
# opened), then by destination and alert; the last keys make each entry's place unique.
_EVENT_RANKS = "[" + ", ".join(f"'{event}'" for event in NOTIFIED_EVENTS) + "]"
_NEWEST_FIRST = (
    f"at DESC, event_at DESC, indexOf({_EVENT_RANKS}, source_event) DESC, "
    "destination, alert_id, source_event"
)
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
# The filters, by the name that the API's query and the CLI's options (with --) give them.
FILTERS = ("alert", "destination", "outcome", "since", "limit")


class DeliveryFilterError(ValueError):
    """A filter value cannot be used; the message names it and says what is allowed."""


@dataclass(frozen=True)
class DeliveryFilter:
    """Which deliveries to list: each field left None matches any."""

    alert: str | None = None
    destination: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, values: Mapping[str, str | None], prefix: str = "") -> DeliveryFilter:
        """The filter of ``values`` as people type them (``since`` may be ``2h``); errors name
        a field with ``prefix`` before it, as the user wrote it (``--outcome``)."""
        readers = {
            "alert": _alert,
            "destination": _destination,
            "outcome": _outcome,
            "since": _since,
            "limit": _limit,
        }
        # every field is read before any is refused: one round of fixes, one line each
        read: dict[str, Any] = {}
        problems = []
        for name, reader in readers.items():
            try:
                read[name] = reader(values.get(name), prefix)
            except DeliveryFilterError as exc:
                problems.append(str(exc))
        if problems:
            raise DeliveryFilterError("\n".join(problems))
        return cls(**read)

    @property
    def narrows(self) -> bool:
        """Whether it leaves some deliveries out, the limit aside."""
        return any(
            value is not None for value in (self.alert, self.destination, self.outcome, self.since)
        )

    def as_query(self) -> dict[str, str]:
        """The filter as the API's query parameters (a relative ``since`` made absolute)."""
        query = {
            "alert": self.alert,
            "destination": self.destination,
            "outcome": self.outcome,
            "since": utc_text(self.since) if self.since else None,
            "limit": str(self.limit),
        }
        return {name: value for name, value in query.items() if value is not None}


def _alert(text: str | None, prefix: str) -> str | None:
    if text is None:
        return None
    if not text.strip():
        raise DeliveryFilterError(
            f"{prefix}alert is empty; give an alert id as 'seamwatch alerts' lists it."
        )
    try:
        # as long as any id Seamwatch looks up (ack, lineage): the same limit and message
        return stored_id(check_text(f"{prefix}alert", text, KEY_LIMIT))
    except TextProblem as exc:
        raise DeliveryFilterError(f"{exc}.") from None


def _destination(text: str | None, prefix: str) -> str | None:
    if text is None:
        return None
    if len(text) > NAME_MAX_LENGTH or not re.match(NAME_PATTERN, text):
        raise DeliveryFilterError(
            f"{prefix}destination {quoted(text)} is not a destination name: 1 to "
            f"{NAME_MAX_LENGTH} letters, digits, '.', '_' or '-' (seamwatch notify check "
            "lists them)."
        )
    return text


def _outcome(text: str | None, prefix: str) -> str | None:
    if text is None or text in OUTCOMES:
        return text
    raise DeliveryFilterError(
        f"{prefix}outcome {quoted(text)} is not one of {', '.join(OUTCOMES)}."
    )


def _since(text: str | None, prefix: str) -> datetime | None:
    if text is None:
        return None
    try:
        return supported_time_or_ago(text, f"{prefix}since")
    except ValueError as exc:
        raise DeliveryFilterError(str(exc)) from None


def _limit(text: str | None, prefix: str) -> int:
    if text is None:
        return DEFAULT_LIMIT
    allowed = f"a whole number from 1 to {MAX_LIMIT}"
    if not is_whole_number(text):
        raise DeliveryFilterError(f"{prefix}limit {quoted(text)} is not {allowed}.")
    limit = int(text)
    if not 1 <= limit <= MAX_LIMIT:
        raise DeliveryFilterError(f"{prefix}limit {quoted(text)} is not {allowed}.")
    return limit


def deliveries_document(store: Store, wanted: DeliveryFilter) -> dict[str, Any]:
    """The answer of ``GET /deliveries``: the latest step of each notification at each
    destination that ``wanted`` matches, newest first; the CLI prints the same document."""
    conditions, parameters = _conditions(wanted)
    rows = store.query_df(
        f"SELECT at, destination, kind, alert_id, event, source_event, event_at, outcome, "
        f"attempts, http_status, reason FROM ("
        f"  SELECT * FROM {store.table(DELIVERIES_TABLE)} WHERE {conditions}"
        # a final outcome wins over a queued step recorded in the same millisecond
        f"  ORDER BY outcome != {{queued:String}} DESC, at DESC"
        f"  LIMIT 1 BY alert_id, source_event, event_at, destination"
        f") WHERE {{outcome:String}} = '' OR outcome = {{outcome:String}} "
        f"ORDER BY {_NEWEST_FIRST} LIMIT {{limit:UInt32}}",
        {**parameters, "queued": QUEUED, "outcome": wanted.outcome or "", "limit": wanted.limit},
    )
    return {"deliveries": [_delivery(row) for row in rows.to_dict("records")]}


def _conditions(wanted: DeliveryFilter) -> tuple[str, dict[str, Any]]:
    """The WHERE clause on the log's steps for ``wanted`` (but its outcome, which is the
    latest step's), and its parameters."""
    conditions, parameters = ["1"], {}
    if wanted.alert is not None:
        conditions.append("alert_id = {alert:String}")
        parameters["alert"] = wanted.alert
    if wanted.destination is not None:
        conditions.append("destination = {destination:String}")
        parameters["destination"] = wanted.destination
    if wanted.since is not None:
        conditions.append("toUnixTimestamp64Milli(at) >= {since:Int64}")
        parameters["since"] = epoch_millis(wanted.since)
    return " AND ".join(conditions), parameters


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    """One listed delivery, with times as the API writes them."""
    return {
        "at": utc_text(row["at"]),
        "destination": row["destination"],
        "kind": row["kind"],
        "alert_id": row["alert_id"],
        "event": row["event"],
        "source_event": row["source_event"],
        "event_at": utc_text(row["event_at"]),
        "outcome": row["outcome"],
        "attempts": int(row["attempts"]),
        "http_status": int(row["http_status"]),
        "reason": row["reason"],
    }
