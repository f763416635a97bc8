"""Fixtures shared by the whole suite.

chDB opens one data directory per process, so every test that needs the embedded store
shares ``chdb_data_dir`` and gets a database of its own in it from ``store``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.service import Collector
from storage import Store, migrate
from storage.embedded import EmbeddedStore
from storage.server import ServerStore


@pytest.fixture(scope="session")
def chdb_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one embedded-store data directory of this test process."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def store(chdb_data_dir: Path) -> Iterator[Store]:
    """A migrated, empty database of its own in the embedded store, dropped afterwards."""
    database = f"test_{uuid.uuid4().hex[:16]}"
    embedded = EmbeddedStore(chdb_data_dir, database=database)
    try:
        migrate(embedded)
        yield embedded
    finally:
        embedded.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
        embedded.close()


@pytest.fixture(autouse=True)
def reads_see_acknowledged_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads in a test wait until the collectors it started have stored what they acknowledged.

    A collector answers once spans are in its spool and inserts them moments later; a test
    that sends and then reads at once would otherwise race the insert.
    """
    started: list[Collector] = []
    original_start = Collector.start

    def start(collector: Collector) -> None:
        original_start(collector)
        started.append(collector)

    monkeypatch.setattr(Collector, "start", start)
    for store_class in (EmbeddedStore, ServerStore):
        for method in ("query_df", "query_rows"):
            original = getattr(store_class, method)

            def read(self, sql, parameters=None, _original=original):
                for collector in started:
                    collector.wait_until_stored()
                return _original(self, sql, parameters)

            monkeypatch.setattr(store_class, method, read)
