"""Stores as an earlier Seamwatch left them: migrated with only some of today's migrations."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from storage import Store, schema
from storage.embedded import EmbeddedStore
from storage.schema import Migration, migrate
from storage.server import ServerStore


@contextmanager
def older_store(
    request: pytest.FixtureRequest,
    chdb_data_dir: str,
    monkeypatch: pytest.MonkeyPatch,
    applied: Callable[[Migration], bool],
) -> Iterator[Store]:
    """A new database of the backend ``request.param`` names (``embedded``, or ``server``
    through the ``server_port`` fixture) migrated with the migrations ``applied`` keeps;
    dropped afterwards."""
    database = f"previous_{uuid.uuid4().hex[:12]}"
    if request.param == "embedded":
        store: Store = EmbeddedStore(chdb_data_dir, database=database)
    else:
        port = request.getfixturevalue("server_port")
        store = ServerStore(f"http://default:@127.0.0.1:{port}/{database}", database)
    try:
        with monkeypatch.context() as previous:
            known = [migration for migration in schema.MIGRATIONS if applied(migration)]
            previous.setattr(schema, "MIGRATIONS", known)
            migrate(store)
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
        store.close()
