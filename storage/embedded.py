"""The embedded store: ClickHouse running inside this process through chDB.

chDB opens one data directory per process, and the engine itself locks it against other
processes with an unhelpful message. A lock file of our own, taken first, lets a second
process say plainly which process holds the directory and what to do instead.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from storage.directory_lock import DirectoryBusy, DirectoryUnusable, lock_directory, unlock
from storage.errors import QueryError, StoreError, StoreLocked, query_error

logger = logging.getLogger(__name__)

_LOCK_FILE_NAME = "seamwatch.lock"
_ENGINE_DIR_NAME = "clickhouse"
_ALLOCATOR_CONF = "dirty_decay_ms:1000"
# ClickHouse reads a bound value in its escaped text form (as a TabSeparated field): a
# backslash starts an escape sequence, a raw tab or line break ends the value. chDB passes
# values on as they are, so a string is escaped here to be matched exactly as written (the
# server's driver escapes the same characters; other control characters may stay raw).
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n"})


def holds_a_store(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds an embedded store (for commands that must not create one)."""
    return (Path(data_dir) / _ENGINE_DIR_NAME).is_dir()


# One engine per process: chDB refuses a second data directory in the same process.
_engine_guard = threading.Lock()
_engine: _Engine | None = None


class _Engine:
    """The process-wide chDB session and the lock file that guards its directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.users = 0
        self.query_lock = threading.Lock()
        self._lock_file = _take_directory_lock(data_dir)
        # ClickHouse's allocator keeps freed pages for 5 s by default; under a steady insert load
        # that held about 100 MiB more at peak than returning them after 1 s, at the same speed
        # (side by side with `seamwatch bench ingest`). Read when chDB loads; a value set in the
        # environment wins.
        os.environ.setdefault("JE_MALLOC_CONF", _ALLOCATOR_CONF)
        from chdb import session

        try:
            self.session = session.Session(str(data_dir / _ENGINE_DIR_NAME))
        except Exception as exc:  # chDB raises RuntimeError for any start-up failure
            self._release_lock()
            raise StoreError(f"Cannot start the embedded ClickHouse in {data_dir}: {exc}") from exc

    def close(self) -> None:
        self.session.close()
        self._release_lock()

    def _release_lock(self) -> None:
        unlock(self._lock_file)


def _take_directory_lock(data_dir: Path) -> Any:
    try:
        return lock_directory(data_dir, _LOCK_FILE_NAME)
    except DirectoryUnusable as exc:
        raise StoreError(
            f"Cannot use data directory {str(data_dir)!r}: {exc.reason}. "
            "Set SEAMWATCH_DATA_DIR (or --data-dir) to a writable directory."
        ) from exc
    except DirectoryBusy as exc:
        raise StoreLocked(
            f"The data directory {str(data_dir)!r} is in use by another Seamwatch process "
            f"(pid {exc.holder}). The embedded store can be opened by one process at a time. "
            "Stop that process, or give this one its own directory with --data-dir / "
            "SEAMWATCH_DATA_DIR, or point every process at a ClickHouse server with "
            "SEAMWATCH_CLICKHOUSE_URL.",
            holder=exc.holder,
        ) from None


class EmbeddedStore:
    """A database inside the process-wide chDB engine. Safe to share between threads."""

    backend = "embedded"

    def __init__(self, data_dir: Path, database: str) -> None:
        global _engine
        data_dir = Path(data_dir).resolve()
        with _engine_guard:
            if _engine is None:
                _engine = _Engine(data_dir)
            elif _engine.data_dir != data_dir:
                raise StoreError(
                    f"This process already uses the embedded store in {str(_engine.data_dir)!r}; "
                    f"it cannot open {str(data_dir)!r} as well."
                )
            _engine.users += 1
            self._engine = _engine
        self.database = database
        self.data_dir = data_dir
        self._closed = False
        self.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        self._run(sql, "CSV", parameters)

    def query_df(self, sql: str, parameters: dict[str, Any] | None = None) -> pd.DataFrame:
        return self._run(sql, "DataFrame", parameters)

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        frame = self.query_df(sql, parameters)
        return list(frame.itertuples(index=False, name=None))

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        if data.num_rows == 0:
            return 0
        self._check_open()
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        # chDB's Python() table function reads the local variable named in the statement.
        arrow_rows = data  # noqa: F841 - read by name inside the SQL below
        # The materialized views on otel_traces (lineage index, rollups) cost more than the
        # insert itself; running them side by side puts the second core to work. Merging equal
        # keys inside each inserted block is left to the background merges, which do it anyway
        # (every reader already counts distinct spans), and block hashes for deduplication are
        # not computed: the store never deduplicates inserts (resent spans are counted once).
        sql = (
            f"INSERT INTO {self.table(table)} ({columns}) SELECT {columns} FROM Python(arrow_rows) "
            "SETTINGS parallel_view_processing = 1, optimize_on_insert = 0, insert_deduplicate = 0"
        )
        with self._engine.query_lock:
            try:
                self._engine.session.query(sql, "CSV")
            except Exception as exc:
                raise QueryError(f"Insert into {table} failed: {exc}") from exc
        return data.num_rows

    def close(self) -> None:
        global _engine
        if self._closed:
            return
        self._closed = True
        with _engine_guard:
            self._engine.users -= 1
            if self._engine.users == 0:
                self._engine.close()
                _engine = None

    def _check_open(self) -> None:
        # another user of the engine (a second store object of the process) keeps it open:
        # a closed store must refuse work all the same, not write through the engine
        if self._closed:
            raise StoreError("The embedded store was closed.")

    def _run(self, sql: str, fmt: str, parameters: dict[str, Any] | None) -> Any:
        self._check_open()
        with self._engine.query_lock:
            try:
                return self._engine.session.query(sql, fmt, params=_bound(parameters))
            except Exception as exc:  # chDB raises one error type for every refusal
                raise query_error(str(exc)) from exc


def _bound(parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """``parameters`` as chDB binds them: each string in ClickHouse's escaped text form."""
    if not parameters:
        return None
    return {
        name: value.translate(_TEXT_ESCAPES) if isinstance(value, str) else value
        for name, value in parameters.items()
    }
