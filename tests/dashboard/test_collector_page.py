"""The Collector page reads the running collector's /metrics."""

from __future__ import annotations

import time

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from collector.metrics import CollectorMetrics
from dashboard import APP_PATH
from dashboard.collector_health import parse_metrics
from seamwatch.runtime import share_settings
from seamwatch.settings import Settings

PAGE_PATH = APP_PATH.parent / "views" / "06_collector.py"


def test_parse_metrics_reads_every_figure():
    metrics = CollectorMetrics()
    metrics.accepted_spans.labels("http").inc(40)
    metrics.accepted_spans.labels("grpc").inc(2)
    metrics.rejected_spans.labels("invalid_span").inc(3)
    metrics.refused_requests.labels("malformed").inc()
    metrics.queued_spans.set(17)
    metrics.spool_bytes.set(3 * 2**20)
    metrics.insert_seconds.observe(0.5)
    metrics.insert_seconds.observe(0.25)

    health = parse_metrics(metrics.exposition().decode())

    assert health.accepted_spans == {"http": 40.0, "grpc": 2.0}
    assert health.rejected_spans == {"invalid_span": 3.0}
    assert health.refused_requests == {"malformed": 1.0}
    assert health.queued_spans == 17.0
    assert health.spool_bytes == 3 * 2**20
    assert health.mean_insert_seconds == pytest.approx(0.375)
    # the counters begin with the collector: a restart sets them back to 0
    assert health.counting_since == pytest.approx(time.time(), abs=60)


@pytest.fixture
def page_settings(running_collector):
    st.cache_data.clear()
    share_settings(Settings(otlp_http_port=running_collector.port))
    yield running_collector
    share_settings(None)


def test_page_shows_the_running_collector_counts(page_settings):
    body = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",'
        b'"spanId":"eee19b7ec3c1b174","name":"x"}]}]}]}'
    )
    url = f"{page_settings.endpoint}/v1/traces"
    assert httpx.post(url, content=body, headers={"Content-Type": "application/json"}).is_success
    httpx.post(url, content=b"nope", headers={"Content-Type": "application/json"})

    app = AppTest.from_file(str(PAGE_PATH), default_timeout=30).run()

    assert not app.exception
    assert not app.error
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Spans accepted"] == "1"
    assert metrics["Requests refused"] == "1"
    assert metrics["Waiting for the store"] == "0"
    assert [m.delta for m in app.metric if m.label == "Waiting for the store"] == ["spool 0.0 MiB"]
    # a spool size is no change: it was drawn with an up arrow
    assert all(m.proto.direction == m.proto.NONE for m in app.metric if m.delta)
    assert app.caption[1].value.startswith("Counted since the collector started, ")
    assert app.dataframe[0].value.to_dict("records") == [{"protocol": "http", "count": 1.0}]


def test_page_says_when_the_collector_does_not_answer():
    share_settings(Settings(otlp_http_port=9, collector_url="http://127.0.0.1:9"))
    try:
        app = AppTest.from_file(str(PAGE_PATH), default_timeout=30).run()
    finally:
        share_settings(None)
    assert not app.exception
    assert "does not answer" in app.error[0].value
