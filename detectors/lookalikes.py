"""How often a flow's clean traffic showed what an incident showed in its first minutes.

An incident whose first minutes hold a single failure, or a single slow posting, can be told
from an ordinary day only if ordinary days seldom show as much. For an incident this counts
the windows of the same length on the same flow, outside every incident of that flow, that
showed at least as much. A detector that alerts on the incident's evidence, and on anything
stronger, alerts on each of those windows too: when they come more than once a week, no such
detector can alert on that incident in time and keep to one false alert per flow a week. A
simulated run of a few days holds only a few clean days per flow, so a count near that rate
(none, or one) says little either way; a count of several is an ordinary day's.

Evidence, by kind of incident:

* a failure burst (a broken mapping, missing master data): the failures of its category in the
  window, the flow's other transactions begun in the window, and the failures of that category
  in the day before. A look-alike window has at least as many failures, no more other
  transactions, and no more failures in its day before. That day counts the failures outside
  incidents only, as a week without incidents would show them: a short run holds many
  incidents, whose failures would otherwise make every clean failure after them look usual.
* an ERP latency drift: the window's posting calls to the target, each as a multiple of the
  flow's median posting duration outside incidents. A look-alike window has as many calls, and
  for every k its k-th slowest call is at least as slow (a call more, slow or not, could weigh
  either way).

Both comparisons ask for at least as much on every count at once, so they undercount
look-alikes (a window with one failure and fewer other transactions counts, one with more does
not): a count is a lower bound. Duplicate postings and dropped events are
judged per transaction, and have no look-alike count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from lineage.schema import LINEAGE_TABLE
from seamwatch.times import as_utc
from storage import Store

WINDOW = timedelta(minutes=5)
DAY_BEFORE = timedelta(days=1)
ERP_LATENCY_DRIFT = "erp_latency_drift"
# the exception category each failure burst gives its failed transactions
CATEGORY_OF_KIND = {
    "mapping_error_burst": "mapping",
    "missing_master_data": "master_data_missing",
}
_NS = 1_000_000_000

# a failure is known when its span ends: a failed root span began with its transaction
_FAILURES_SQL = """
SELECT min(toUnixTimestamp64Nano(Timestamp) + duration_ns) AS at_ns
FROM {lineage}
WHERE flow = {flow:String} AND exception_category = {category:String}
GROUP BY lookup_key
ORDER BY at_ns
"""

_BEGUN_SQL = """
SELECT toUnixTimestamp64Nano(min(Timestamp)) AS at_ns
FROM {lineage}
WHERE flow = {flow:String}
GROUP BY lookup_key
ORDER BY at_ns
"""

_POSTING_CALLS_SQL = """
SELECT toUnixTimestamp64Nano(Timestamp) AS at_ns, duration_ns
FROM {lineage}
WHERE flow = {flow:String} AND target = {target:String}
  AND stage = 'post' AND span_kind = 'Client'
ORDER BY at_ns
LIMIT 1 BY TraceId, SpanId
"""


@dataclass(frozen=True)
class Lookalikes:
    """What an incident showed in its first window, and how often clean traffic showed as much."""

    evidence: str
    windows: int
    clean_days: float


class LookalikeCounter:
    """Counts look-alikes of the incidents of one simulated run, reading each flow once."""

    def __init__(
        self,
        store: Store,
        labels: list[dict[str, Any]],
        run_start: datetime,
        run_end: datetime,
        grace: timedelta,
    ) -> None:
        self._store = store
        self._labels = labels
        self._span = (_ns(run_start), _ns(run_end))
        self._grace_ns = _ns_of(grace)
        self._cache: dict[tuple[str, ...], Any] = {}

    def count(self, label: dict[str, Any]) -> Lookalikes | None:
        """The look-alikes of one incident, or None for a kind judged per transaction."""
        start = _ns(label["start"])
        clean = self._clean_intervals(label["flow"])
        if label["kind"] == ERP_LATENCY_DRIFT:
            return self._drift(label, start, clean)
        category = CATEGORY_OF_KIND.get(label["kind"])
        if category is None:
            return None
        return self._failures(label["flow"], category, start, clean)

    def _failures(
        self, flow: str, category: str, start: int, clean: list[tuple[int, int]]
    ) -> Lookalikes:
        failed = self._times(_FAILURES_SQL, flow=flow, category=category)
        begun = self._times(_BEGUN_SQL, flow=flow)
        window, day = _ns_of(WINDOW), _ns_of(DAY_BEFORE)

        outside = failed[_inside(failed, clean)]

        def counts(at: int, history: np.ndarray) -> tuple[int, int, int]:
            seen = _between(failed, at, at + window)
            # a failed transaction may have begun before the window
            others = max(0, _between(begun, at, at + window) - seen)
            return seen, others, _between(history, at - day, at)

        shown, others_shown, before = counts(start, failed)

        def as_much(at: int) -> bool:
            seen, others, earlier = counts(at, outside)
            return seen >= shown and others <= others_shown and earlier <= before

        found = _windows(_starts_in(failed, clean, window), window, as_much) if shown else 0
        evidence = (
            f"{shown} {category} failure(s) and {others_shown} other transaction(s) begun, "
            f"after {before} such failure(s) in the day before"
        )
        return Lookalikes(evidence, found, _days(clean))

    def _drift(self, label: dict[str, Any], start: int, clean: list[tuple[int, int]]) -> Lookalikes:
        at, duration = self._calls(label["flow"], label.get("target", ""))
        usual = _usual_duration(at, duration, clean)
        window = _ns_of(WINDOW)
        if usual is None:
            return Lookalikes("no posting call outside incidents to compare with", 0, 0.0)
        ratios = duration / usual
        shown = _slowest_first(at, ratios, start, window)

        def as_much(first: int) -> bool:
            inside = _slowest_first(at, ratios, first, window)
            return inside.size == shown.size and bool(np.all(inside >= shown))

        found = 0
        if shown.size:
            found = _windows(_starts_in(at[ratios >= shown[-1]], clean, window), window, as_much)
        slowest = f", the slowest {shown[0]:.1f}x" if shown.size else ""
        evidence = (
            f"{shown.size} posting call(s) to {label.get('target', '')}{slowest} "
            f"the usual {usual / 1e6:.0f} ms"
        )
        return Lookalikes(evidence, found, _days(clean))

    def _clean_intervals(self, flow: str) -> list[tuple[int, int]]:
        """The run's time outside every incident of ``flow`` (from its fault to its end plus
        the grace), as ``[start, end)`` nanosecond pairs."""
        busy = sorted(
            (
                min(
                    _ns(label.get("fault_start") or label["start"]),
                    _ns(label["start"]),
                ),
                _ns(label["end"]) + self._grace_ns,
            )
            for label in self._labels
            if label["flow"] == flow
        )
        clean, cursor = [], self._span[0]
        for begin, end in busy:
            if begin > cursor:
                clean.append((cursor, min(begin, self._span[1])))
            cursor = max(cursor, end)
        if cursor < self._span[1]:
            clean.append((cursor, self._span[1]))
        return [(begin, end) for begin, end in clean if end > begin]

    def _times(self, sql: str, **parameters: str) -> np.ndarray:
        key = (sql, *parameters.values())
        if key not in self._cache:
            frame = self._store.query_df(
                sql.replace("{lineage}", self._store.table(LINEAGE_TABLE)), parameters
            )
            self._cache[key] = frame["at_ns"].to_numpy(dtype=np.int64)
        return self._cache[key]

    def _calls(self, flow: str, target: str) -> tuple[np.ndarray, np.ndarray]:
        key = ("calls", flow, target)
        if key not in self._cache:
            frame = self._store.query_df(
                _POSTING_CALLS_SQL.replace("{lineage}", self._store.table(LINEAGE_TABLE)),
                {"flow": flow, "target": target},
            )
            self._cache[key] = (
                frame["at_ns"].to_numpy(dtype=np.int64),
                frame["duration_ns"].to_numpy(dtype=np.float64),
            )
        return self._cache[key]


def _starts_in(times: np.ndarray, clean: list[tuple[int, int]], window: int) -> list[int]:
    """Window starts to try: each time whose window lies wholly in clean traffic. A window
    that shows as much holds a first such time, and the window from it shows as much too."""
    starts: list[int] = []
    for begin, end in clean:
        starts.extend(int(at) for at in times[(times >= begin) & (times + window <= end)])
    return starts


def _windows(starts: list[int], window: int, as_much: Callable[[int], bool]) -> int:
    """Look-alike windows among ``starts``, none overlapping another: a burst is one."""
    found, following = 0, None
    for at in starts:
        if (following is None or at >= following) and as_much(at):
            found += 1
            following = at + window
    return found


def _slowest_first(at: np.ndarray, ratios: np.ndarray, first: int, window: int) -> np.ndarray:
    """The ratios of the calls in ``[first, first + window)``, slowest first."""
    inside = ratios[np.searchsorted(at, first) : np.searchsorted(at, first + window)]
    return np.sort(inside)[::-1]


def _inside(times: np.ndarray, clean: list[tuple[int, int]]) -> np.ndarray:
    """Which of ``times`` lie in clean traffic."""
    inside = np.zeros(times.size, dtype=bool)
    for begin, end in clean:
        inside |= (times >= begin) & (times < end)
    return inside


def _usual_duration(
    at: np.ndarray, duration: np.ndarray, clean: list[tuple[int, int]]
) -> float | None:
    outside = _inside(at, clean)
    return float(np.median(duration[outside])) if outside.any() else None


def _between(times: np.ndarray, begin: int, end: int) -> int:
    return int(np.searchsorted(times, end) - np.searchsorted(times, begin))


def _days(clean: list[tuple[int, int]]) -> float:
    return sum(end - begin for begin, end in clean) / _ns_of(timedelta(days=1))


def _ns(moment: datetime | pd.Timestamp | str) -> int:
    """Nanoseconds since the epoch of ``moment`` (a naive one or a label's text is UTC)."""
    return int(pd.Timestamp(as_utc(moment)).value)


def _ns_of(span: timedelta) -> int:
    return int(span.total_seconds() * _NS)
