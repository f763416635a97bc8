"""The one small interface every role uses to talk to ClickHouse."""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd
import pyarrow as pa


class Store(Protocol):
    """A ClickHouse database, embedded (chDB) or on a server (clickhouse-connect).

    Both backends speak the same SQL. Values are bound as ``{name:Type}`` parameters; table
    names come from :meth:`table`, which quotes the configured database.
    """

    database: str
    backend: str

    def table(self, name: str) -> str:
        """The quoted, database-qualified name of table ``name``."""
        ...

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, ALTER, INSERT ... SELECT)."""
        ...

    def query_df(self, sql: str, parameters: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a SELECT and return its result as a pandas DataFrame."""
        ...

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        """Run a SELECT and return its rows as tuples."""
        ...

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        """Insert the columns of ``data`` (names as in the table) and return the row count."""
        ...

    def close(self) -> None:
        """Release the connection or the embedded data directory."""
        ...
