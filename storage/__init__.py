"""Storage for every Seamwatch role: one interface, two ClickHouse backends.

``open_store`` picks the backend from the settings (a ClickHouse server when
``SEAMWATCH_CLICKHOUSE_URL`` is set, the embedded chDB engine otherwise) and brings the
schema up to date.
"""

from __future__ import annotations

from seamwatch.settings import Settings
from storage.base import Store
from storage.errors import BadValue, QueryError, StoreError, StoreLocked, StoreUnavailable
from storage.schema import TRACE_COLUMNS, TRACES_TABLE, migrate

__all__ = [
    "BadValue",
    "QueryError",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "TRACES_TABLE",
    "TRACE_COLUMNS",
    "migrate",
    "open_store",
]


def open_store(
    settings: Settings, *, database: str | None = None, probe_seconds: int | None = None
) -> Store:
    """Open the store the settings name and migrate its schema forward.

    ``probe_seconds`` first asks a ClickHouse server whether it answers at all, with that
    short timeout (see ``ServerStore``); the embedded store ignores it."""
    if settings.uses_server:
        from storage.server import ServerStore

        store: Store = ServerStore(
            settings.clickhouse_url,
            database or settings.server_database(),
            probe_seconds=probe_seconds,
        )
    else:
        from storage.embedded import EmbeddedStore

        store = EmbeddedStore(settings.data_dir, database or settings.database)
    try:
        migrate(store, settings.retention_days)
    except StoreError:
        store.close()
        raise
    return store
