"""While the store is down the receiver answers 503 with Retry-After and stores nothing;
/health says so, the log says it once, and a stop leaves the spool for the next start."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

import httpx
import pyarrow as pa

import collector.writer
from collector.service import Collector
from storage import Store, StoreUnavailable
from tests.collector.conftest import shared_file


class FlakyStore:
    """The test's store, with inserts failing as if the server were unreachable while down."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.down = True
        self.database = store.database
        self.backend = store.backend
        self.table = store.table
        self.query_rows = store.query_rows

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        if self.down:
            raise StoreUnavailable("connection refused (simulated outage)")
        return self._store.insert_arrow(table, data)

    def command(self, sql: str, parameters: dict | None = None) -> None:
        if self.down:
            raise StoreUnavailable("connection refused (simulated outage)")
        self._store.command(sql, parameters)


JSON_HEADERS = {"Content-Type": "application/json"}


def wait_for(condition: Callable[[], bool], timeout_seconds: float = 10) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def health(service: Collector) -> httpx.Response:
    return httpx.get(f"{service.endpoint}/health")


def warnings_of(caplog, logger_name: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == logger_name and record.levelno == logging.WARNING
    ]


def test_outage_gives_503_then_the_same_body_is_stored_once(store, collector_settings):
    collector_settings.retry_after_seconds = 1
    flaky = FlakyStore(store)
    body = shared_file("cases/08-storage-down.json").read_bytes()
    url_headers = {"Content-Type": "application/json"}
    service = Collector(flaky, collector_settings)
    service.start()
    try:
        url = f"{service.endpoint}/v1/traces"
        refused = httpx.post(url, content=body, headers=url_headers)
        refused_again = httpx.post(url, content=body, headers=url_headers)
        flaky.down = False
        time.sleep(1.1)
        accepted = httpx.post(url, content=body, headers=url_headers)
    finally:
        service.stop()

    for response in (refused, refused_again):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["code"] == 14
    assert accepted.status_code == 200
    sql = f"SELECT count() FROM {store.table('otel_traces')} WHERE TraceId = {{t:String}}"
    assert store.query_rows(sql, {"t": "4bf92f3577b34da6a3ce929d0e0e0836"}) == [(1,)]


def send_case_08(service: Collector) -> httpx.Response:
    """POST the storage-down case's batch (one span) to ``service``."""
    body = shared_file("cases/08-storage-down.json").read_bytes()
    return httpx.post(f"{service.endpoint}/v1/traces", content=body, headers=JSON_HEADERS)


def spool_one_span_in_an_outage(service: Collector, flaky: FlakyStore) -> None:
    """One batch stored while the store is up; then the store fails, and the next batch is
    acknowledged from the spool (the store took an insert before)."""
    assert send_case_08(service).status_code == 200
    flaky.down = True
    assert send_case_08(service).status_code == 200


def test_one_warning_for_an_outage_health_503_then_one_line_when_the_store_is_back(
    store, collector_settings, caplog
):
    caplog.set_level(logging.INFO)
    flaky = FlakyStore(store)
    flaky.down = False
    service = Collector(flaky, collector_settings)
    service.start()
    try:
        assert send_case_08(service).status_code == 200
        assert health(service).json() == {
            "status": "ok",
            "store": "available",
            "queued_spans": 0,
        }
        flaky.down = True
        # acknowledged: the store took an insert before, so the span waits in the spool
        assert send_case_08(service).status_code == 200
        wait_for(lambda: health(service).status_code == 503)
        time.sleep(2.5)  # several more attempts, every second
        down = health(service)
        refused = send_case_08(service)
        failed_attempts = service.writer.stats.failed_batches
        outage_warnings = warnings_of(caplog, "collector.writer")
        flaky.down = False
        wait_for(lambda: health(service).status_code == 200)
        back = health(service).json()
    finally:
        service.stop()

    assert down.json()["status"] == "degraded"
    assert down.json()["store"] == "unavailable"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", down.json()["since"])
    assert down.json()["queued_spans"] == 1
    assert back == {"status": "ok", "store": "available", "queued_spans": 0}
    assert refused.status_code == 503
    assert refused.json()["message"] == (
        "The store cannot take spans now (connection refused (simulated outage)); retry after 5 s."
    )
    assert failed_attempts >= 3
    assert outage_warnings == [
        "The store is unavailable: connection refused (simulated outage). New requests get "
        "503 until it answers; 1 span waits in the spool."
    ]
    recovered = [r.getMessage() for r in caplog.records if "available again" in r.getMessage()]
    assert len(recovered) == 1
    assert re.fullmatch(
        r"The store is available again after \d+ s; 1 span from the spool inserted", recovered[0]
    )
    # both acknowledged requests are stored, the one spooled during the outage included
    sql = f"SELECT count() FROM {store.table('otel_traces')} WHERE TraceId = {{t:String}}"
    assert store.query_rows(sql, {"t": "4bf92f3577b34da6a3ce929d0e0e0836"}) == [(2,)]


def test_health_turns_ok_when_the_store_answers_again_without_new_requests(
    store, collector_settings
):
    # a load balancer sends nothing to a collector whose /health fails: it must not wait for
    # a request to find out that the store is back
    flaky = FlakyStore(store)
    service = Collector(flaky, collector_settings)
    service.start()
    try:
        refused = send_case_08(service)
        down = health(service)
        flaky.down = False
        wait_for(lambda: health(service).status_code == 200, timeout_seconds=5)
    finally:
        service.stop()
    assert refused.status_code == 503
    assert refused.json()["message"].count("retry") == 1
    assert down.status_code == 503
    assert down.json()["queued_spans"] == 0


def test_a_stop_with_the_store_down_leaves_the_spool_at_once_for_the_next_start(
    store, collector_settings, caplog
):
    flaky = FlakyStore(store)
    flaky.down = False
    service = Collector(flaky, collector_settings)
    service.start()
    try:
        spool_one_span_in_an_outage(service, flaky)
        wait_for(lambda: health(service).status_code == 503)
    finally:
        started = time.monotonic()
        service.stop()
        stop_seconds = time.monotonic() - started

    assert stop_seconds < 3
    spool = collector_settings.spool_dir
    assert warnings_of(caplog, "collector.writer")[-1] == (
        f"1 span stays in the spool {spool}, as the store is unavailable (connection refused "
        "(simulated outage)); the next start inserts it."
    )
    flaky.down = False
    again = Collector(flaky, collector_settings)
    again.start()
    again.stop()
    assert again.writer.stats.inserted_spans == 1
    assert not list(spool.glob("*.arrow"))


def test_a_long_outage_is_recalled_now_and_then_with_the_spans_waiting(
    store, collector_settings, caplog, monkeypatch
):
    monkeypatch.setattr("collector.writer._OUTAGE_REMINDER_SECONDS", 1.5)
    flaky = FlakyStore(store)
    flaky.down = False
    service = Collector(flaky, collector_settings)
    service.start()
    try:
        spool_one_span_in_an_outage(service, flaky)
        wait_for(lambda: len(warnings_of(caplog, "collector.writer")) >= 2)
        flaky.down = False
    finally:
        service.stop()
    reminder = warnings_of(caplog, "collector.writer")[1]
    assert re.fullmatch(
        r"The store is still unavailable after \d+ s: connection refused \(simulated outage\); "
        r"1 span waits in the spool\.",
        reminder,
    )


class HangingStore(FlakyStore):
    """The test's store, with inserts that hang while ``hanging`` is set, as on a server
    that takes connections and never answers."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.down = False
        self.released = threading.Event()
        self.released.set()

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        self.released.wait(30)
        return super().insert_arrow(table, data)


def test_health_says_the_store_is_slow_while_an_insert_hangs(
    store, collector_settings, monkeypatch
):
    # /health said "ok" while spans queued and nothing was stored for 15 s and more
    monkeypatch.setattr(collector.writer, "SLOW_INSERT_SECONDS", 0.5)
    hanging = HangingStore(store)
    service = Collector(hanging, collector_settings)
    service.start()
    try:
        assert send_case_08(service).status_code == 200
        service.wait_until_stored()
        hanging.released.clear()
        assert send_case_08(service).status_code == 200  # acknowledged from the spool
        wait_for(lambda: health(service).json()["status"] != "ok")
        slow = health(service)
        hanging.released.set()
        wait_for(lambda: health(service).json()["status"] == "ok")
    finally:
        hanging.released.set()
        service.stop()

    assert slow.status_code == 200
    document = slow.json()
    assert (document["status"], document["store"], document["queued_spans"]) == ("slow", "slow", 1)
    assert 0.5 <= document["insert_seconds"] <= document["oldest_queued_seconds"] < 10
