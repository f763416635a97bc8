"""Write-ahead spool: acknowledged span rows, on disk until the store holds them.

A request is answered with success once its rows are in a spool segment on disk (written to a
temporary name, flushed with fsync, then renamed), not once they are in the store. That lets the
writer fill the store with few large inserts whatever the number of clients, and lets the
collector keep what it acknowledged through a crash, a restart or a store outage: segments
left in the directory are inserted again at the next start, oldest first.

A segment is an Arrow IPC file of span rows named by its sequence number. After a crash between
an insert and the removal of its segment, the segment is inserted a second time; every query
counts spans as distinct (TraceId, SpanId), as for a batch a client resends, so nothing is
counted twice. A segment the store refuses for good (or that cannot be read at start) is moved
to the spool's ``rejected/`` folder with the reason beside it, never deleted.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pyarrow as pa

from storage.directory_lock import DirectoryBusy, DirectoryUnusable, lock_directory, unlock
from storage.errors import StoreError

logger = logging.getLogger(__name__)

_SUFFIX = ".arrow"
_PARTIAL_SUFFIX = ".partial"
_LOCK_FILE_NAME = ".lock"
# names the store the spooled spans were acknowledged for
_STORE_FILE_NAME = "store.txt"
REJECTED_DIR_NAME = "rejected"


class SpoolError(StoreError):
    """The spool directory cannot be used; the message says why and what to do."""


@dataclass
class Segment:
    """One spooled group of span rows, in the order it was acknowledged."""

    sequence: int
    path: Path
    spans: int
    size_bytes: int
    spooled_at: float = field(default_factory=time.monotonic)

    def load(self) -> pa.Table:
        """The segment's rows, mapped from its file (no copy; the file is in the page cache)."""
        with pa.memory_map(str(self.path)) as source:
            return pa.ipc.open_file(source).read_all()


class Spool:
    """The spool directory of one collector process (guarded by a lock file)."""

    def __init__(self, directory: Path, *, fsync: bool = True, store: str = "") -> None:
        self.directory = Path(directory)
        self._fsync = fsync
        self._lock_file = _lock(self.directory)
        try:
            self._claim_for(store)
        except SpoolError:
            unlock(self._lock_file)
            raise
        for partial in self.directory.glob(f"*{_PARTIAL_SUFFIX}"):
            partial.unlink()  # never acknowledged: its write did not finish
        self.recovered: list[Segment] = []
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            try:
                self.recovered.append(_read_segment(path))
            except (OSError, ValueError, pa.ArrowException) as exc:
                self._set_aside(path, f"unreadable at start: {exc}")
        self._next_sequence = self.recovered[-1].sequence + 1 if self.recovered else 1
        self.size_bytes = sum(segment.size_bytes for segment in self.recovered)
        self.segments = len(self.recovered)

    def _claim_for(self, store: str) -> None:
        """Record which store this spool feeds; refuse segments left for another one.

        Spans a collector acknowledged for a ClickHouse server, and spooled while the server
        was down, would otherwise be inserted into the embedded store when the next start
        uses it (or the other way round), and the store they were meant for never gets them.
        """
        if not store:
            return
        record = self.directory / _STORE_FILE_NAME
        left = list(self.directory.glob(f"*{_SUFFIX}"))
        recorded = record.read_text().strip() if record.exists() else ""
        if left and recorded and recorded != store:
            raise SpoolError(
                f"The spool {self.directory} holds {len(left)} segment(s) of spans acknowledged "
                f"for {recorded}, not for {store}. Start Seamwatch with that store once to "
                "insert them, or give this one another spool with SEAMWATCH_SPOOL_DIR; the "
                "segments are kept as they are."
            )
        if recorded != store:
            record.write_text(store + "\n")

    def write(self, rows: pa.Table) -> Segment:
        """Put rows on disk for good; raise OSError when the disk refuses."""
        sequence = self._next_sequence
        self._next_sequence += 1
        path = self.directory / f"{sequence:016d}{_SUFFIX}"
        partial = path.with_suffix(_PARTIAL_SUFFIX)
        with open(partial, "wb") as sink:
            with pa.ipc.new_file(sink, rows.schema) as writer:
                writer.write_table(rows)
            if self._fsync:
                sink.flush()
                os.fsync(sink.fileno())
        partial.rename(path)
        if self._fsync:
            _fsync_directory(self.directory)
        # The rows are read back from the page cache when inserted, not kept in memory: under
        # load the spool holds many segments, and memory stays bounded by the insert at hand.
        segment = Segment(sequence, path, rows.num_rows, path.stat().st_size)
        self.size_bytes += segment.size_bytes
        self.segments += 1
        return segment

    def remove(self, segments: list[Segment]) -> None:
        """Forget segments the store now holds."""
        for segment in segments:
            segment.path.unlink(missing_ok=True)
            self._forget(segment)

    def reject(self, segment: Segment, reason: str) -> Path:
        """Move a segment the store refused for good out of the way; return where it went."""
        destination = self._set_aside(segment.path, reason)
        self._forget(segment)
        return destination

    def close(self) -> None:
        """Release the directory for another process (again: nothing happens)."""
        unlock(self._lock_file)

    def _set_aside(self, path: Path, reason: str) -> Path:
        rejected = self.directory / REJECTED_DIR_NAME
        rejected.mkdir(exist_ok=True)
        destination = rejected / path.name
        path.rename(destination)
        destination.with_suffix(".reason.txt").write_text(reason + "\n")
        logger.error("Spool segment set aside in %s: %s", destination, reason)
        return destination

    def _forget(self, segment: Segment) -> None:
        self.size_bytes -= segment.size_bytes
        self.segments -= 1


def _lock(directory: Path) -> IO[str]:
    fix = "Set SEAMWATCH_SPOOL_DIR (or SEAMWATCH_DATA_DIR / --data-dir) to a writable directory."
    try:
        return lock_directory(directory, _LOCK_FILE_NAME)
    except DirectoryUnusable as exc:
        raise SpoolError(
            f"Cannot use the spool directory {str(directory)!r}: {exc.reason}. {fix}"
        ) from exc
    except DirectoryBusy as exc:
        raise SpoolError(
            f"The spool directory {str(directory)!r} is used by another collector (pid "
            f"{exc.holder}). Give each collector its own spool: its own --data-dir / "
            "SEAMWATCH_DATA_DIR, or its own SEAMWATCH_SPOOL_DIR."
        ) from None


def _read_segment(path: Path) -> Segment:
    """A segment left by an earlier run; its rows are read when it is inserted."""
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        spans = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    return Segment(int(path.stem), path, spans, path.stat().st_size)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
