"""A running collector over the test's own database, and helpers to read what it stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.service import Collector
from seamwatch.settings import Settings
from storage import Store

SHARED_DIR = Path(__file__).resolve().parents[3] / "shared"


@pytest.fixture
def collector_settings(chdb_data_dir: Path, tmp_path: Path) -> Settings:
    """Receiver settings on an ephemeral loopback port, flushing quickly."""
    return Settings(
        data_dir=chdb_data_dir,
        spool_dir=tmp_path / "spool",
        otlp_http_host="127.0.0.1",
        otlp_http_port=0,
        otlp_grpc_port=0,
        batch_flush_interval_millis=20,
    )


@pytest.fixture
def running_collector(store: Store, collector_settings: Settings) -> Iterator[Collector]:
    """An OTLP/HTTP receiver writing into ``store``, stopped after the test."""
    service = Collector(store, collector_settings)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def shared_file(relative: str) -> Path:
    """A file of the shared test data; skips the test when the data is not beside the repo."""
    path = SHARED_DIR / relative
    if not path.exists():
        pytest.skip(f"shared test data not found at {path}")
    return path
