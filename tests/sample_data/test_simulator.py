"""The simulator's spans: determinism, attributes, async links, seasonality, pacing."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sample_data.seasonality import load_factor
from sample_data.simulator import SimProgress, SimulationConfig, run, run_demo

from .conftest import MONDAY, simulate_in_memory
from .receiver import RecordingReceiver

REQUIRED = (
    "integration.flow",
    "integration.pattern",
    "integration.stage",
    "integration.source",
    "integration.target",
    "business.object",
    "business.key",
    "correlation.id",
)
PATTERNS = {"api", "event", "batch", "canonical"}
STAGES = {"receive", "validate", "transform", "enrich", "route", "post", "publish", "reconcile"}
CATEGORIES = {
    "mapping",
    "validation",
    "duplicate",
    "timeout",
    "rate_limit",
    "auth",
    "master_data_missing",
}


def fingerprint(span):
    return (
        span.context.trace_id,
        span.context.span_id,
        span.parent.span_id if span.parent else None,
        span.name,
        span.kind,
        span.start_time,
        span.end_time,
        span.resource.attributes["service.name"],
        tuple(sorted(span.attributes.items())),
        tuple((link.context.trace_id, link.context.span_id) for link in span.links),
        span.status.status_code,
    )


def test_same_seed_gives_same_spans_and_ids():
    _, first = simulate_in_memory(duration=timedelta(minutes=20))
    _, second = simulate_in_memory(duration=timedelta(minutes=20))
    assert len(first) > 500
    assert [fingerprint(s) for s in first] == [fingerprint(s) for s in second]


def test_another_seed_gives_other_spans():
    _, first = simulate_in_memory(duration=timedelta(minutes=10))
    _, other = simulate_in_memory(duration=timedelta(minutes=10), seed=8)
    assert {s.context.trace_id for s in first}.isdisjoint({s.context.trace_id for s in other})


def test_every_span_carries_integration_attributes(business_hour):
    _, spans = business_hour
    for span in spans:
        missing = [key for key in REQUIRED if key not in span.attributes]
        assert not missing, (span.name, missing)
        assert span.attributes["integration.pattern"] in PATTERNS
        assert span.attributes["integration.stage"] in STAGES
    flows = Counter(span.attributes["integration.flow"] for span in spans)
    for flow in (
        "customer.onboarding",
        "order-to-cash.order-submit",
        "billing.subscription-activate",
        "billing.invoice-post",
        "usage.usage-post",
        "payments.payment-apply",
        "support.health-signal",
    ):
        assert flows[flow] > 0, flow
    money = [s for s in spans if s.attributes["integration.flow"] == "billing.invoice-post"]
    assert all(s.attributes["business.amount"] > 0 for s in money)
    assert all(s.attributes["business.currency"] in ("USD", "EUR", "GBP") for s in money)


def test_resources_and_standard_attributes(business_hour):
    _, spans = business_hour
    services = {s.resource.attributes["service.name"] for s in spans}
    assert {
        "crm",
        "cpq",
        "billing",
        "payments",
        "support",
        "integration-api",
        "event-router",
        "canonical-mapper",
        "erp",
    } <= services
    for span in spans:
        resource = span.resource.attributes
        assert resource["deployment.environment"] == "production"
        assert resource["service.namespace"] in ("saas", "middleware", "erp")
        attrs = span.attributes
        if span.kind is SpanKind.SERVER and "rpc.system" not in attrs:
            assert "http.route" in attrs and "http.request.method" in attrs, span.name
            assert "http.response.status_code" in attrs, span.name
        if span.kind is SpanKind.CLIENT:
            assert "server.address" in attrs and "peer.service" in attrs, span.name
        if span.kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
            assert attrs["messaging.system"] == "kafka"
            assert "messaging.destination.name" in attrs
            assert attrs["messaging.operation.type"] in ("send", "process")
    assert any(s.attributes.get("rpc.system") == "grpc" for s in spans)


def test_failures_have_status_category_and_exception_event(business_hour):
    _, spans = business_hour
    failed = [s for s in spans if s.status.status_code is StatusCode.ERROR]
    assert failed, "a busy hour has some background failures"
    for span in failed:
        assert span.status.description
        assert span.attributes["integration.exception.category"] in CATEGORIES
        assert any(event.name == "exception" for event in span.events)


def test_async_hops_link_producer_spans_and_share_correlation(business_hour):
    _, spans = business_hour
    by_id = {s.context.span_id: s for s in spans}
    consumers = [s for s in spans if s.kind is SpanKind.CONSUMER]
    assert len(consumers) > 100
    for consumer in consumers:
        assert len(consumer.links) == 1, consumer.name
        producer = by_id.get(consumer.links[0].context.span_id)
        if producer is None:  # produced before the window began
            continue
        assert producer.kind is SpanKind.PRODUCER
        assert producer.context.trace_id != consumer.context.trace_id
        assert producer.attributes["correlation.id"] == consumer.attributes["correlation.id"]
        assert producer.end_time <= consumer.start_time


def test_one_transaction_spans_several_traces(business_hour):
    _, spans = business_hour
    traces: dict[str, set[int]] = {}
    for span in spans:
        if span.attributes["integration.flow"] == "payments.payment-apply":
            key = span.attributes["business.key"]
            traces.setdefault(key, set()).add(span.context.trace_id)
    assert max(len(ids) for ids in traces.values()) >= 2


def test_order_submission_answers_accepted_rejected_or_pending(business_hour):
    _, spans = business_hour
    answers = Counter(
        s.attributes["integration.outcome"]
        for s in spans
        if s.name == "POST /v1/sales-orders" and s.kind is SpanKind.SERVER
    )
    assert answers["accepted"] > 50
    assert set(answers) <= {"accepted", "rejected", "pending"}


def test_span_kinds_and_timestamps_follow_simulated_time(business_hour):
    summary, spans = business_hour
    kinds = {s.kind for s in spans}
    assert kinds == set(SpanKind)
    start_ns = int(summary.sim_start.timestamp() * 1e9)
    assert min(s.start_time for s in spans) >= start_ns
    assert all(s.end_time >= s.start_time for s in spans)


def test_business_hours_are_busier_than_night_and_weekend():
    weekday_peak = load_factor(MONDAY.replace(hour=14), 0.05, 0.2)
    night = load_factor(MONDAY.replace(hour=3), 0.05, 0.2)
    sunday_peak = load_factor(MONDAY.replace(day=9, hour=14), 0.05, 0.2)
    assert weekday_peak > 5 * night
    assert weekday_peak > 3 * sunday_peak
    peak, _ = simulate_in_memory(start=MONDAY.replace(hour=14), duration=timedelta(minutes=30))
    quiet, _ = simulate_in_memory(start=MONDAY.replace(hour=3), duration=timedelta(minutes=30))
    assert peak.transactions > 2 * quiet.transactions
    assert peak.spans_emitted > 2 * quiet.spans_emitted


def test_fast_backfill_to_a_receiver_drops_nothing():
    with RecordingReceiver(reject_first=2) as receiver:
        config = SimulationConfig(
            endpoint=receiver.endpoint,
            seed=3,
            start=MONDAY.replace(hour=10),
            duration=timedelta(hours=1),
            incidents=False,
        )
        from sample_data.simulator import run

        summary = run(config)
        assert receiver.rejected == 2  # answered 503 twice; the exporter retried
        assert summary.spans_failed == 0
        assert summary.spans_exported == summary.spans_emitted == receiver.span_count
        ids = [span.span_id for _, span in receiver.spans()]
        assert len(ids) == len(set(ids)) == summary.spans_emitted


def test_speed_paces_simulated_time():
    began = time.monotonic()
    simulate_in_memory(duration=timedelta(minutes=5), speed=600.0)
    assert time.monotonic() - began >= 0.45  # 300 simulated seconds at 600x


def test_demo_backfills_then_follows_the_wall_clock_and_flushes_on_stop():
    stop = threading.Event()
    seen: list[SimProgress] = []

    def progress(state: SimProgress) -> None:
        seen.append(state)

    timer = threading.Timer(2.0, stop.set)
    with RecordingReceiver(keep_requests=False) as receiver:
        timer.start()
        summary = run_demo(receiver.endpoint, 5, timedelta(minutes=20), stop, None, progress)
        timer.cancel()
        assert summary.spans_emitted > 100
        assert receiver.span_count == summary.spans_exported == summary.spans_emitted
    assert abs(summary.sim_end.timestamp() - time.time()) < 5


def test_demo_resumes_after_stored_history_with_ids_of_its_own():
    stop = threading.Event()
    resume_from = datetime.now(UTC) - timedelta(minutes=30)
    timer = threading.Timer(2.0, stop.set)
    with RecordingReceiver(keep_requests=False) as receiver:
        timer.start()
        summary = run_demo(
            receiver.endpoint,
            5,
            timedelta(days=7),
            stop,
            None,
            resume_from=resume_from,
            run_number=3,
        )
        timer.cancel()
    assert abs((summary.sim_start - resume_from).total_seconds()) < 1
    assert summary.spans_emitted > 0


def test_run_numbers_keep_keys_apart():
    from sample_data.world import World

    assert World(random.Random(1)).next_key("SO", 100001) == "SO-100001"
    assert World(random.Random(1), run=2).next_key("SO", 100001) == "SO-R2-100001"
    assert World(random.Random(1), run=2).key("RECON", "2025-03-03-US") == "RECON-R2-2025-03-03-US"


def test_a_replayed_item_sync_or_onboarding_puts_the_record_in_the_erp():
    # a replay that posted left the item missing, so its invoices failed for hours after
    from sample_data.flows import ITEM_SYNC, ONBOARDING, IncidentBook, Stack
    from sample_data.world import Transaction, World

    rng = random.Random(3)
    world = World(rng)
    stack = Stack({}, rng, world, None, IncidentBook())  # type: ignore[arg-type]
    item = world.new_item(in_erp=False)
    customer = world.new_customer(in_erp=False)
    stack.posted(0, Transaction(ITEM_SYNC, item.sku, "c1", 10.0, "USD", item=item))
    stack.posted(0, Transaction(ONBOARDING, customer.key, "c2", None, None, customer=customer))
    assert item.in_erp and customer.in_erp


def test_a_live_run_caught_up_with_the_clock_sits_idle():
    # caught up, each step was microseconds of simulated time taken at once: a live demo
    # kept a whole core busy
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from sample_data.simulator import SimulationConfig, run

    stop = threading.Event()
    config = SimulationConfig(
        seed=3,
        start=datetime.now(UTC) - timedelta(minutes=1),
        duration=None,
        live=True,
        incidents=False,
    )
    thread = threading.Thread(
        target=run, args=(config, stop), kwargs={"exporter": InMemorySpanExporter()}
    )
    thread.start()
    try:
        time.sleep(2.0)  # the minute of history is generated by then
        cpu_before, wall_before = time.process_time(), time.monotonic()
        time.sleep(2.0)
        busy = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert busy < 0.3


def _ids(spans) -> dict[str, set[str]]:  # noqa: ANN001 - ReadableSpans
    """Every trace id, correlation id and business key of ``spans``."""
    return {
        "trace ids": {f"{span.context.trace_id:032x}" for span in spans},
        "correlation ids": {str(span.attributes.get("correlation.id")) for span in spans},
        "business keys": {str(span.attributes.get("business.key")) for span in spans},
    }


def test_a_later_run_of_a_seed_repeats_none_of_its_ids_and_is_reproducible():
    # a restarted demo drew the trace and correlation ids of the first run again, and a
    # store holding both joined two transactions as one
    first_start = MONDAY + timedelta(hours=9)
    _, first = simulate_in_memory(seed=7, start=first_start, duration=timedelta(minutes=30))
    later = {"seed": 7, "start": first_start + timedelta(minutes=30), "run": 1}
    _, second = simulate_in_memory(**later, duration=timedelta(minutes=30))
    _, again = simulate_in_memory(**later, duration=timedelta(minutes=30))

    first_ids, second_ids = _ids(first), _ids(second)
    for kind, ids in first_ids.items():
        assert len(ids) > 50, kind
        assert not ids & second_ids[kind], kind
    assert [(s.context.trace_id, s.context.span_id, s.attributes) for s in again] == [
        (s.context.trace_id, s.context.span_id, s.attributes) for s in second
    ]


def test_a_live_run_sends_no_span_that_ends_after_now():
    # at the stop, spans of transactions still under way went out with end times to come
    now = MONDAY + timedelta(hours=2, seconds=20)  # the nightly reconciliation is under way
    now_ns = int(now.timestamp()) * 1_000_000_000
    stop = threading.Event()
    exporter = InMemorySpanExporter()
    config = SimulationConfig(seed=7, start=now - timedelta(minutes=30), duration=None)
    config = config.model_copy(update={"live": True, "incidents": False})
    timer = threading.Timer(3.0, stop.set)  # the half hour before now takes about a second
    timer.start()
    try:
        summary = run(config, stop, exporter=exporter, clock=lambda: now_ns)
    finally:
        timer.cancel()

    spans = exporter.get_finished_spans()
    assert summary.sim_end == now
    assert len(spans) == summary.spans_emitted == summary.spans_exported > 100
    assert max(span.end_time for span in spans) <= now_ns
