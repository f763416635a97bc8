"""Judging the detector runner on the simulator's injected incidents.

The simulator plays the SaaS-to-ERP stack as fast as it can into a collector in this process,
and writes one label per injected incident (kind, flow, target, start, end). The runner then
evaluates the stored minutes in catch-up mode, exactly as after downtime, and its alert events
are compared with the labels:

* an incident is caught when an alert of its flow and target opens, escalates or peaks between
  its start and its end; the delay counts from the incident's start to the end of the minute
  that raised the alert (when the runner could first have known);
* the objective is every incident on a critical flow caught within 5 simulated minutes;
* an alert that opens outside every incident of its flow (up to ``RECOVERY_TAIL`` after its end,
  while replays drain) is a false alert; the objective is at most one per flow per simulated
  week.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from detectors.lifecycle import EVENTS_TABLE
from detectors.runner import DetectorRunner
from detectors.severity import Severity
from storage import Store

logger = logging.getLogger(__name__)

CAUGHT_WITHIN = timedelta(minutes=5)
RECOVERY_TAIL = timedelta(minutes=30)
CRITICAL = "critical"
JUDGE_RUNNER = "simulator-judge"
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

    @property
    def caught_in_time(self) -> bool:
        """Caught within the objective (5 simulated minutes)."""
        limit = CAUGHT_WITHIN.total_seconds() / 60
        return self.delay_minutes is not None and self.delay_minutes <= limit


@dataclass
class Judgement:
    """The verdicts of one simulated run."""

    simulated_days: float
    incidents: list[IncidentVerdict] = field(default_factory=list)
    false_alerts: dict[str, int] = field(default_factory=dict)
    alerts_opened: int = 0

    @property
    def critical(self) -> list[IncidentVerdict]:
        """Verdicts of incidents on critical flows."""
        return [verdict for verdict in self.incidents if verdict.tier == CRITICAL]

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
        return critical_ok and self.max_false_alerts_per_flow_week <= 1.0

    def as_dict(self) -> dict[str, Any]:
        """Plain form for JSON output."""
        critical = self.critical
        return {
            "simulated_days": self.simulated_days,
            "incidents": len(self.incidents),
            "caught": sum(1 for v in self.incidents if v.delay_minutes is not None),
            "caught_within_5_minutes": sum(1 for v in self.incidents if v.caught_in_time),
            "critical_incidents": len(critical),
            "critical_caught_within_5_minutes": sum(1 for v in critical if v.caught_in_time),
            "alerts_opened": self.alerts_opened,
            "false_alerts_by_flow": dict(sorted(self.false_alerts.items())),
            "max_false_alerts_per_flow_week": round(self.max_false_alerts_per_flow_week, 2),
            "passed": self.passed,
            "verdicts": [asdict(v) for v in self.incidents],
        }


def read_labels(path: Path) -> list[dict[str, Any]]:
    """The incident labels written by the simulator (JSON lines)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def judge(
    store: Store,
    labels: list[dict[str, Any]],
    severity: Severity,
    sim_start: datetime,
    sim_end: datetime,
) -> Judgement:
    """Run the detectors over the stored minutes and compare their alerts with ``labels``."""
    DetectorRunner(store, name=JUDGE_RUNNER).catch_up(sim_end)
    events = store.query_df(
        f"SELECT e.alert_id, e.at, e.event, a.flow, a.target "
        f"FROM {store.table(EVENTS_TABLE)} AS e FINAL "
        f"INNER JOIN (SELECT alert_id, flow, target FROM {store.table('alerts')} FINAL) AS a "
        "ON e.alert_id = a.alert_id WHERE e.event IN ('opened', 'escalated', 'peaked') "
        "ORDER BY e.at"
    )
    events["at"] = pd.to_datetime(events["at"], utc=True)
    judgement = Judgement((sim_end - sim_start) / timedelta(days=1))
    for label in labels:
        judgement.incidents.append(_verdict(label, events, severity))
    opened = events[events["event"] == "opened"]
    judgement.alerts_opened = len(opened)
    judgement.false_alerts = _false_alerts(opened, labels)
    return judgement


def _verdict(label: dict[str, Any], events: pd.DataFrame, severity: Severity) -> IncidentVerdict:
    start, end = _utc(label["start"]), _utc(label["end"])
    target = label.get("target", "")
    # an event stamped with a minute is known at the end of that minute
    known = events["at"] + pd.Timedelta(minutes=1)
    hits = events[
        (events["flow"] == label["flow"])
        & (events["target"] == target)
        & (known >= start)
        & (events["at"] <= end)
    ]
    caught_at = delay = None
    if not hits.empty:
        first = known[hits.index[0]]
        caught_at = first.isoformat()
        delay = round(max(0.0, (first - start).total_seconds() / 60), 2)
    tier = severity.tier_for(label["flow"], "", target).name
    return IncidentVerdict(
        label["kind"], label["flow"], target, tier, label["start"], label["end"], caught_at, delay
    )


def _false_alerts(opened: pd.DataFrame, labels: list[dict[str, Any]]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for row in opened.itertuples():
        related = any(
            label["flow"] == row.flow
            and _utc(label["start"]) - timedelta(minutes=1) <= row.at
            and row.at <= _utc(label["end"]) + RECOVERY_TAIL
            for label in labels
        )
        if not related:
            counts[row.flow] += 1
    return dict(counts)


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
) -> Judgement:
    """Simulate ``days`` into a fresh embedded store in ``work_dir`` (a temporary one by default),
    then judge the detectors on it."""
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
                    )
                )
            finally:
                collector.stop()
            return judge(store, read_labels(labels_path), severity, start, summary.sim_end)
        finally:
            store.close()


def format_judgement(judgement: Judgement) -> str:
    """The judgement as a few lines a person reads, one per incident."""
    summary = judgement.as_dict()
    lines = [
        f"Simulated {judgement.simulated_days:g} day(s): {summary['incidents']} incidents, "
        f"{summary['caught']} caught, {summary['caught_within_5_minutes']} within 5 minutes; "
        f"critical {summary['critical_caught_within_5_minutes']}/"
        f"{summary['critical_incidents']} within 5 minutes.",
        f"Alerts opened: {summary['alerts_opened']}; false alerts by flow: "
        f"{summary['false_alerts_by_flow'] or 'none'} "
        f"(worst {summary['max_false_alerts_per_flow_week']} per flow-week).",
        f"Objectives {'met' if judgement.passed else 'not met'}.",
    ]
    for verdict in judgement.incidents:
        caught = (
            f"caught after {verdict.delay_minutes:g} min"
            if verdict.delay_minutes is not None
            else "missed"
        )
        lines.append(
            f"  {verdict.start[:16]}  {verdict.kind:<20} {verdict.flow:<30} {verdict.tier:<9} "
            + caught
        )
    return "\n".join(lines)
