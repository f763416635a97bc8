"""Fixtures shared by the whole suite.

chDB opens one data directory per process, so every test that needs the embedded store
shares ``chdb_data_dir`` and gets a database of its own in it from ``store``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Store, migrate
from storage.embedded import EmbeddedStore


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
