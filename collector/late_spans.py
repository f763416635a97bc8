"""Spans that reach the receiver after the detectors have judged their minute.

The detectors judge each minute once, ``SEAMWATCH_EVALUATION_DELAY_SECONDS`` after it ends,
from the spans that name a flow, each in the minute its start time falls in
(:mod:`detectors.flow_series`). A span of a minute already judged is stored and shown, but no
detector ever counts it. The receiver counts such spans as it acknowledges them, by the delay
of its own settings, and says so in the log at most once a minute, naming the setting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import Counter as MetricCounter

from collector.log_throttle import LogThrottle
from seamwatch.settings import EVALUATION_DELAY_ENV
from seamwatch.user_text import quoted

logger = logging.getLogger(__name__)

# The span attribute the detectors read a span's flow from; spans without one are never judged.
FLOW_ATTRIBUTE = "integration.flow"
_MINUTE_NS = 60 * 10**9
_TIMESTAMP = pa.timestamp("ns")
_LOG_INTERVAL_SECONDS = 60.0
# Flows named in a log line, the busiest first.
_FLOWS_NAMED = 5
# Distinct flows tallied between two log lines: flow names are whatever the clients send.
_FLOWS_KEPT = 1000


class LateSpans:
    """Counts the acknowledged spans that name a flow and start in a minute already judged."""

    def __init__(
        self,
        delay: timedelta,
        counter: MetricCounter,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.delay = delay
        self._delay_ns = round(delay.total_seconds() * 10**9)
        self._counter = counter
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._throttle = LogThrottle(_LOG_INTERVAL_SECONDS)
        self._flows: Counter[str] = Counter()
        self._untallied = 0  # spans of flows past _FLOWS_KEPT
        self._since: float | None = None

    def find(self, rows: pa.Table) -> dict[str, int]:
        """Late spans per flow among ``rows`` (``otel_traces`` rows just received)."""
        # one comparison over the batch; the attributes are read only when a span is late
        cutoff = pa.scalar(self.first_unjudged_minute_ns(self._clock_ns()), _TIMESTAMP)
        late = pc.less(rows["Timestamp"], cutoff)
        if not pc.any(late).as_py():
            return {}
        return _flow_counts(rows["SpanAttributes"], late.to_numpy())

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
            if self._throttle.admit() is None:
                return
            flows, untallied, since = self._flows, self._untallied, self._since
            self._flows, self._untallied, self._since = Counter(), 0, time.monotonic()
        logger.warning(self._warning(flows, untallied, since))

    def first_unjudged_minute_ns(self, now_ns: int) -> int:
        """Start (ns since the epoch) of the first minute not judged yet at ``now_ns``: a
        span that starts before it is late."""
        # a minute is judged once its end plus the delay has passed, so spans of minutes that
        # start before now - delay - 1 min are late; minute starts are whole minutes, so the
        # bound rounds up to one
        bound = now_ns - self._delay_ns - _MINUTE_NS
        return -(-bound // _MINUTE_NS) * _MINUTE_NS

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
