"""Spans that reach the receiver after the detectors have judged their minute.

The detectors judge each minute once, ``SEAMWATCH_EVALUATION_DELAY_SECONDS`` after it ends,
from the spans that name a flow, each in the minute its start time falls in
(:mod:`detectors.flow_series`), and store how far they got (``detector_state``). A span of a
minute before that position is stored and shown, but no detector ever counts it. The receiver
counts such spans as it acknowledges them and says so in the log at most once a minute,
naming the setting. The position is read from the store every few seconds in a thread of its
own, so a request never waits on the store for it; while no detector has stored one (the
detectors do not run, or have not started), no span is late: old spans sent before the
detectors' first catch-up, such as a demo's backfill, are judged by it. Detectors in the same
process (``seamwatch up``) tell the receiver before they read their minutes
(:func:`seamwatch.runtime.judging`): it first stores every span it has acknowledged, and from
then on counts the spans of those minutes as late. Detectors of another process are known
from the store alone, so for up to ``_REFRESH_SECONDS`` after they judge a minute, a span of
it can be missed by them without being counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import Counter as MetricCounter

from collector.log_throttle import LogThrottle
from seamwatch.settings import EVALUATION_DELAY_ENV
from seamwatch.user_text import quoted
from storage import Store, StoreError
from storage.schema import DETECTOR_STATE_TABLE

logger = logging.getLogger(__name__)

# The span attribute the detectors read a span's flow from; spans without one are never judged.
FLOW_ATTRIBUTE = "integration.flow"
_TIMESTAMP = pa.timestamp("ns")
_LOG_INTERVAL_SECONDS = 60.0
# how often the detectors' stored position is read again
_REFRESH_SECONDS = 10.0
# Flows named in a log line, the busiest first.
_FLOWS_NAMED = 5
# Distinct flows tallied between two log lines: flow names are whatever the clients send.
_FLOWS_KEPT = 1000


class JudgedUntil:
    """How far the detectors have judged: the first minute not judged yet (ns since the
    epoch) of the furthest runner in ``detector_state``, or None while none stored one. Read
    by :meth:`refresh`; a store that cannot answer leaves the last value."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.value_ns: int | None = None
        self._noted_ns: int | None = None

    def __call__(self) -> int | None:
        return self.value_ns

    def note(self, until: datetime) -> None:
        """Detectors of this process are about to judge the minutes before ``until``."""
        until_ns = round(until.timestamp() * 1e9)
        self._noted_ns = max(self._noted_ns or until_ns, until_ns)
        self.value_ns = max(self.value_ns or until_ns, until_ns)

    def refresh(self) -> None:
        """Read the stored position once."""
        try:
            rows = self._store.query_rows(
                "SELECT count(), toUnixTimestamp64Milli(max(evaluated_until)) "
                f"FROM {self._store.table(DETECTOR_STATE_TABLE)} FINAL"
            )
        except StoreError as exc:
            logger.debug("Could not read how far the detectors have judged: %s", exc)
            return
        runners, millis = rows[0] if rows else (0, None)
        stored = int(millis) * 1_000_000 if runners and millis is not None else None
        known = [value for value in (stored, self._noted_ns) if value is not None]
        self.value_ns = max(known) if known else None


class LateSpans:
    """Counts the acknowledged spans that name a flow and start in a minute already judged
    (before ``judged_until()``; nothing while it is None).

    Between :meth:`start` and :meth:`stop` a daemon thread reads the detectors' position
    again every ``refresh_seconds`` (when ``judged_until`` can be refreshed) and writes the
    counts not logged yet once their minute has passed, so a one-off late batch is logged
    without waiting for another; :meth:`stop` writes what is left."""

    def __init__(
        self,
        delay: timedelta,
        counter: MetricCounter,
        judged_until: Callable[[], int | None] = lambda: None,
        refresh_seconds: float = _REFRESH_SECONDS,
    ) -> None:
        self.delay = delay
        self._counter = counter
        self._judged_until = judged_until
        self._refresh_seconds = refresh_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._throttle = LogThrottle(_LOG_INTERVAL_SECONDS)
        self._flows: Counter[str] = Counter()
        self._untallied = 0  # spans of flows past _FLOWS_KEPT
        self._since: float | None = None

    def find(self, rows: pa.Table) -> dict[str, int]:
        """Late spans per flow among ``rows`` (``otel_traces`` rows just received)."""
        judged_until = self._judged_until()
        if judged_until is None:
            return {}
        # one comparison over the batch; the attributes are read only when a span is late
        late = pc.less(rows["Timestamp"], pa.scalar(judged_until, _TIMESTAMP))
        if not pc.any(late).as_py():
            return {}
        return _flow_counts(rows["SpanAttributes"], late.to_numpy())

    def start(self) -> None:
        """Keep the position fresh and the log written until :meth:`stop`."""
        threading.Thread(target=self._keep_up, name="seamwatch-late-spans", daemon=True).start()

    def stop(self) -> None:
        """Stop the thread and write the counts not logged yet."""
        self._stopping.set()
        self._log_pending(at_stop=True)

    def record(self, late_flows: Mapping[str, int]) -> None:
        """Count the late spans of an acknowledged request, and say so at most once a minute."""
        if not late_flows:
            return
        self._counter.inc(sum(late_flows.values()))
        with self._lock:
            for flow, spans in late_flows.items():
                if flow in self._flows or len(self._flows) < _FLOWS_KEPT:
                    self._flows[flow] += spans
                else:
                    self._untallied += spans
        self._log_pending()

    def _keep_up(self) -> None:
        refresh = getattr(self._judged_until, "refresh", None)
        while not self._stopping.is_set():
            try:
                if refresh is not None:
                    refresh()
                self._log_pending()
            except Exception:  # noqa: BLE001 - a thread boundary: the next round tries again
                logger.debug("Could not read how far the detectors have judged", exc_info=True)
            self._stopping.wait(self._refresh_seconds)

    def _log_pending(self, at_stop: bool = False) -> None:
        """Write the counts not logged yet, if a minute has passed since the last line (or at
        the stop)."""
        with self._lock:
            if not self._flows and not self._untallied:
                return
            if not at_stop and self._throttle.admit() is None:
                return
            flows, untallied, since = self._flows, self._untallied, self._since
            self._flows, self._untallied, self._since = Counter(), 0, time.monotonic()
        logger.warning(self._warning(flows, untallied, since))

    def _warning(self, flows: Counter[str], untallied: int, since: float | None) -> str:
        spans = sum(flows.values()) + untallied
        period = ""
        if since is not None:
            period = f" since the last such line ({(time.monotonic() - since) / 60:.0f} min ago)"
        named = [f"{quoted(flow)} ({n:,})" for flow, n in flows.most_common(_FLOWS_NAMED)]
        hidden = len(flows) - len(named)
        more = " and more" if untallied else f" and {hidden:,} more" if hidden else ""
        return (
            f"{spans:,} span(s){period} arrived after the detectors had judged their minute, so "
            f"no detector counts them (they are stored and shown); flows {', '.join(named)}"
            f"{more}. A longer {EVALUATION_DELAY_ENV} (now {self.delay.total_seconds():g} s) "
            "counts such spans but delays every alert by as much."
        )


def _flow_counts(attributes: pa.ChunkedArray, late: np.ndarray) -> dict[str, int]:
    """Late spans per flow: ``attributes`` are the batch's ``SpanAttributes``, ``late`` flags
    its late rows; spans that name no flow are left out, as the detectors leave them out."""
    flows = []
    first_row = 0
    for chunk in attributes.chunks:
        flows.append(_late_flows(chunk, late[first_row : first_row + len(chunk)]))
        first_row += len(chunk)
    counted = pc.value_counts(pa.chunked_array(flows, pa.string()))
    names, spans = counted.field("values").to_pylist(), counted.field("counts").to_pylist()
    return {flow: n for flow, n in zip(names, spans, strict=True) if flow}


def _late_flows(attributes: pa.MapArray, late: np.ndarray) -> pa.Array:
    """The flow of each late span of ``attributes`` that names one."""
    # Faster than a lookup per map: the keys are compared in one pass, and the offsets say
    # whose each match is. ``keys`` and ``items`` ignore a slice; the offsets do not.
    offsets = attributes.offsets.to_numpy()
    start, end = int(offsets[0]), int(offsets[-1])
    is_flow = pc.equal(attributes.keys.slice(start, end - start), FLOW_ATTRIBUTE)
    positions = np.flatnonzero(is_flow.to_numpy(zero_copy_only=False)) + start
    owners = np.searchsorted(offsets, positions, side="right") - 1
    first = np.ones(len(owners), dtype=bool)  # a key given twice counts its span once
    first[1:] = owners[1:] != owners[:-1]
    return attributes.items.take(positions[first & late[owners]])
