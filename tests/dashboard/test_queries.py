"""Per-flow health queries against a real embedded store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dashboard.queries import TIME_RANGES, flow_series, flow_summary, has_spans
from tests.rows import make_span_rows

END = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
LAST_HOUR = TIME_RANGES["1h"]


def insert(store, spans):
    store.insert_arrow("otel_traces", make_span_rows(spans))


def summary_by_flow(store):
    return flow_summary(store, LAST_HOUR, end=END).set_index("flow")


def test_empty_store_has_no_flows(store):
    assert not has_spans(store)
    assert flow_summary(store, LAST_HOUR, end=END).empty
    assert flow_series(store, LAST_HOUR, end=END).empty


def test_summary_counts_each_span_once_when_batches_are_resent(store):
    at = END - timedelta(minutes=10)
    spans = [
        {"attributes": {"integration.flow": "order-submit"}, "timestamp": at, "duration_ms": ms}
        for ms in range(1, 21)
    ]
    for span in spans[:4]:
        span["status"] = "Error"
    batch = make_span_rows(spans)
    store.insert_arrow("otel_traces", batch)
    store.insert_arrow("otel_traces", batch)  # the client resends after a timeout
    store.insert_arrow("otel_traces", batch.slice(0, 2))

    row = summary_by_flow(store).loc["order-submit"]

    assert row["spans"] == 20
    assert row["errors"] == 4
    assert row["error_rate"] == pytest.approx(0.2)
    # Linear interpolation between the 19 and 20 ms spans, as ClickHouse's quantile does.
    assert row["p50_ms"] == pytest.approx(10.5)
    assert row["p95_ms"] == pytest.approx(19.05)
    assert not row["derived"]
    assert row["last_seen"] == pd.Timestamp(at)


def test_flows_are_derived_from_destination_route_or_span_name(store):
    at = END - timedelta(minutes=5)
    insert(
        store,
        [
            {
                "service": "billing",
                "kind": "Consumer",
                "attributes": {"messaging.destination.name": "invoice.paid", "http.route": "/x"},
                "timestamp": at,
            },
            {"service": "crm", "attributes": {"http.route": "/orders"}, "timestamp": at},
            {"service": "erp", "name": "nightly-close", "kind": "Internal", "timestamp": at},
            {"service": "erp", "attributes": {"integration.flow": "o2c"}, "timestamp": at},
        ],
    )

    summary = summary_by_flow(store)

    assert summary["derived"].to_dict() == {
        "billing:invoice.paid": True,
        "crm:/orders": True,
        "erp:nightly-close": True,
        "o2c": False,
    }


def test_only_named_or_entry_spans_count(store):
    at = END - timedelta(minutes=5)
    inside = {"ParentSpanId": "00000000000000aa", "timestamp": at, "service": "mw"}
    insert(
        store,
        [
            {**inside, "kind": "Internal", "name": "transform"},
            {**inside, "kind": "Client", "name": "POST"},
            {**inside, "kind": "Producer", "name": "publish"},
            {**inside, "kind": "Client", "attributes": {"integration.flow": "erp-post"}},
            {**inside, "kind": "Consumer", "attributes": {"messaging.destination.name": "usage"}},
            {**inside, "kind": "Server", "attributes": {"http.route": "/usage"}},
        ],
    )

    assert sorted(summary_by_flow(store).index) == ["erp-post", "mw:/usage", "mw:usage"]


def test_spans_outside_the_window_are_left_out(store):
    named = {"attributes": {"integration.flow": "o2c"}}
    insert(
        store,
        [
            {**named, "timestamp": END - timedelta(hours=1, seconds=1)},
            {**named, "timestamp": END - timedelta(hours=1)},
            {**named, "timestamp": END - timedelta(microseconds=1)},
            {**named, "timestamp": END},
        ],
    )

    assert summary_by_flow(store).loc["o2c", "spans"] == 2
    assert has_spans(store)


def test_series_buckets_by_minute_and_fills_quiet_minutes(store):
    flow = {"attributes": {"integration.flow": "o2c"}}
    insert(
        store,
        [
            {**flow, "timestamp": END - timedelta(minutes=3, seconds=50), "duration_ms": 10},
            {**flow, "timestamp": END - timedelta(minutes=3, seconds=5), "duration_ms": 30},
            {**flow, "timestamp": END - timedelta(minutes=1, seconds=30), "status": "Error"},
        ],
    )

    series = flow_series(store, LAST_HOUR, end=END).set_index("bucket")

    assert len(series) == 60
    assert series.index[0] == pd.Timestamp(END - timedelta(hours=1))
    minute = series.loc[pd.Timestamp(END - timedelta(minutes=4))]
    assert (minute["spans"], minute["errors"]) == (2, 0)
    assert minute["p95_ms"] == pytest.approx(29.0)
    failing = series.loc[pd.Timestamp(END - timedelta(minutes=2))]
    assert (failing["spans"], failing["errors"], failing["error_rate"]) == (1, 1, 1.0)
    quiet = series.loc[pd.Timestamp(END - timedelta(minutes=3))]
    assert quiet["spans"] == 0
    assert pd.isna(quiet["p95_ms"]) and pd.isna(quiet["error_rate"])
    assert series["spans"].sum() == 3


@pytest.mark.parametrize(("key", "bucket_seconds"), [("6h", 300), ("24h", 900), ("7d", 3600)])
def test_bucket_width_grows_with_the_range(store, key, bucket_seconds):
    time_range = TIME_RANGES[key]
    insert(
        store,
        [{"attributes": {"integration.flow": "o2c"}, "timestamp": END - timedelta(minutes=1)}],
    )

    series = flow_series(store, time_range, end=END)

    assert time_range.bucket_seconds == bucket_seconds
    assert len(series) == time_range.seconds // bucket_seconds
    assert series["bucket"].diff().dropna().eq(pd.Timedelta(seconds=bucket_seconds)).all()
    assert series.loc[series["spans"] > 0, "bucket"].tolist() == [
        pd.Timestamp(END - timedelta(seconds=bucket_seconds))
    ]


def test_window_starts_on_a_bucket_boundary(store):
    end = END + timedelta(seconds=30)
    flow = {"attributes": {"integration.flow": "o2c"}}
    insert(store, [{**flow, "timestamp": END - timedelta(hours=1, seconds=-10)}])

    series = flow_series(store, LAST_HOUR, end=end)

    assert series["bucket"].iloc[0] == pd.Timestamp(END - timedelta(hours=1))
    assert series["spans"].iloc[0] == 1
    assert flow_summary(store, LAST_HOUR, end=end).loc[0, "spans"] == 1
