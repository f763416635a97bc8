"""Judging the detector runner on the simulator's injected incidents.

The simulator plays the SaaS-to-ERP stack as fast as it can into a collector in this process,
and writes one label per injected incident (kind, flow, target, start, end, affected business
keys); a label starts when its fault is first exercised, at the first affected transaction.
The runner then evaluates the stored minutes in catch-up mode, exactly as after downtime, and
its alerts are compared with the labels:

* **caught**: an alert of the incident's flow and target *opens*, or a new kind *joins* an
  alert of that flow that is already open (``escalated``), between the incident's start and
  its end plus ``GRACE``. A score that grows on an alert opened for another reason does not
  count. Every kind is judged on its own flow: in this simulator even the ERP's latency drift
  slows the postings of one flow, so there is no system-wide incident to credit to the target.
  A latency drift slows postings from the moment it is in place (``fault_start``), by less
  than one posting shows until its label starts: an alert opened in between saw it early and
  is caught with no delay.
* **delay**: from the incident's start to the end of the minute that raised the alert (when
  the runner could first have known).
* **in time**: a delay of at most ``CAUGHT_WITHIN`` (5 simulated minutes). For
  ``dropped_events`` nothing is wrong until a dropped event is overdue, so the deadline is 5
  minutes after the first affected event's objective expires (its publication plus the flow's
  reconciliation objective, 30 minutes for event flows).
* **first evidence**: the first span of an affected business key at or after the start, also
  reported, with the delay counted from it: on a flow with one transaction a minute, no
  detector can know of an incident before a transaction shows it. So is the number of affected
  transactions seen within ``CAUGHT_WITHIN`` of the start: with one, no count-based detector
  can tell the incident from the flow's everyday failures in time.
* **false alert**: an alert of a flow whose open interval (opening to resolution, or the end
  of the run) overlaps no labelled incident of that flow, widened by ``GRACE`` after its end
  while replays drain. The objective is at most one per flow per simulated week.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from detectors.lifecycle import ALERTS_TABLE, EVENTS_TABLE
from detectors.lookalikes import LookalikeCounter
from detectors.restart_judge import RestartComparison, compare_restarted
from detectors.runner import DetectorRunner
from detectors.severity import Severity
from lineage.reconcile import objective_of
from lineage.schema import LINEAGE_TABLE
from sample_data.incidents import (
    MAX_DAILY_INCIDENTS,
    MIN_DAILY_INCIDENTS,
    QUIET_START,
    is_incident_label,
)
from seamwatch.times import utc_text
from storage import Store

logger = logging.getLogger(__name__)

CAUGHT_WITHIN = timedelta(minutes=5)
GRACE = timedelta(minutes=30)
RECOVERY_TAIL = GRACE
# a simulated day always holds incidents; a shorter run may hold none
MIN_JUDGED_DAYS = 1.0
CRITICAL = "critical"
DROPPED_EVENTS = "dropped_events"
ERP_LATENCY_DRIFT = "erp_latency_drift"
JUDGE_RUNNER = "simulator-judge"
# the objective's most false alerts per flow per simulated week
FALSE_ALERTS_PER_FLOW_WEEK = 1.0
# critical incidents apart by the affected transactions seen within the deadline
SPARSE_EVIDENCE = "at_most_one_affected"
AMPLE_EVIDENCE = "two_or_more_affected"
DEFAULT_START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday, so a week covers every weekday


@dataclass
class IncidentVerdict:
    """How the runner did on one injected incident."""

    kind: str
    flow: str
    target: str
    tier: str
    start: str
    end: str
    caught_at: str | None
    delay_minutes: float | None
    deadline_minutes: float = CAUGHT_WITHIN.total_seconds() / 60
    first_evidence: str | None = None
    delay_after_evidence_minutes: float | None = None
    affected_keys: int = 0
    affected_within_deadline: int = 0
    # what the first minutes showed, and how often the flow's clean traffic showed as much
    evidence: str | None = None
    lookalikes: int | None = None
    clean_days: float | None = None

    @property
    def caught_in_time(self) -> bool:
        """Caught within the kind's deadline (5 simulated minutes, or the dropped rule)."""
        return self.delay_minutes is not None and self.delay_minutes <= self.deadline_minutes


@dataclass
class Judgement:
    """The verdicts of one simulated run."""

    simulated_days: float
    incidents: list[IncidentVerdict] = field(default_factory=list)
    false_alerts: dict[str, int] = field(default_factory=dict)
    alerts_opened: int = 0
    alerts_by_flow: dict[str, int] = field(default_factory=dict)
    # the alerts of a runner restarted every so often against those judged here, if asked
    restarted: RestartComparison | None = None

    @property
    def critical(self) -> list[IncidentVerdict]:
        """Verdicts of incidents on critical flows."""
        return [verdict for verdict in self.incidents if verdict.tier == CRITICAL]

    def critical_by_evidence(self) -> dict[str, dict[str, int]]:
        """Critical incidents and those caught in time, apart by how many affected
        transactions showed within the deadline: at most one, or two and more. One failure
        or one slow posting is also what a flow shows on an ordinary day, so the first group
        tells how far the objective is bound by what the spans carried."""
        groups: dict[str, dict[str, int]] = {
            SPARSE_EVIDENCE: {"incidents": 0, "caught_in_time": 0},
            AMPLE_EVIDENCE: {"incidents": 0, "caught_in_time": 0},
        }
        for verdict in self.critical:
            group = groups[
                AMPLE_EVIDENCE if verdict.affected_within_deadline >= 2 else SPARSE_EVIDENCE
            ]
            group["incidents"] += 1
            group["caught_in_time"] += verdict.caught_in_time
        return groups

    @property
    def max_false_alerts_per_flow_week(self) -> float:
        """The worst flow's false alerts per simulated week."""
        weeks = self.simulated_days / 7.0
        worst = max(self.false_alerts.values(), default=0)
        return worst / weeks if weeks > 0 else math.nan

    @property
    def passed(self) -> bool:
        """Both objectives met."""
        critical_ok = all(verdict.caught_in_time for verdict in self.critical)
        return critical_ok and self.max_false_alerts_per_flow_week <= FALSE_ALERTS_PER_FLOW_WEEK

    def by_kind(self) -> dict[str, dict[str, Any]]:
        """Per incident kind: injected, caught, caught in time, median delays."""
        kinds: dict[str, dict[str, Any]] = {}
        for kind in sorted({v.kind for v in self.incidents}):
            verdicts = [v for v in self.incidents if v.kind == kind]
            delays = [v.delay_minutes for v in verdicts if v.delay_minutes is not None]
            evidence = [
                v.delay_after_evidence_minutes
                for v in verdicts
                if v.delay_after_evidence_minutes is not None
            ]
            kinds[kind] = {
                "injected": len(verdicts),
                "caught": len(delays),
                "caught_in_time": sum(1 for v in verdicts if v.caught_in_time),
                "median_delay_minutes": _median(delays),
                "median_delay_after_evidence_minutes": _median(evidence),
            }
        return kinds

    def as_dict(self) -> dict[str, Any]:
        """Plain form for JSON output."""
        critical = self.critical
        return {
            "simulated_days": self.simulated_days,
            "incidents": len(self.incidents),
            "caught": sum(1 for v in self.incidents if v.delay_minutes is not None),
            "caught_in_time": sum(1 for v in self.incidents if v.caught_in_time),
            "critical_incidents": len(critical),
            "critical_caught_in_time": sum(1 for v in critical if v.caught_in_time),
            "critical_by_evidence": self.critical_by_evidence(),
            "by_kind": self.by_kind(),
            "alerts_opened": self.alerts_opened,
            "alerts_by_flow": dict(sorted(self.alerts_by_flow.items())),
            "false_alerts_by_flow": dict(sorted(self.false_alerts.items())),
            "max_false_alerts_per_flow_week": round(self.max_false_alerts_per_flow_week, 2),
            # with no incident injected nothing was judged: neither passed nor failed
            "passed": self.passed if self.incidents else None,
            "verdicts": [asdict(v) for v in self.incidents],
            "restarted": self.restarted.as_dict() if self.restarted else None,
        }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def read_labels(path: Path) -> list[dict[str, Any]]:
    """The incident labels written by the simulator (JSON lines), without the line of a run
    that had no incident."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [record for record in records if is_incident_label(record)]


def judge(
    store: Store,
    labels: list[dict[str, Any]],
    severity: Severity,
    sim_start: datetime,
    sim_end: datetime,
    runner: DetectorRunner | None = None,
) -> Judgement:
    """Run the detectors over the stored minutes and compare their alerts with ``labels``."""
    (runner or DetectorRunner(store, name=JUDGE_RUNNER, severity=lambda: severity)).catch_up(
        sim_end
    )
    events = store.query_df(
        f"SELECT e.alert_id, e.at, e.event, a.flow, a.target "
        f"FROM {store.table(EVENTS_TABLE)} AS e FINAL "
        f"INNER JOIN (SELECT alert_id, flow, target FROM {store.table(ALERTS_TABLE)} FINAL) "
        "AS a ON e.alert_id = a.alert_id WHERE e.event IN ('opened', 'escalated') "
        "ORDER BY e.at"
    )
    events["at"] = pd.to_datetime(events["at"], utc=True)
    alerts = store.query_df(
        f"SELECT alert_id, flow, target, opened_at, resolved_at, state "
        f"FROM {store.table(ALERTS_TABLE)} FINAL ORDER BY opened_at"
    )
    end = pd.Timestamp(sim_end).tz_convert(UTC) if sim_end.tzinfo else pd.Timestamp(sim_end, tz=UTC)
    judgement = Judgement((sim_end - sim_start) / timedelta(days=1))
    lookalikes = LookalikeCounter(store, labels, sim_start, sim_end, GRACE)
    for label in labels:
        verdict = _verdict(store, label, events, severity)
        found = lookalikes.count(label)
        if found is not None:
            verdict.evidence, verdict.lookalikes = found.evidence, found.windows
            verdict.clean_days = round(found.clean_days, 2)
        judgement.incidents.append(verdict)
    judgement.alerts_opened = len(alerts)
    judgement.alerts_by_flow = dict(Counter(alerts["flow"]))
    judgement.false_alerts = _false_alerts(alerts, labels, end)
    return judgement


def _verdict(
    store: Store, label: dict[str, Any], events: pd.DataFrame, severity: Severity
) -> IncidentVerdict:
    start, end = _utc(label["start"]), _utc(label["end"])
    effects_from = _effects_from(label)
    target = label.get("target", "")
    keys = list(label.get("affected_keys", []))
    first_seen, pattern, early = _first_evidence(store, keys, start, start + CAUGHT_WITHIN)
    deadline = CAUGHT_WITHIN
    if label["kind"] == DROPPED_EVENTS and first_seen is not None:
        deadline = (first_seen - start) + objective_of(pattern) + CAUGHT_WITHIN
    # an event stamped with a minute is known at the end of that minute
    known = events["at"] + pd.Timedelta(minutes=1)
    hits = events[
        (events["flow"] == label["flow"])
        & (events["target"] == target)
        & (known >= effects_from)
        & (events["at"] <= end + GRACE)
    ]
    caught_at = delay = after_evidence = None
    if not hits.empty:
        first = known[hits.index[0]]
        caught_at = utc_text(first)
        delay = round(max(0.0, (first - start).total_seconds() / 60), 2)
        if first_seen is not None:
            after_evidence = round(max(0.0, (first - first_seen).total_seconds() / 60), 2)
    tier = severity.tier_for(label["flow"], "", target).name
    return IncidentVerdict(
        label["kind"],
        label["flow"],
        target,
        tier,
        label["start"],
        label["end"],
        caught_at,
        delay,
        round(deadline.total_seconds() / 60, 2),
        utc_text(first_seen) if first_seen is not None else None,
        after_evidence,
        len(keys),
        early,
    )


def _effects_from(label: dict[str, Any]) -> pd.Timestamp:
    """When the incident's effects begin: a latency drift's at its fault's start (smaller
    than one posting shows before its label starts), every other kind's at its label's."""
    if label["kind"] == ERP_LATENCY_DRIFT and label.get("fault_start"):
        return min(_utc(label["fault_start"]), _utc(label["start"]))
    return _utc(label["start"])


def _first_evidence(
    store: Store, keys: list[str], start: pd.Timestamp, early_until: pd.Timestamp
) -> tuple[pd.Timestamp | None, str, int]:
    """The first span of an affected key at or after ``start``, the keys' pattern, and how
    many affected keys show their first span (at or after ``start``) before ``early_until``."""
    if not keys:
        return None, "", 0
    rows = store.query_rows(
        "SELECT toUnixTimestamp64Milli(min(first)), anyIf(pattern, pattern != ''), "
        "countIf(first < {early:DateTime64(3)}) FROM ("
        "SELECT lookup_key, min(Timestamp) AS first, anyIf(pattern, pattern != '') AS pattern "
        f"FROM {store.table(LINEAGE_TABLE)} "
        "WHERE lookup_key IN (SELECT arrayJoin(splitByChar(',', {keys:String}))) "
        "AND Timestamp >= {start:DateTime64(3)} GROUP BY lookup_key)",
        {
            "keys": ",".join(keys),
            "start": _sql_time(start),
            "early": _sql_time(early_until),
        },
    )
    millis, pattern, early = rows[0] if rows else (None, "", 0)
    if not millis:
        return None, str(pattern or ""), 0
    return pd.Timestamp(int(millis), unit="ms", tz=UTC), str(pattern or ""), int(early)


def _sql_time(stamp: pd.Timestamp) -> str:
    return stamp.tz_convert(None).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _false_alerts(
    alerts: pd.DataFrame, labels: list[dict[str, Any]], sim_end: pd.Timestamp
) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for row in alerts.itertuples():
        opened = _stamp(row.opened_at)
        closed = _stamp(row.resolved_at) if row.state == "resolved" else sim_end
        related = any(
            label["flow"] == row.flow
            and opened <= _utc(label["end"]) + GRACE
            and closed >= _effects_from(label)
            for label in labels
        )
        if not related:
            counts[row.flow] += 1
    return dict(counts)


def _stamp(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def _utc(text: str) -> pd.Timestamp:
    return (
        pd.Timestamp(text).tz_convert(UTC)
        if pd.Timestamp(text).tzinfo
        else pd.Timestamp(text, tz=UTC)
    )


def simulate_and_judge(
    severity: Severity,
    days: float,
    seed: int,
    start: datetime = DEFAULT_START,
    work_dir: Path | None = None,
    incident_plan: list[Any] | None = None,
    restart_every: timedelta | None = None,
) -> Judgement:
    """Simulate ``days`` into a fresh embedded store in ``work_dir`` (a temporary one by default),
    then judge the detectors on it. ``incident_plan`` (``PlannedIncident`` items) replaces the
    seeded incident schedule. With ``restart_every``, the alerts of a runner restarted that
    often are compared with those of the run judged (:mod:`detectors.restart_judge`)."""
    from collector.service import Collector
    from sample_data.simulator import SimulationConfig, run
    from seamwatch.settings import Settings
    from storage import open_store

    with tempfile.TemporaryDirectory(prefix="seamwatch-judge-") as scratch:
        folder = Path(work_dir or scratch)
        settings = Settings(
            data_dir=folder, otlp_http_host="127.0.0.1", otlp_http_port=0, otlp_grpc_port=-1
        )
        store = open_store(settings)
        try:
            collector = Collector(store, settings)
            collector.start()
            labels_path = folder / "labels.jsonl"
            labels_path.unlink(missing_ok=True)
            try:
                summary = run(
                    SimulationConfig(
                        endpoint=collector.endpoint,
                        seed=seed,
                        start=start,
                        duration=timedelta(days=days),
                        speed=math.inf,
                        labels_path=labels_path,
                        incident_plan=incident_plan,
                    )
                )
            finally:
                collector.stop()
            judgement = judge(store, read_labels(labels_path), severity, start, summary.sim_end)
            if restart_every is not None:
                judgement.restarted = compare_restarted(
                    store, start, summary.sim_end, restart_every, severity
                )
            return judgement
        finally:
            store.close()


def format_judgement(judgement: Judgement) -> str:
    """The judgement as a few lines a person reads: per kind, per flow, per incident."""
    summary = judgement.as_dict()
    weeks = judgement.simulated_days / 7.0
    lines = [
        f"Simulated {judgement.simulated_days:g} day(s): {summary['incidents']} incidents, "
        f"{summary['caught']} caught, {summary['caught_in_time']} in time; critical "
        f"{summary['critical_caught_in_time']}/{summary['critical_incidents']} in time.",
        *_evidence_lines(summary["critical_by_evidence"]),
        "",
        f"{'kind':<22}{'injected':>9}{'caught':>8}{'in time':>9}"
        f"{'median delay':>14}{'after evidence':>16}",
    ]
    for kind, row in summary["by_kind"].items():
        lines.append(
            f"{kind:<22}{row['injected']:>9}{row['caught']:>8}{row['caught_in_time']:>9}"
            f"{_minutes(row['median_delay_minutes']):>14}"
            f"{_minutes(row['median_delay_after_evidence_minutes']):>16}"
        )
    lines += ["", f"{'flow':<32}{'alerts':>7}{'false':>7}{'false/week':>12}"]
    flows = sorted(set(judgement.alerts_by_flow) | set(judgement.false_alerts))
    for flow in flows:
        false = judgement.false_alerts.get(flow, 0)
        per_week = false / weeks if weeks > 0 else math.nan
        lines.append(
            f"{flow:<32}{judgement.alerts_by_flow.get(flow, 0):>7}{false:>7}{per_week:>12.2f}"
        )
    lines += [
        f"Alerts opened: {summary['alerts_opened']}; worst flow "
        f"{summary['max_false_alerts_per_flow_week']} false alerts per week.",
        _verdict_line(judgement),
        *(judgement.restarted.lines() if judgement.restarted else []),
        "",
    ]
    # labels are written as incidents end: a short one that began later can come first
    for verdict in sorted(judgement.incidents, key=lambda verdict: _utc(verdict.start)):
        if verdict.delay_minutes is None:
            caught = "missed"
        else:
            caught = f"caught after {verdict.delay_minutes:.2f} min" + (
                f" (in time, deadline {verdict.deadline_minutes:g})"
                if verdict.caught_in_time
                else f" (deadline {verdict.deadline_minutes:g})"
            )
        evidence = ""
        if verdict.first_evidence:
            lead = (_utc(verdict.first_evidence) - _utc(verdict.start)).total_seconds() / 60
            evidence = (
                f", first evidence at +{lead:.2f} min, "
                f"{verdict.affected_within_deadline} affected in the first "
                f"{CAUGHT_WITHIN.total_seconds() / 60:g} min"
            )
        lines.append(
            f"  {verdict.start[:16]}  {verdict.kind:<20} {verdict.flow:<28} {verdict.tier:<9} "
            f"{caught}{evidence}"
        )
        if verdict.evidence is not None and not verdict.caught_in_time:
            lines.append(f"      showed {verdict.evidence}; {_as_often(verdict)}")
    return "\n".join(lines)


def _as_often(verdict: IncidentVerdict) -> str:
    if not verdict.clean_days:
        return "no clean traffic of the flow to compare with"
    return (
        f"the flow's clean traffic showed as much {verdict.lookalikes} time(s) in "
        f"{verdict.clean_days:.1f} day(s)"
    )


def _evidence_lines(groups: dict[str, dict[str, int]]) -> list[str]:
    """Critical incidents in time, apart by the affected transactions of their first minutes."""
    if not any(group["incidents"] for group in groups.values()):
        return []
    within = f"{CAUGHT_WITHIN.total_seconds() / 60:g}"
    ample, sparse = groups[AMPLE_EVIDENCE], groups[SPARSE_EVIDENCE]
    return [
        f"Of the critical ones, {ample['caught_in_time']}/{ample['incidents']} in time with two "
        f"or more affected transactions in their first {within} min, "
        f"{sparse['caught_in_time']}/{sparse['incidents']} with one or none (a single failure or "
        "slow posting is also an ordinary day's)."
    ]


def _verdict_line(judgement: Judgement) -> str:
    """Whether the objectives are met; with no incident injected there is nothing to judge."""
    if judgement.incidents:
        return f"Objectives {'met' if judgement.passed else 'not met'}."
    return (
        f"No incident was injected in {judgement.simulated_days:g} simulated day(s); nothing "
        f"to judge: run at least {MIN_JUDGED_DAYS:g} day (--days {MIN_JUDGED_DAYS:g}), which "
        f"injects {MIN_DAILY_INCIDENTS} to {MAX_DAILY_INCIDENTS} incidents after the run's "
        f"first {QUIET_START.total_seconds() / 3600:g} hours."
    )


def _minutes(value: float | None) -> str:
    # two decimals throughout: a delay of 4.96 must not read as the 5-minute deadline
    return "-" if value is None else f"{value:.2f} min"
