"""Injected incidents: labels written, effects visible in the spans, seeded schedule."""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from sample_data import incidents as inc
from sample_data.flows import NOTICEABLE_DRIFT, IncidentBook
from sample_data.incidents import PlannedIncident
from sample_data.world import Item

from .conftest import MONDAY, simulate_in_memory

START = MONDAY.replace(hour=9)
PLAN = [
    PlannedIncident(
        "erp_latency_drift",
        "order-to-cash.order-submit",
        START + timedelta(minutes=20),
        START + timedelta(minutes=80),
        40.0,
    ),
    PlannedIncident(
        "mapping_error_burst",
        "billing.invoice-post",
        START + timedelta(minutes=20),
        START + timedelta(minutes=80),
        0.08,
    ),
    PlannedIncident(
        "dropped_events",
        "payments.payment-apply",
        START + timedelta(minutes=30),
        START + timedelta(minutes=90),
        0.4,
    ),
    PlannedIncident(
        "duplicate_postings",
        "billing.invoice-post",
        START + timedelta(minutes=100),
        START + timedelta(minutes=140),
        0.3,
    ),
    PlannedIncident(
        "missing_master_data",
        "order-to-cash.order-submit",
        START + timedelta(minutes=90),
        START + timedelta(minutes=150),
        0.3,
    ),
]


# the simulator's log lines of ``incident_run``
RUN_LOG: list[str] = []


@pytest.fixture(scope="module")
def incident_run(tmp_path_factory):
    labels = tmp_path_factory.mktemp("labels") / "labels.jsonl"
    log = _LogLines()
    simulator_log = logging.getLogger("sample_data")
    simulator_log.addHandler(log)
    simulator_log.setLevel(logging.INFO)
    try:
        summary, spans = simulate_in_memory(
            start=START,
            duration=timedelta(hours=3, minutes=30),
            incidents=True,
            incident_plan=PLAN,
            labels_path=labels,
        )
    finally:
        simulator_log.removeHandler(log)
    records = [json.loads(line) for line in labels.read_text().splitlines()]
    RUN_LOG[:] = log.lines
    return summary, spans, {record["kind"]: record for record in records}


class _LogLines(logging.Handler):
    """Keeps the formatted messages of a logger."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def erp_posts(spans, flow):
    """ERP server spans of ``flow`` that created the document (HTTP 201)."""
    return [
        s
        for s in spans
        if s.resource.attributes["service.name"] == "erp"
        and s.kind is SpanKind.SERVER
        and s.attributes["integration.flow"] == flow
        and s.attributes.get("http.response.status_code") == 201
    ]


def test_every_incident_is_labelled(incident_run):
    summary, _, labels = incident_run
    assert set(labels) == set(inc.KINDS)
    assert len(summary.incidents) == len(PLAN)
    for planned in PLAN:
        record = labels[planned.kind]
        assert set(record) == {
            "kind",
            "flow",
            "target",
            "start",
            "fault_start",
            "end",
            "affected_keys",
            "description",
        }
        assert record["flow"] == planned.flow and record["target"] == "erp"
        fault_start = datetime.fromisoformat(record["fault_start"].replace("Z", "+00:00"))
        assert fault_start == planned.start
        # the label starts when the fault is first exercised, inside the fault's window
        start = datetime.fromisoformat(record["start"].replace("Z", "+00:00"))
        assert planned.start <= start < planned.end
        assert record["end"].endswith("Z")
        assert record["affected_keys"], planned.kind
        assert record["description"]


def test_labels_start_at_the_first_affected_transaction(incident_run):
    _, spans, labels = incident_run
    for kind, record in labels.items():
        start = datetime.fromisoformat(record["start"].replace("Z", "+00:00")).timestamp() * 1e9
        affected = set(record["affected_keys"])
        times = [
            t
            for s in spans
            if s.attributes.get("business.key") in affected
            for t in (s.start_time, s.end_time)
        ]
        # a span of an affected transaction is under way when the label starts
        assert min(abs(t - start) for t in times) < 2e9, kind


def test_the_log_gives_each_incident_the_start_its_label_has(incident_run):
    # the log once said an incident "begins at" its fault's start, 40 minutes before the
    # first transaction it affected, where its label starts
    _, _, labels = incident_run
    for kind, record in labels.items():
        labelled = [line for line in RUN_LOG if line.startswith(f"Incident {kind} ")]
        assert len(labelled) == 1
        assert labelled[0].startswith(f"Incident {kind} on {record['flow']} labelled in ")
        assert labelled[0].endswith(
            f": {len(record['affected_keys'])} transaction(s) affected from {record['start']} "
            f"to {record['end']}"
        )
        put_in_place = f"Fault {kind} put in place on {record['flow']} at {record['fault_start']}"
        assert any(line.startswith(put_in_place) for line in RUN_LOG), kind


def test_duplicate_postings_post_the_same_key_twice(incident_run):
    _, spans, labels = incident_run
    posts = Counter(s.attributes["business.key"] for s in erp_posts(spans, "billing.invoice-post"))
    affected = labels["duplicate_postings"]["affected_keys"]
    assert len(affected) >= 5
    assert all(posts[key] == 2 for key in affected)
    assert sum(1 for count in posts.values() if count > 1) == len(affected)


def test_duplicate_postings_start_at_the_first_second_posting(incident_run):
    # the label started when the event was first consumed, up to 5 minutes before the
    # redelivery posted it again, so a duplicate alerted 0.4 minutes after it was 5.1 late
    _, spans, labels = incident_run
    label = labels["duplicate_postings"]
    affected = set(label["affected_keys"])
    by_key = defaultdict(list)
    for span in erp_posts(spans, "billing.invoice-post"):
        if span.attributes["business.key"] in affected:
            by_key[span.attributes["business.key"]].append(span.start_time)
    first_second_posting = min(sorted(times)[1] for times in by_key.values())
    started = datetime.fromisoformat(label["start"].replace("Z", "+00:00"))
    assert abs(started.timestamp() * 1e9 - first_second_posting) < 1e9


def test_dropped_events_are_published_but_never_consumed(incident_run):
    _, spans, labels = incident_run
    affected = set(labels["dropped_events"]["affected_keys"])
    assert len(affected) >= 5
    kinds_by_key = defaultdict(set)
    for span in spans:
        if span.attributes["business.key"] in affected:
            kinds_by_key[span.attributes["business.key"]].add(span.kind)
    for key in affected:
        assert SpanKind.PRODUCER in kinds_by_key[key]
        assert SpanKind.CONSUMER not in kinds_by_key[key]
    assert (
        not {s.attributes["business.key"] for s in erp_posts(spans, "payments.payment-apply")}
        & affected
    )


def test_mapping_burst_breaks_one_code_for_a_share_of_the_flow(incident_run):
    _, spans, labels = incident_run
    record = labels["mapping_error_burst"]
    start, end = (PLAN[1].start.timestamp() * 1e9, PLAN[1].end.timestamp() * 1e9)
    in_window = [
        s
        for s in spans
        if s.name == "mapping.v1.CanonicalMapper/MapInvoice"
        and s.kind is SpanKind.SERVER
        and start <= s.start_time < end
        and not s.attributes.get("integration.replay")
    ]
    rejected = [s for s in in_window if s.status.status_code is StatusCode.ERROR]
    assert all(s.attributes["integration.exception.category"] == "mapping" for s in rejected)
    assert 0.02 <= len(rejected) / len(in_window) <= 0.16
    # one code lost its mapping: every rejection names the same one
    burst = [s for s in rejected if s.attributes["business.key"] in set(record["affected_keys"])]
    details = {s.status.description.split(": ", 1)[1] for s in burst}
    assert len(burst) >= 3 and len(details) == 1
    assert {s.attributes["business.key"] for s in rejected} >= set(record["affected_keys"]) - {
        s.attributes["business.key"] for s in spans if s.attributes.get("integration.replay")
    }
    replayed = {
        s.attributes["business.key"] for s in spans if s.attributes.get("integration.replay")
    }
    assert set(record["affected_keys"]) <= replayed  # parked, then replayed after the fix


def test_missing_master_data_fails_then_recovers(incident_run):
    _, spans, labels = incident_run
    affected = set(labels["missing_master_data"]["affected_keys"])
    assert len(affected) >= 3
    failed = {
        s.attributes["business.key"]
        for s in spans
        if s.attributes.get("integration.exception.category") == "master_data_missing"
    }
    assert affected == failed
    recovered = {
        s.attributes["business.key"]
        for s in erp_posts(spans, "order-to-cash.order-submit")
        if s.attributes.get("integration.replay")
    }
    assert affected <= recovered


def test_latency_drift_ramps_up_until_timeouts(incident_run):
    _, spans, labels = incident_run
    plan = PLAN[0]
    start, end = plan.start.timestamp() * 1e9, plan.end.timestamp() * 1e9
    posts = [
        s
        for s in spans
        if s.resource.attributes["service.name"] == "erp"
        and s.kind is SpanKind.SERVER
        and s.attributes["integration.flow"] == plan.flow
    ]
    before = sorted(s.end_time - s.start_time for s in posts if s.start_time < start)
    late = [s for s in posts if start + 0.75 * (end - start) <= s.start_time < end]
    late_durations = sorted(s.end_time - s.start_time for s in late)
    assert late_durations[len(late_durations) // 2] > 10 * before[len(before) // 2]
    timeouts = [
        s
        for s in spans
        if s.kind is SpanKind.CLIENT
        and s.attributes["integration.flow"] == plan.flow
        and s.attributes.get("integration.exception.category") == "timeout"
    ]
    assert len(timeouts) >= 3
    assert all(s.status.status_code is StatusCode.ERROR for s in timeouts)
    assert labels["erp_latency_drift"]["affected_keys"]


def test_latency_drift_starts_when_postings_leave_the_normal_spread(incident_run):
    """At 1.5x a drifted posting is no slower than one normal posting in five: the label
    starts once a typical posting is slower than 99 in 100 normal ones."""
    _, _, labels = incident_run
    plan = PLAN[0]
    label = labels["erp_latency_drift"]
    noticeable_after = (NOTICEABLE_DRIFT - 1) / (plan.intensity - 1) * (plan.end - plan.start)
    assert pytest.approx(3.2, abs=0.01) == NOTICEABLE_DRIFT
    assert label["fault_start"] == inc.iso_utc(int(plan.start.timestamp()) * 1_000_000_000)
    started = datetime.fromisoformat(label["start"].replace("Z", "+00:00"))
    assert (
        plan.start + noticeable_after
        <= started
        < plan.start + noticeable_after + timedelta(minutes=3)
    )


def test_seeded_schedule_is_deterministic_and_quiet_at_first():
    start_ns = int(START.timestamp()) * 1_000_000_000
    days = [inc.schedule_day(11, start_ns, day, None) for day in range(7)]
    again = [inc.schedule_day(11, start_ns, day, None) for day in range(7)]
    assert [[i.label() for i in day] for day in days] == [[i.label() for i in day] for day in again]
    assert all(1 <= len(day) <= 4 for day in days)
    quiet_until = start_ns + int(inc.QUIET_START.total_seconds() * 1e9)
    assert all(i.start_ns >= quiet_until for day in days for i in day)
    kinds = {i.kind for day in days for i in day}
    assert kinds == set(inc.KINDS)
    for day in days:
        for incident in day:
            assert incident.flow in inc.ELIGIBLE_FLOWS[incident.kind]


def test_disabled_incidents_write_one_line_saying_no_incident_happened(tmp_path):
    # the file was created empty, which reads as a run that never labelled anything
    labels = tmp_path / "labels.jsonl"
    start = START + timedelta(minutes=20)
    summary, _ = simulate_in_memory(
        incidents=False, incident_plan=PLAN, labels_path=labels, start=start
    )
    assert summary.incidents == []
    assert [json.loads(line) for line in labels.read_text().splitlines()] == [
        {
            "no_incident": True,
            "seed": 7,
            "start": inc.iso_utc(inc.to_ns(start)),
            "end": inc.iso_utc(inc.to_ns(start + timedelta(minutes=30))),
            "description": "No incident happened in this run of the simulator.",
        }
    ]


def test_the_labels_file_is_created_with_its_first_line(tmp_path):
    labels = tmp_path / "new" / "labels.jsonl"
    writer = inc.LabelWriter(labels)
    assert not labels.exists() and not labels.parent.exists()
    writer.close(0, 60_000_000_000, 7)
    assert json.loads(labels.read_text())["no_incident"] is True


@pytest.mark.parametrize(
    ("where", "problem"),
    [("a-file/labels.jsonl", "Not a directory"), (".", "Is a directory")],
)
def test_a_labels_path_that_cannot_be_written_is_refused_without_creating_anything(
    tmp_path, where, problem
):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match=f"Cannot write incident labels to .*: {problem}"):
        inc.check_labels_path(tmp_path / where)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file"]


def test_planned_incident_is_validated():
    with pytest.raises(ValueError, match="cannot hit"):
        PlannedIncident("duplicate_postings", "catalog.item-sync", START, START + timedelta(1))
    with pytest.raises(ValueError, match="unknown incident kind"):
        PlannedIncident("meteor", "billing.invoice-post", START, START + timedelta(1))


def test_an_item_that_never_reaches_the_erp_keeps_its_incident_going(tmp_path, monkeypatch):
    # the catch-up sync failed on a background 422 and the invoices' replays failed again
    # after the window: the detectors alerted on them and the judge counted false alerts
    monkeypatch.setattr("sample_data.flows.Stack.launch_item", lambda self, at_ns, item: None)
    labels = tmp_path / "labels.jsonl"
    window_end = START + timedelta(minutes=60)
    _, spans = simulate_in_memory(
        start=START,
        duration=timedelta(hours=3),
        incidents=True,
        incident_plan=[
            PlannedIncident(
                "missing_master_data",
                "billing.invoice-post",
                START + timedelta(minutes=10),
                window_end,
                0.3,
            )
        ],
        labels_path=labels,
    )
    (record,) = [json.loads(line) for line in labels.read_text().splitlines()]
    # the incident's invoices (no catalog item syncs here, so others fail too)
    failures = [
        s.start_time / 1e9
        for s in spans
        if s.attributes.get("integration.exception.category") == "master_data_missing"
        and s.kind is SpanKind.CLIENT
        and s.attributes["business.key"] in record["affected_keys"]
    ]
    end = datetime.fromisoformat(record["end"]).timestamp()
    assert max(failures) > window_end.timestamp() + 5 * 60  # replays failing after the window
    assert abs(end - max(failures)) < 1.0


def test_an_incident_settles_when_the_last_record_it_made_missing_arrives():
    book = IncidentBook()
    settled = []
    book.on_records_arrived = lambda incident, at_ns: settled.append((incident, at_ns))
    incident = inc.Incident("missing_master_data", "billing.invoice-post", 0, 10, 0.2)
    first, second = Item("SKU-1", 10.0, in_erp=False), Item("SKU-2", 10.0, in_erp=False)
    book.made_missing(incident, first)
    book.made_missing(incident, second)
    book.arrived(first, 20)
    assert book.awaits(incident) and not settled
    book.arrived(Item("SKU-3", 10.0, in_erp=True), 25)  # no incident's: nothing settles
    book.arrived(second, 30)
    assert not book.awaits(incident)
    assert settled == [(incident, 30)]
