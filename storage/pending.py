"""A ClickHouse server store for a collector that starts while the server is down.

The collector's spool keeps acknowledged spans through an outage of the store, and its writer
tries the store again every second; only opening the store (connecting, creating the database,
migrating the schema) stood in the way of starting. ``PendingServerStore`` opens it at the first
call that finds the server up. Until then every call raises StoreUnavailable, which the writer
answers with 503 and Retry-After while the spool keeps what waits in it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pandas as pd
import pyarrow as pa

from seamwatch.settings import Settings
from storage import open_store
from storage.base import Store
from storage.errors import StoreError, StoreUnavailable
from storage.server import server_address, server_outage

logger = logging.getLogger(__name__)


def open_store_or_pending(settings: Settings) -> tuple[Store, StoreUnavailable | None]:
    """The store the settings name, opened; or, while a ClickHouse server does not answer, a
    store that opens once it does, with the outage that kept it closed.

    Any other error (the embedded store held, a server that refuses the credentials) is raised:
    a setting or a machine to fix before starting."""
    try:
        return open_store(settings), None
    except StoreUnavailable as exc:
        if not settings.uses_server:
            raise
        store = PendingServerStore(settings)
        return store, server_outage(exc.__cause__, store.address) or exc


class PendingServerStore:
    """A server store opened at the first call that finds the server up. Safe to share between
    threads."""

    backend = "server"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.database = settings.server_database()
        self.address = server_address(settings.clickhouse_url or "")
        self._opened: Store | None = None
        self._lock = threading.Lock()

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        self._store().command(sql, parameters)

    def query_df(self, sql: str, parameters: dict[str, Any] | None = None) -> pd.DataFrame:
        return self._store().query_df(sql, parameters)

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        return self._store().query_rows(sql, parameters)

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        return self._store().insert_arrow(table, data)

    def close(self) -> None:
        with self._lock:
            if self._opened is not None:
                self._opened.close()

    def _store(self) -> Store:
        opened = self._opened
        if opened is not None:
            return opened
        with self._lock:
            if self._opened is None:
                self._opened = self._open()
            return self._opened

    def _open(self) -> Store:
        try:
            store = open_store(self._settings)
        except StoreUnavailable as exc:
            raise server_outage(exc.__cause__, self.address) or exc from exc
        except StoreError as exc:
            # the server answers but cannot be used yet (credentials, a schema statement it
            # refuses): a refusal of the rows would set acknowledged spans aside, so the spool
            # keeps them and the writer keeps trying, naming the reason in its log
            raise StoreUnavailable(
                f"the ClickHouse server at {self.address} answers but cannot be opened: {exc}"
            ) from exc
        logger.info(
            "The ClickHouse server at %s answers; the schema of %s is up to date",
            self.address,
            self.database,
        )
        return store
