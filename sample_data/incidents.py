"""Injected incidents: what can go wrong, when it does, and the labels that record it.

Each incident has a kind, the flow it hits, a window in simulated time and an intensity. The
flows ask ``IncidentBook.active`` whether an incident touches the posting they are about to
make and report the business keys it affected. When the window closes the incident is written
as one JSON line to the labels file, so detectors can be scored against it. A missing-master-data
incident lasts until the customers or items it kept out of the ERP arrive there: until then
the replays of its transactions fail as they did in the window. Its label is written when the
last of them arrives (or five hours after the window, if one never does), and ends at its last
failure, not before the window's end.

A label starts when the fault is first exercised, at the first transaction it affects, and
records when the fault was put in place as ``fault_start``: a mapping table that lost a code
changes nothing for the business until a transaction carrying that code arrives. A mapping
burst breaks one code, and every transaction of a customer carrying it fails (the intensity is
the share of customers carrying it), rather than a coin toss per transaction.

The schedule is drawn per simulated day from the seed: two to four incidents a day, none in
the first hours of a run (detectors need a baseline), and never two at once on the same flow.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

logger = logging.getLogger(__name__)

ERP_LATENCY_DRIFT = "erp_latency_drift"
MAPPING_ERROR_BURST = "mapping_error_burst"
DROPPED_EVENTS = "dropped_events"
DUPLICATE_POSTINGS = "duplicate_postings"
MISSING_MASTER_DATA = "missing_master_data"

KINDS = (
    ERP_LATENCY_DRIFT,
    MAPPING_ERROR_BURST,
    DROPPED_EVENTS,
    DUPLICATE_POSTINGS,
    MISSING_MASTER_DATA,
)

# Which flows each kind can hit: the flows whose design has the weakness in question.
ELIGIBLE_FLOWS: dict[str, tuple[str, ...]] = {
    ERP_LATENCY_DRIFT: (
        "order-to-cash.order-submit",
        "billing.invoice-post",
        "payments.payment-apply",
    ),
    # Not catalog.item-sync: a few changes a day are too few for a burst of a few percent.
    MAPPING_ERROR_BURST: (
        "billing.invoice-post",
        "order-to-cash.order-submit",
        "usage.usage-post",
    ),
    DROPPED_EVENTS: ("billing.invoice-post", "usage.usage-post", "payments.payment-apply"),
    DUPLICATE_POSTINGS: ("billing.invoice-post", "payments.payment-apply"),
    MISSING_MASTER_DATA: ("order-to-cash.order-submit", "billing.invoice-post"),
}

# Window length range in minutes per kind.
_DURATION_MINUTES: dict[str, tuple[int, int]] = {
    ERP_LATENCY_DRIFT: (45, 120),
    MAPPING_ERROR_BURST: (30, 90),
    DROPPED_EVENTS: (30, 120),
    DUPLICATE_POSTINGS: (20, 60),
    MISSING_MASTER_DATA: (30, 90),
}

# Intensity range per kind: the peak latency multiplier for drift, otherwise the share of
# transactions in the window that the incident hits.
_INTENSITY: dict[str, tuple[float, float]] = {
    ERP_LATENCY_DRIFT: (25.0, 45.0),
    # a mapping burst breaks one code; this is the share of the flow's customers carrying it
    MAPPING_ERROR_BURST: (0.05, 0.30),
    DROPPED_EVENTS: (0.2, 0.5),
    DUPLICATE_POSTINGS: (0.15, 0.4),
    MISSING_MASTER_DATA: (0.15, 0.3),
}

QUIET_START = timedelta(hours=3)
# incidents drawn for each simulated day (each of another kind)
MIN_DAILY_INCIDENTS = 2
MAX_DAILY_INCIDENTS = 4
TARGET = "erp"


@dataclass(frozen=True)
class PlannedIncident:
    """An incident to inject: kind, flow, window (UTC) and optionally its intensity."""

    kind: str
    flow: str
    start: datetime
    end: datetime
    intensity: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown incident kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.flow not in ELIGIBLE_FLOWS[self.kind]:
            allowed = ", ".join(ELIGIBLE_FLOWS[self.kind])
            raise ValueError(f"{self.kind} cannot hit flow {self.flow!r}; use one of {allowed}")
        if self.end <= self.start:
            raise ValueError("an incident must end after it starts")


@dataclass
class Incident:
    """An incident during the run, collecting the business keys it affects."""

    kind: str
    flow: str
    start_ns: int
    end_ns: int
    intensity: float
    affected_keys: list[str] = field(default_factory=list)
    first_affected_ns: int | None = None
    last_affected_ns: int | None = None
    _seen: set[str] = field(default_factory=set, repr=False)

    def affect(self, key: str, at_ns: int) -> None:
        """Record that the incident hit ``key`` at ``at_ns`` (each key once, in order)."""
        if key not in self._seen:
            self._seen.add(key)
            self.affected_keys.append(key)
        if self.first_affected_ns is None or at_ns < self.first_affected_ns:
            self.first_affected_ns = at_ns
        if self.last_affected_ns is None or at_ns > self.last_affected_ns:
            self.last_affected_ns = at_ns

    def carries_code(self, owner: str) -> bool:
        """For a mapping burst: whether transactions of ``owner`` (a customer, or the
        transaction itself when it has none) carry the code whose mapping broke.

        Stable for the incident, so every transaction of an owner carrying the code fails,
        and about ``intensity`` of the owners carry it."""
        digest = zlib.crc32(f"{self.start_ns}:{owner}".encode())
        return digest / 2**32 < self.intensity

    def broken_code(self, choices: tuple[str, ...]) -> str:
        """For a mapping burst: which of ``choices`` the mapping change broke (stable)."""
        return choices[zlib.crc32(str(self.start_ns).encode()) % len(choices)]

    def progress(self, now_ns: int) -> float:
        """How far through its window the incident is, 0.0 to 1.0."""
        return min(1.0, max(0.0, (now_ns - self.start_ns) / (self.end_ns - self.start_ns)))

    def latency_multiplier(self, now_ns: int) -> float:
        """For latency drift: a ramp from 1x at the start to the peak multiplier at the end."""
        return 1.0 + (self.intensity - 1.0) * self.progress(now_ns)

    def description(self) -> str:
        """One sentence a person reading the labels understands."""
        if self.kind == ERP_LATENCY_DRIFT:
            return (
                f"ERP posting latency for {self.flow} ramps up to {self.intensity:.0f}x normal, "
                "until client calls time out."
            )
        share = f"{self.intensity:.0%}"
        return {
            MAPPING_ERROR_BURST: f"A mapping change loses the mapping of a code carried by "
            f"about {share} of {self.flow} customers; each of their transactions fails with "
            "category mapping.",
            DROPPED_EVENTS: f"About {share} of {self.flow} events are published but never "
            "consumed, so they never reach the ERP.",
            DUPLICATE_POSTINGS: f"Redelivered {self.flow} events post about {share} of business "
            "keys to the ERP twice.",
            MISSING_MASTER_DATA: f"About {share} of {self.flow} postings fail with "
            "master_data_missing: the customer or item is not in the ERP yet.",
        }[self.kind]

    def label(self, end_ns: int | None = None) -> dict[str, object]:
        """The labels-file record of this incident.

        ``start`` is when the fault was first exercised (its first affected transaction): a
        broken mapping or a missing record does nothing to the business until a transaction
        needs it, and a redelivered event until it is posted the second time. ``fault_start``
        is when the fault was put in place."""
        start_ns = self.start_ns if self.first_affected_ns is None else self.first_affected_ns
        return {
            "kind": self.kind,
            "flow": self.flow,
            "target": TARGET,
            "start": iso_utc(start_ns),
            "fault_start": iso_utc(self.start_ns),
            # a redelivery in the window's last minutes posts twice after the window closed
            "end": iso_utc(max(start_ns, self.end_ns if end_ns is None else end_ns)),
            "affected_keys": list(self.affected_keys),
            "description": self.description(),
        }


def iso_utc(at_ns: int) -> str:
    """ISO-8601 UTC with a ``Z`` suffix and millisecond precision."""
    moment = datetime.fromtimestamp(at_ns / 1e9, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (UTC)")
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def schedule_day(
    seed: int | str, run_start_ns: int, day: int, run_end_ns: int | None
) -> list[Incident]:
    """The incidents of simulated day ``day`` of a run (day 0 starts at the run's start).

    Drawn from a generator of its own per day, so a day's incidents do not depend on how long
    the run is or how far ahead anything else looked.
    """
    rng = random.Random(f"{seed}:incidents:{day}")
    day_ns = 24 * 3600 * 1_000_000_000
    day_start = run_start_ns + day * day_ns
    earliest = max(day_start, run_start_ns + int(QUIET_START.total_seconds() * 1e9))
    latest_end = day_start + day_ns if run_end_ns is None else min(day_start + day_ns, run_end_ns)
    incidents: list[Incident] = []
    for kind in rng.sample(KINDS, rng.randint(MIN_DAILY_INCIDENTS, MAX_DAILY_INCIDENTS)):
        low, high = _DURATION_MINUTES[kind]
        length = rng.randint(low, high) * 60 * 1_000_000_000
        if latest_end - length <= earliest:
            continue
        flow = rng.choice(ELIGIBLE_FLOWS[kind])
        for _ in range(10):
            start = _business_hours_biased(rng, earliest, latest_end - length)
            if not any(
                other.flow == flow and start < other.end_ns and other.start_ns < start + length
                for other in incidents
            ):
                incidents.append(
                    Incident(kind, flow, start, start + length, rng.uniform(*_INTENSITY[kind]))
                )
                break
    incidents.sort(key=lambda incident: incident.start_ns)
    return incidents


def _business_hours_biased(rng: random.Random, low: int, high: int) -> int:
    """A start between ``low`` and ``high``; two in three tries land in 07:00-20:00 UTC."""
    start = low
    for _ in range(3):
        start = rng.randint(low, high)
        hour = datetime.fromtimestamp(start / 1e9, tz=UTC).hour
        if 7 <= hour < 20:
            return start
    return start


def from_plan(planned: PlannedIncident) -> Incident:
    """An incident from an explicit plan; a missing intensity takes the middle of its range."""
    low, high = _INTENSITY[planned.kind]
    intensity = planned.intensity if planned.intensity is not None else (low + high) / 2
    return Incident(planned.kind, planned.flow, to_ns(planned.start), to_ns(planned.end), intensity)


def check_labels_path(path: Path) -> None:
    """Make sure labels can be appended to ``path``, without creating it (a run that labels
    nothing, or never starts, leaves no file behind); raise ValueError saying why not."""
    problem = _unwritable(path)
    if problem is not None:
        raise ValueError(
            f"Cannot write incident labels to {str(path)!r}: {problem}. "
            "Choose a writable file with --labels."
        )


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be created or appended to, as the system says it; None if it can."""
    if path.is_dir():
        return os.strerror(errno.EISDIR)
    if path.exists():
        return None if os.access(path, os.W_OK) else os.strerror(errno.EACCES)
    folder = path.parent
    while not folder.exists():  # the folders missing are made with the file
        folder = folder.parent
    if not folder.is_dir():
        return os.strerror(errno.ENOTDIR)
    if not os.access(folder, os.W_OK | os.X_OK):
        return os.strerror(errno.EACCES)
    return None


class LabelWriter:
    """Appends incident labels, one JSON object a line, flushing each so readers see it.

    The file is created with its first line: a label, or at the end of a run that labelled
    nothing, a record saying no incident happened (``no_incident_record``)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self.written = 0
        if path is not None:
            check_labels_path(path)

    def write(self, record: dict[str, object]) -> None:
        """Append one label line (a no-op without a labels file)."""
        if self._path is None:
            return
        self._append(self._path, record)
        logger.info(
            "Incident %s on %s labelled in %s: %d transaction(s) affected from %s to %s",
            record["kind"],
            record["flow"],
            self._path,
            len(record["affected_keys"]),
            record["start"],
            record["end"],
        )

    def close(self, start_ns: int, end_ns: int, seed: int | str) -> None:
        """End the run's labels: when it labelled no incident, append the record that says so,
        so that the file shows the run was labelled (a no-op without a labels file)."""
        if self._path is None or self.written:
            return
        self._append(self._path, no_incident_record(start_ns, end_ns, seed))
        logger.info("No incident labelled; %s says so", self._path)

    def _append(self, path: Path, record: dict[str, object]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line)
            self.written += 1


def no_incident_record(start_ns: int, end_ns: int, seed: int | str) -> dict[str, object]:
    """The labels-file line of a run that labelled no incident. It has no ``kind``: readers of
    labels skip it (``is_incident_label``)."""
    return {
        "no_incident": True,
        "seed": seed,
        "start": iso_utc(start_ns),
        "end": iso_utc(max(start_ns, end_ns)),
        "description": "No incident happened in this run of the simulator.",
    }


def is_incident_label(record: dict[str, object]) -> bool:
    """True for the label of an incident; False for the line of a run without one."""
    return not record.get("no_incident")
