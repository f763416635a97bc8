"""The server store: a ClickHouse server or cluster reached with clickhouse-connect."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa

from storage.errors import QueryError, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)
# The driver logs a warning before raising each connection error; the error we raise says it.
logging.getLogger("clickhouse_connect.driver._backend.http_sync").setLevel(logging.ERROR)


def _address(url: str) -> str:
    """``host:port`` of a ClickHouse URL, without its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a connection error ("[Errno 111] Connection refused")."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\][^\"')]*", text)
    if match:
        return match.group(0).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class ServerStore:
    """A database on a ClickHouse server. Safe to share between threads.

    clickhouse-connect pools its HTTP connections. The client opens no HTTP session, because a
    ClickHouse session takes one query at a time and the store is shared by threads. Columns
    with a time zone come back time-zone aware, and an empty result keeps its columns, as they
    do from the embedded store.
    """

    backend = "server"

    def __init__(self, url: str, database: str) -> None:
        import clickhouse_connect
        from clickhouse_connect.driver import exceptions as ch_errors

        self._errors = ch_errors
        self.database = database
        options = {"autogenerate_session_id": False, "tz_mode": "schema"}
        try:
            admin = clickhouse_connect.get_client(dsn=url, database="default", **options)
            admin.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            admin.close()
            self._client = clickhouse_connect.get_client(dsn=url, database=database, **options)
        except ch_errors.OperationalError as exc:
            raise StoreUnavailable(
                f"Cannot reach the ClickHouse server at {_address(url)}: {_root_cause(exc)}. "
                "Check SEAMWATCH_CLICKHOUSE_URL (or --clickhouse-url) and that the server runs."
            ) from exc
        except ch_errors.Error as exc:
            raise StoreError(f"The ClickHouse server refused the connection: {exc}") from exc

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        self._call(self._client.command, sql, parameters=parameters)

    def query_df(self, sql: str, parameters: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = self._call(self._client.query_df, sql, parameters=parameters)
        if len(frame.columns) == 0:
            frame = self._empty_frame(sql, parameters)
        return frame

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        result = self._call(self._client.query, sql, parameters=parameters)
        return [tuple(row) for row in result.result_rows]

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        if data.num_rows == 0:
            return 0
        self._call(self._client.insert_arrow, table, data, database=self.database)
        return data.num_rows

    def close(self) -> None:
        self._client.close()

    def _empty_frame(self, sql: str, parameters: dict[str, Any] | None) -> pd.DataFrame:
        # ClickHouse answers an empty result in the Native format with no bytes at all, so not
        # even the column names arrive; a LIMIT 0 query over the statement names them.
        probe = f"SELECT * FROM ({sql}) LIMIT 0"
        try:
            columns = self._call(self._client.query, probe, parameters=parameters).column_names
        except QueryError:  # not a SELECT (SHOW, EXPLAIN...): the result has no known columns
            return pd.DataFrame()
        return pd.DataFrame(columns=list(columns))

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except self._errors.OperationalError as exc:
            raise StoreUnavailable(f"ClickHouse server unavailable: {exc}") from exc
        except self._errors.Error as exc:
            raise QueryError(str(exc)) from exc
