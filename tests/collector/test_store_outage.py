"""While the store is down the receiver answers 503 with Retry-After and stores nothing."""

from __future__ import annotations

import time

import httpx
import pyarrow as pa

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
