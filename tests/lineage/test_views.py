"""The derived tables fill from exporter rows, whoever wrote them, and ignore resent copies."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lineage.flows import flow_health, flow_map
from lineage.lookup import LineageQuery, lineage
from tests.lineage.spans import START, posted, published
from tests.rows import make_span_rows

WINDOW = (START, START + timedelta(minutes=5))


def insert(store, spans):
    store.insert_arrow("otel_traces", make_span_rows(spans))


def count(store, table):
    return store.query_rows(f"SELECT count() FROM {store.table(table)}")[0][0]


def test_views_fill_from_rows_written_straight_into_otel_traces(store):
    insert(store, published("INV-1") + posted("INV-1"))

    # Five hops; the source's Internal root counts, as every trace root does.
    assert count(store, "seamwatch_lineage") == 5
    assert count(store, "seamwatch_span_links") == 1
    keys = store.query_rows(
        f"SELECT correlation_id, lookup_key FROM {store.table('seamwatch_lineage_correlation')}"
    )
    assert set(keys) == {("corr-INV-1", "INV-1")}


def test_a_resent_batch_changes_no_count_or_hop(store):
    batch = make_span_rows(published("INV-1") + posted("INV-1", failure=("mapping", "no tax")))
    store.insert_arrow("otel_traces", batch)
    store.insert_arrow("otel_traces", batch)
    store.insert_arrow("otel_traces", batch.slice(0, 2))

    health = flow_health(store, *WINDOW).set_index("flow").loc["billing.invoice-post"]
    answer = lineage(store, LineageQuery(key="INV-1"))

    assert health["spans"] == 5
    assert health["errors"] == 1
    assert len(answer["hops"]) == 5
    assert answer["transactions"][0]["failed_postings"] == 1


def test_flow_health_counts_the_live_health_spans_and_reads_latency(store):
    spans = [
        {"attributes": {"integration.flow": "o2c"}, "timestamp": START, "duration_ms": 100}
        for _ in range(3)
    ]
    spans.append({"service": "crm", "kind": "Internal", "ParentSpanId": "00000000000000aa"})
    insert(store, spans)

    health = flow_health(store, *WINDOW)

    assert health["flow"].tolist() == ["o2c"]
    assert health.loc[0, "spans"] == 3
    assert health.loc[0, "p95_ms"] == pytest.approx(100.0)
    assert not health.loc[0, "derived"]


def test_flow_map_draws_topic_and_call_edges(store):
    insert(store, published("INV-1") + posted("INV-1"))

    edges = flow_map(store, *WINDOW)

    assert sorted(zip(edges["caller"], edges["callee"], strict=True)) == [
        ("billing", "topic:billing.invoices"),
        ("integration-api", "erp"),
        ("topic:erp.invoices", "integration-api"),
    ]
    assert set(edges["business_object"]) == {"Invoice"}
    assert edges["spans"].tolist() == [1, 1, 1]


def test_flow_map_of_one_flow_leaves_others_out(store):
    insert(store, published("INV-1") + published("PAY-1", flow="payments.payment-apply"))

    edges = flow_map(store, *WINDOW, flow="payments.payment-apply")

    assert edges["flow"].tolist() == ["payments.payment-apply"]
