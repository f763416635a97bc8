"""Reconciliation while it happens: duplicate postings and events nobody consumed.

Reconciliation (:mod:`lineage.reconcile`) judges whole transactions once their objective has
passed. Two of its findings can be known much earlier from the lineage index, minute by minute:

``duplicate_posting``
    A transaction's second successful posting to its target system (two posting traces, none
    of whose posting spans failed). As in reconciliation, a transaction is one business key
    under one correlation id, so an item that is created and later repriced is two. It is
    known at the minute the second posting lands. An ordinary redelivery that the target
    rejects (409) is a failed posting and does not count.
``dropped``
    A source event (a producer span with a business key) that no consumer picked up within
    ``CONSUME_WITHIN`` of its publication. It is known at the minute that deadline passes; a
    consumer span that arrives after the deadline does not hide it. Reconciliation later
    confirms the transaction as ``dropped`` once the flow's objective has passed.

Like reconciliation, both checks watch the system of record (``erp`` unless told otherwise):
fan-out flows that legitimately post one customer key to CRM and support many times a day are
not duplicates.

Each check reads one chunk of minutes with one query and hands back findings per minute, so a
catch-up over six hours costs two queries, not 720. Both queries first find the business keys
with a relevant span in the chunk (one scan of the chunk's time range) and then read those
keys' history through the index's primary key (``lookup_key``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from lineage.reconcile import DEFAULT_TARGET
from lineage.schema import LINEAGE_TABLE
from storage import Store

DUPLICATE_POSTING = "duplicate_posting"
DROPPED = "dropped"
# How long a published event may wait for its first consumer before it counts as unconsumed.
CONSUME_WITHIN = timedelta(minutes=5)
# How far back a duplicate's first posting is looked for.
DUPLICATE_LOOKBACK = timedelta(days=1)

_POSTING = """(stage = 'post' AND target != ''
    AND (service = target OR (span_kind = 'Client' AND peer = target)))"""
_FAILED = "(status_code = 'Error' OR exception_category != '')"
_IN_TARGETS = "has(splitByChar(',', {targets:String}), target)"

_DUPLICATES_SQL = """
WITH posts AS (
    SELECT
        flow, target, business_key, correlation_id, TraceId,
        min(Timestamp) AS posted_at,
        anyIf(amount, amount IS NOT NULL) AS t_amount,
        anyIf(currency, currency != '') AS t_currency,
        countIf({failed}) AS failed_spans
    FROM {lineage}
    WHERE lookup_key IN (
            SELECT lookup_key FROM {lineage}
            WHERE Timestamp >= {start:DateTime64(9)} AND Timestamp < {end:DateTime64(9)}
              AND business_key != '' AND {in_targets} AND {posting}
        )
      AND Timestamp >= {lookback:DateTime64(9)} AND Timestamp < {end:DateTime64(9)}
      AND business_key != '' AND {in_targets} AND {posting}
    GROUP BY flow, target, business_key, correlation_id, TraceId
    HAVING failed_spans = 0
)
SELECT
    flow, target, business_key,
    toUnixTimestamp64Milli(arraySort(groupArray(posted_at))[2]) AS second_ms,
    count() AS postings,
    anyIf(t_amount, t_amount IS NOT NULL) AS amount,
    anyIf(t_currency, t_currency != '') AS currency
FROM posts
GROUP BY flow, target, business_key, correlation_id
HAVING postings >= 2
   AND second_ms >= toUnixTimestamp64Milli({start:DateTime64(9)})
   AND second_ms < toUnixTimestamp64Milli({end:DateTime64(9)})
"""

_UNCONSUMED_SQL = """
SELECT
    flow, target, business_key,
    toUnixTimestamp64Milli(minIf(Timestamp, span_kind = 'Producer')) AS published_ms,
    toUnixTimestamp64Milli(minIf(Timestamp, span_kind = 'Consumer')) AS consumed_ms,
    countIf(span_kind = 'Consumer') AS consumers,
    anyIf(amount, amount IS NOT NULL) AS amount,
    anyIf(currency, currency != '') AS currency,
    anyIf(source, source != '') AS source
FROM {lineage}
WHERE lookup_key IN (
        SELECT lookup_key FROM {lineage}
        WHERE Timestamp >= {start:DateTime64(9)} AND Timestamp < {end:DateTime64(9)}
          AND business_key != '' AND span_kind = 'Producer'
          AND {in_targets}
    )
  AND Timestamp >= {start:DateTime64(9)}
  AND business_key != '' AND {in_targets}
GROUP BY flow, target, business_key
HAVING countIf(span_kind = 'Producer') > 0
   AND published_ms >= toUnixTimestamp64Milli({start:DateTime64(9)})
   AND published_ms < toUnixTimestamp64Milli({end:DateTime64(9)})
"""


@dataclass
class Finding:
    """What one check found on one flow and target: business keys in the order found, each
    with its amount (0 when it has none) and the currency of those that name one."""

    kind: str
    flow: str
    target: str
    amounts: dict[str, float] = field(default_factory=dict)
    source: str = ""
    currencies: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, amount: float | None, currency: str = "") -> None:
        """Add one business key (and its amount and currency, when it has them); a key found
        again keeps its first amount."""
        known = amount is not None and not pd.isna(amount)
        if key not in self.amounts and currency:
            self.currencies[key] = currency
        self.amounts.setdefault(key, float(amount) if known else 0.0)

    @property
    def keys(self) -> list[str]:
        """The business keys, first found first."""
        return list(self.amounts)

    @property
    def amount(self) -> float:
        """The amounts of all its keys."""
        return sum(self.amounts.values())

    def money_by_currency(self) -> dict[str, float]:
        """Its amounts added up by currency (an amount without one under ``""``)."""
        return add_by_currency(self.amounts, self.currencies)


def add_by_currency(amounts: dict[str, float], currencies: dict[str, str]) -> dict[str, float]:
    """``amounts`` (business key to amount) added up by the keys' ``currencies`` (an amount
    whose key names none under ``""``); amounts of 0 (none known) are left out."""
    totals: dict[str, float] = {}
    for key, amount in amounts.items():
        if amount:
            code = currencies.get(key, "")
            totals[code] = totals.get(code, 0.0) + amount
    return totals


# minute (naive UTC) -> (flow, target) -> kind -> finding
MinuteFindings = dict[pd.Timestamp, dict[tuple[str, str], dict[str, Finding]]]


def watch_chunk(
    store: Store, start: datetime, end: datetime, targets: tuple[str, ...] = (DEFAULT_TARGET,)
) -> MinuteFindings:
    """Duplicate postings and unconsumed events bound for ``targets``, known in the minutes
    of ``[start, end)``."""
    found: MinuteFindings = defaultdict(dict)
    duplicates = _query(store, _DUPLICATES_SQL, targets, start - DUPLICATE_LOOKBACK, start, end)
    for row in duplicates.itertuples():
        minute = _minute_of(row.second_ms)
        _finding(found, minute, DUPLICATE_POSTING, row.flow, row.target).add(
            row.business_key, row.amount, row.currency
        )
    # events whose deadline falls in the chunk were published one deadline earlier
    published = _query(
        store, _UNCONSUMED_SQL, targets, start, start - CONSUME_WITHIN, end - CONSUME_WITHIN
    )
    deadline_ms = int(CONSUME_WITHIN.total_seconds() * 1000)
    for row in published.itertuples():
        deadline = row.published_ms + deadline_ms
        if row.consumers > 0 and row.consumed_ms <= deadline:
            continue
        finding = _finding(found, _minute_of(deadline), DROPPED, row.flow, row.target)
        finding.add(row.business_key, row.amount, row.currency)
        finding.source = finding.source or str(row.source)
    return found


def _query(
    store: Store,
    template: str,
    targets: tuple[str, ...],
    lookback: datetime,
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    sql = (
        template.replace("{lineage}", store.table(LINEAGE_TABLE))
        .replace("{posting}", _POSTING)
        .replace("{failed}", _FAILED)
        .replace("{in_targets}", _IN_TARGETS)
    )
    return store.query_df(
        sql,
        {
            "targets": ",".join(targets),
            "lookback": _naive(lookback),
            "start": _naive(start),
            "end": _naive(end),
        },
    )


def _finding(
    found: MinuteFindings, minute: pd.Timestamp, kind: str, flow: str, target: str
) -> Finding:
    by_kind = found[minute].setdefault((flow, target), {})
    if kind not in by_kind:
        by_kind[kind] = Finding(kind, flow, target)
    return by_kind[kind]


def _minute_of(millis: int) -> pd.Timestamp:
    return pd.Timestamp(int(millis), unit="ms").floor("min")


def _naive(moment: datetime) -> str:
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
