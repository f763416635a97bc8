"""Overload: a full queue or too many requests at once get 429 with Retry-After, never a crash."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pyarrow as pa

from collector.service import Collector
from storage import Store

JSON = {"Content-Type": "application/json"}


def one_span_body(number: int) -> bytes:
    span = {"traceId": f"{number + 1:032x}", "spanId": "00000000000000a1", "name": f"n{number}"}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


class GatedStore:
    """The test's store, with inserts held until the test opens the gate."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.gate = threading.Event()
        self.inserting = threading.Event()
        self.database, self.backend, self.table = store.database, store.backend, store.table

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        self.inserting.set()
        self.gate.wait(30)
        return self._store.insert_arrow(table, data)


def wait_for(condition, timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_full_queue_is_429_and_the_accepted_spans_are_stored(store, collector_settings):
    collector_settings.batch_max_spans = 1
    collector_settings.max_queue_spans = 2  # the span being inserted and one more
    collector_settings.retry_after_seconds = 3
    gated = GatedStore(store)
    service = Collector(gated, collector_settings)
    service.start()
    url = f"{service.endpoint}/v1/traces"
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(httpx.post, url, content=one_span_body(0), headers=JSON)
            assert gated.inserting.wait(10)
            second = pool.submit(httpx.post, url, content=one_span_body(1), headers=JSON)
            wait_for(lambda: service.writer.stats.queued_spans == 2)
            refused = httpx.post(url, content=one_span_body(2), headers=JSON)
            gated.gate.set()
            answers = [first.result(30), second.result(30)]
    finally:
        gated.gate.set()
        service.stop()

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "3"
    assert refused.json()["code"] == 8
    assert [answer.status_code for answer in answers] == [200, 200]
    rows = store.query_rows(f"SELECT SpanName FROM {store.table('otel_traces')} ORDER BY SpanName")
    assert rows == [("n0",), ("n1",)]


def test_too_many_requests_at_once_are_429_before_reading_them(store, collector_settings):
    collector_settings.max_concurrent_requests = 1
    gated = GatedStore(store)
    service = Collector(gated, collector_settings)
    service.start()
    url = f"{service.endpoint}/v1/traces"
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, url, content=one_span_body(0), headers=JSON)
            assert gated.inserting.wait(10)
            refused = httpx.post(url, content=one_span_body(1), headers=JSON)
            gated.gate.set()
            accepted = first.result(30)
    finally:
        gated.gate.set()
        service.stop()
    assert (accepted.status_code, refused.status_code) == (200, 429)
    assert refused.headers["retry-after"] == "1"
    assert "limit 1" in refused.json()["message"]
