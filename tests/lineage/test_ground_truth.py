"""Judged against the simulator: every injected loss is found, and nothing on a clean run.

The simulator sends real OTLP spans to an in-process collector; reconciliation then reads only
the lineage index. Incidents end at least an hour before the run does, so each affected
transaction is past its flow's objective when reconciliation judges it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from collector.service import Collector
from detectors.simulator_judge import read_labels
from lineage.reconcile import reconcile
from sample_data import incidents as inc
from sample_data.simulator import SimulationConfig, run
from seamwatch.settings import Settings

pytestmark = pytest.mark.slow

START = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
DURATION = timedelta(hours=2, minutes=30)
INJECTED_KINDS = {
    inc.DROPPED_EVENTS: "dropped",
    inc.DUPLICATE_POSTINGS: "duplicate",
    inc.MISSING_MASTER_DATA: "master_data_missing",
}


def minutes(offset: int) -> datetime:
    return START + timedelta(minutes=offset)


PLAN = [
    inc.PlannedIncident(inc.DROPPED_EVENTS, "billing.invoice-post", minutes(30), minutes(70)),
    inc.PlannedIncident(inc.DUPLICATE_POSTINGS, "payments.payment-apply", minutes(30), minutes(70)),
    inc.PlannedIncident(
        inc.MISSING_MASTER_DATA, "order-to-cash.order-submit", minutes(40), minutes(80)
    ),
    inc.PlannedIncident(inc.DROPPED_EVENTS, "payments.payment-apply", minutes(75), minutes(90)),
    inc.PlannedIncident(inc.MISSING_MASTER_DATA, "billing.invoice-post", minutes(60), minutes(85)),
]


def simulate(store, tmp_path, plan):
    settings = Settings(
        data_dir=tmp_path, otlp_http_port=0, otlp_grpc_port=-1, batch_flush_interval_millis=20
    )
    labels = tmp_path / "labels.jsonl"
    collector = Collector(store, settings)
    collector.start()
    try:
        run(
            SimulationConfig(
                endpoint=collector.endpoint,
                seed=7,
                start=START,
                duration=DURATION,
                speed=math.inf,
                labels_path=labels,
                incidents=plan is not None,
                incident_plan=plan,
            )
        )
    finally:
        collector.stop()
    return read_labels(labels)


def found_keys(document, kind, flow=None):
    return {
        finding["business_key"]
        for finding in document["findings"]
        if finding["kind"] == kind and flow in (None, finding["flow"])
    }


def test_every_injected_loss_is_found_and_nothing_else_of_its_kind(store, tmp_path):
    labels = simulate(store, tmp_path, PLAN)

    document = reconcile(store, START, START + DURATION)

    assert len(labels) == len(PLAN)
    expected: dict[str, set[str]] = {kind: set() for kind in INJECTED_KINDS.values()}
    for label in labels:
        kind = INJECTED_KINDS[label["kind"]]
        affected = set(label["affected_keys"])
        assert affected, f"{label['kind']} on {label['flow']} affected no transaction"
        assert affected <= found_keys(document, kind, label["flow"])
        expected[kind] |= affected
    for kind, keys in expected.items():
        assert found_keys(document, kind) == keys


def test_a_clean_run_has_no_dropped_duplicate_or_master_data_findings(store, tmp_path):
    labels = simulate(store, tmp_path, None)

    document = reconcile(store, START, START + DURATION)

    assert labels == []
    assert document["transactions"] > 1000
    assert {kind: document["counts"][kind] for kind in INJECTED_KINDS.values()} == {
        "dropped": 0,
        "duplicate": 0,
        "master_data_missing": 0,
    }
    assert document["counts"]["stuck"] == 0
