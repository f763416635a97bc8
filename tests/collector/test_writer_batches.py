"""How the span writer groups the rows of many requests into inserts."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from collector.writer import SpanWriter


class SlowStore:
    """Records the size of each insert; each takes ``insert_seconds``."""

    def __init__(self, insert_seconds: float) -> None:
        self.insert_seconds = insert_seconds
        self.batches: list[int] = []
        self.started = threading.Event()

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        self.started.set()
        time.sleep(self.insert_seconds)
        self.batches.append(data.num_rows)
        return data.num_rows


def _rows(count: int) -> pa.Table:
    return pa.table({"n": pa.array(range(count), pa.int64())})


def _writer(store: SlowStore, linger_millis: int) -> SpanWriter:
    return SpanWriter(
        store,
        batch_max_spans=10_000,
        flush_interval_millis=2_000,
        batch_min_spans=100,
        batch_linger_millis=linger_millis,
        max_queue_spans=100_000,
    )


def test_clients_answered_together_come_back_as_one_insert():
    """Under load, the requests that arrive just after an insert wait for each other."""
    store = SlowStore(insert_seconds=0.2)
    writer = _writer(store, linger_millis=500)
    try:
        # The first request is inserted at once; the two that arrive meanwhile make the next.
        first = [writer.submit(_rows(100))]
        assert store.started.wait(10)
        first += [writer.submit(_rows(100)) for _ in range(2)]
        for done in first:
            done.result(10)
        again = []
        for _ in range(4):  # the answered clients send again, a little apart
            again.append(writer.submit(_rows(100)))
            time.sleep(0.03)
        for done in again:
            done.result(10)
    finally:
        writer.shutdown()
    assert store.batches == [100, 200, 400]


def test_a_lone_client_is_not_kept_waiting():
    """After an insert of one request, the next request is inserted without lingering."""
    store = SlowStore(insert_seconds=0.0)
    writer = _writer(store, linger_millis=5_000)
    try:
        writer.submit(_rows(100)).result(10)
        started = time.monotonic()
        writer.submit(_rows(100)).result(10)
        assert time.monotonic() - started < 2.0
    finally:
        writer.shutdown()
    assert store.batches == [100, 100]
