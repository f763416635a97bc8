"""The spool and the span writer: answer once on disk, insert large batches, lose nothing."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from collector.spool import REJECTED_DIR_NAME, Spool, SpoolError
from collector.writer import SpanWriter
from storage import QueryError, StoreUnavailable


class RecordingStore:
    """Records each insert; an insert can be held, made slow, or made to fail."""

    def __init__(self, insert_seconds: float = 0.0) -> None:
        self.insert_seconds = insert_seconds
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()
        self.failures: list[Exception] = []

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        self.release.wait(30)
        if self.failures:
            raise self.failures.pop(0)
        values = data.column("n").to_pylist()
        if -1 in values:
            raise QueryError("Cannot parse input: value -1 is not allowed")
        time.sleep(self.insert_seconds)
        self.batches.append(values)
        return data.num_rows

    def command(self, sql: str, parameters: dict | None = None) -> None:
        """The writer's probe of a store that is down; it fails as the next insert would."""
        if self.failures:
            raise self.failures.pop(0)

    def sizes(self) -> list[int]:
        return [len(batch) for batch in self.batches]

    def stored(self) -> list[int]:
        return [value for batch in self.batches for value in batch]


def _rows(first: int, count: int = 100) -> pa.Table:
    return pa.table({"n": pa.array(range(first, first + count), pa.int64())})


def _writer(store: RecordingStore, spool_dir: Path, *, flush_millis: int = 50) -> SpanWriter:
    return SpanWriter(
        store,
        Spool(spool_dir, fsync=False),
        batch_max_spans=10_000,
        flush_interval_millis=flush_millis,
        max_queue_spans=100_000,
        retry_after_seconds=1,
    )


def test_once_the_store_took_an_insert_requests_are_answered_from_the_spool(tmp_path):
    store = RecordingStore()
    writer = _writer(store, tmp_path)
    try:
        assert writer.submit(_rows(0)).result(10) == 100  # proves the store
        store.release.clear()  # the store takes nothing for now
        assert writer.submit(_rows(100)).result(10) == 100
        assert len(list(tmp_path.glob("*.arrow"))) == 1
        assert store.stored() == list(range(100))
        store.release.set()
        assert writer.wait_until_stored(10)
        assert store.stored() == list(range(200))
        assert list(tmp_path.glob("*.arrow")) == []
    finally:
        writer.shutdown()


def test_until_the_store_took_an_insert_a_request_waits_for_its_own(tmp_path):
    store = RecordingStore()
    store.release.clear()
    writer = _writer(store, tmp_path)
    try:
        answer = writer.submit(_rows(0))
        time.sleep(0.4)
        assert not answer.done()
        store.release.set()
        assert answer.result(10) == 100
        assert store.stored() == list(range(100))
    finally:
        writer.shutdown()


def test_a_store_down_from_the_start_gets_503s_and_keeps_nothing(tmp_path):
    store = RecordingStore()
    store.failures = [StoreUnavailable("connection refused")]
    writer = _writer(store, tmp_path)
    try:
        with pytest.raises(StoreUnavailable, match="connection refused"):
            writer.submit(_rows(0)).result(10)
        assert list(tmp_path.glob("*.arrow")) == []
        with pytest.raises(StoreUnavailable):
            writer.submit(_rows(0))  # still known to be down: refused at once
        time.sleep(1.1)  # Retry-After
        assert writer.submit(_rows(0)).result(10) == 100  # the client's retry
    finally:
        writer.shutdown()
    assert store.stored() == list(range(100))


def test_requests_arriving_during_an_insert_make_one_large_insert(tmp_path):
    store = RecordingStore(insert_seconds=0.3)
    writer = _writer(store, tmp_path)
    try:
        writer.submit(_rows(0)).result(10)
        time.sleep(0.15)  # the first insert is under way
        for number in range(1, 11):
            writer.submit(_rows(number * 100)).result(10)
        assert writer.wait_until_stored(10)
    finally:
        writer.shutdown()
    assert store.sizes() == [100, 1000]
    assert store.stored() == list(range(1100))


def test_an_idle_store_gets_rows_within_the_flush_interval(tmp_path):
    store = RecordingStore()
    writer = _writer(store, tmp_path, flush_millis=300)
    try:
        writer.submit(_rows(0)).result(10)  # proves the store, inserted at once
        started = time.monotonic()
        writer.submit(_rows(100)).result(10)
        assert time.monotonic() - started < 0.25  # the answer does not wait for the flush
        assert writer.wait_until_stored(10)
        assert 0.25 <= time.monotonic() - started < 5
    finally:
        writer.shutdown()


def test_what_a_crashed_run_left_in_the_spool_is_stored_first_and_in_order(tmp_path):
    left = Spool(tmp_path, fsync=False)
    left.write(_rows(0))
    left.write(_rows(100))
    left.close()  # as if the process died here

    store = RecordingStore()
    writer = _writer(store, tmp_path)
    try:
        writer.submit(_rows(200)).result(10)
        assert writer.wait_until_stored(10)
    finally:
        writer.shutdown()
    assert store.stored() == list(range(300))
    assert list(tmp_path.glob("*.arrow")) == []


def test_a_store_outage_refuses_new_requests_and_loses_nothing_acknowledged(tmp_path):
    store = RecordingStore()
    writer = _writer(store, tmp_path)
    try:
        writer.submit(_rows(0)).result(10)
        store.failures = [StoreUnavailable("connection refused")] * 2
        writer.submit(_rows(100)).result(10)  # spooled and answered; its insert fails
        deadline = time.monotonic() + 10
        answered, refused = 2, False
        while time.monotonic() < deadline and not refused:
            try:
                writer.submit(_rows(answered * 100)).result(10)
                answered += 1
            except StoreUnavailable:
                refused = True
            time.sleep(0.01)
        assert refused
        assert writer.wait_until_stored(15)
    finally:
        writer.shutdown()
    # Everything answered with success is stored, in order, once the store is back.
    assert store.stored() == list(range(answered * 100))


def test_rows_the_store_refuses_for_good_are_set_aside_not_deleted(tmp_path):
    store = RecordingStore()
    writer = _writer(store, tmp_path)
    try:
        writer.submit(_rows(0)).result(10)
        store.release.clear()
        writer.submit(pa.table({"n": pa.array([-1, 5000], pa.int64())})).result(10)
        writer.submit(_rows(100)).result(10)
        store.release.set()
        assert writer.wait_until_stored(10)
    finally:
        writer.shutdown()
    assert store.stored() == list(range(200))
    assert writer.stats.rejected_spans == 2
    rejected = list((tmp_path / REJECTED_DIR_NAME).glob("*.arrow"))
    assert len(rejected) == 1
    kept = pa.ipc.open_file(pa.memory_map(str(rejected[0]))).read_all()
    assert kept.column("n").to_pylist() == [-1, 5000]
    reason = rejected[0].with_suffix(".reason.txt").read_text()
    assert "value -1 is not allowed" in reason


def test_an_unreadable_segment_at_start_is_set_aside(tmp_path):
    (tmp_path / "0000000000000007.arrow").write_bytes(b"not arrow at all")
    spool = Spool(tmp_path, fsync=False)
    try:
        assert spool.recovered == []
        assert (tmp_path / REJECTED_DIR_NAME / "0000000000000007.arrow").exists()
    finally:
        spool.close()


def test_a_full_disk_is_a_503_for_the_request_not_a_lost_span(tmp_path, monkeypatch):
    store = RecordingStore()
    writer = _writer(store, tmp_path)

    def disk_full(rows):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer._spool, "write", disk_full)
    try:
        with pytest.raises(StoreUnavailable, match="No space left on device"):
            writer.submit(_rows(0)).result(10)
    finally:
        writer.shutdown()
    assert store.batches == []


def test_two_collectors_cannot_share_a_spool(tmp_path):
    first = Spool(tmp_path)
    try:
        with pytest.raises(SpoolError, match="used by another collector"):
            Spool(tmp_path)
    finally:
        first.close()


def test_when_two_batches_wait_for_the_store_answers_wait_instead_of_piling_up(tmp_path):
    store = RecordingStore()
    writer = SpanWriter(
        store,
        Spool(tmp_path, fsync=False),
        batch_max_spans=200,
        flush_interval_millis=10,
        max_queue_spans=10_000,
    )
    try:
        writer.submit(_rows(0)).result(10)  # proves the store
        store.release.clear()
        answered = [writer.submit(_rows(100 * n)).result(5) for n in range(1, 5)]
        assert answered == [100] * 4  # 400 spans, two batches' worth, wait in the spool
        waiting = writer.submit(_rows(500))
        time.sleep(0.3)
        assert not waiting.done()  # the client waits: no 429, no growing spool
        assert len(list(tmp_path.glob("*.arrow"))) == 4
        store.release.set()
        assert waiting.result(10) == 100
        assert writer.wait_until_stored(10)
    finally:
        store.release.set()
        writer.shutdown()
    assert store.stored() == list(range(600))


SERVER = "the ClickHouse server http://127.0.0.1:18123/cases"
EMBEDDED = "the embedded store in .seamwatch"


def test_spans_spooled_for_one_store_are_never_inserted_into_another(tmp_path):
    # spooled while a ClickHouse server was down, they were once inserted into the embedded
    # store at the next start that used it
    left = Spool(tmp_path, fsync=False, store=SERVER)
    left.write(_rows(0))
    left.close()
    with pytest.raises(SpoolError) as refused:
        Spool(tmp_path, fsync=False, store=EMBEDDED)
    assert str(refused.value) == (
        f"The spool {tmp_path} holds 1 segment(s) of spans acknowledged for {SERVER}, not for "
        f"{EMBEDDED}. Start Seamwatch with that store once to insert them, or give this one "
        "another spool with SEAMWATCH_SPOOL_DIR; the segments are kept as they are."
    )
    again = Spool(tmp_path, fsync=False, store=SERVER)  # the lock was released, nothing moved
    assert [segment.spans for segment in again.recovered] == [100]
    again.remove(again.recovered)
    again.close()
    Spool(tmp_path, fsync=False, store=EMBEDDED).close()  # an empty spool serves any store
    assert (tmp_path / "store.txt").read_text() == EMBEDDED + "\n"
