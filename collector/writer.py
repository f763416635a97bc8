"""Batched, acknowledged writes of span rows into ``otel_traces``.

Requests hand their rows to a ``SpanWriter`` and wait for the future it returns. A named worker
thread gathers the rows of many requests into one insert (ClickHouse prefers few large inserts
to many small ones) and resolves every future once its rows are stored. A request is answered
with success only after that, so an acknowledged span is never lost to a crash or a shutdown.

The queue is bounded in spans. When it is full, ``submit`` raises ``Overloaded``; when the store
has just failed, it raises ``StoreUnavailable`` at once for a short while instead of queueing
rows that cannot be written. Both carry how long the client should wait before it retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import pyarrow as pa

from collector.metrics import CollectorMetrics
from storage import TRACES_TABLE, QueryError, Store, StoreUnavailable

logger = logging.getLogger(__name__)

_DEFAULT_RETRY_AFTER_SECONDS = 5
# Below this many spans the worker waits up to the flush interval for more; at or above it, it
# inserts as soon as it is free. Under load, requests that arrive during one insert form the
# next batch, so batches grow with the load without adding latency when the store is idle.
_DEFAULT_BATCH_MIN_SPANS = 1000
# Under load (the last insert took rows of several requests), the clients it answered send again
# at once. Once the batch minimum is queued, the worker still waits while rows keep arriving, up
# to this long after the last arrival (or the end of the last insert): one insert of the whole
# burst costs far less than several small ones (each insert writes a part that is merged later).
_DEFAULT_BATCH_LINGER_MILLIS = 25
_SHUTDOWN_TIMEOUT_SECONDS = 30.0


class Overloaded(Exception):
    """Too many spans wait for the store; the client should retry after ``retry_after_seconds``."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class WriterClosed(Exception):
    """The writer is shutting down and takes no new rows."""


@dataclass
class WriterStats:
    """Running totals since start, for logs and metrics."""

    inserted_spans: int = 0
    inserted_batches: int = 0
    failed_batches: int = 0
    last_insert_seconds: float = 0.0
    queued_spans: int = 0


@dataclass
class _Pending:
    rows: pa.Table
    done: Future = field(default_factory=Future)


class SpanWriter:
    """Gathers span rows from many requests and inserts them in batches."""

    def __init__(
        self,
        store: Store,
        *,
        batch_max_spans: int,
        flush_interval_millis: int,
        batch_min_spans: int = _DEFAULT_BATCH_MIN_SPANS,
        batch_linger_millis: int = _DEFAULT_BATCH_LINGER_MILLIS,
        max_queue_spans: int,
        retry_after_seconds: int = _DEFAULT_RETRY_AFTER_SECONDS,
        metrics: CollectorMetrics | None = None,
    ) -> None:
        if batch_max_spans <= 0:
            raise ValueError(f"batch_max_spans must be positive, not {batch_max_spans!r}")
        if flush_interval_millis <= 0:
            raise ValueError(
                f"flush_interval_millis must be positive, not {flush_interval_millis!r}"
            )
        if max_queue_spans < batch_max_spans:
            raise ValueError(
                f"max_queue_spans ({max_queue_spans}) must be at least "
                f"batch_max_spans ({batch_max_spans})"
            )
        self._store = store
        self._metrics = metrics or CollectorMetrics()
        self._batch_max_spans = batch_max_spans
        self._batch_min_spans = min(batch_min_spans, batch_max_spans)
        self._flush_interval_seconds = flush_interval_millis / 1000
        self._linger_seconds = max(batch_linger_millis, 0) / 1000
        self._last_arrival_at = 0.0
        self._last_batch_requests = 0
        self._max_queue_spans = max_queue_spans
        self._retry_after_seconds = retry_after_seconds
        self._queue: deque[_Pending] = deque()
        self._queued_spans = 0
        self._oldest_enqueued_at = 0.0
        self._unavailable_until = 0.0
        self._closing = False
        self._condition = threading.Condition()
        self.stats = WriterStats()
        self._worker = threading.Thread(target=self._run, name="seamwatch-span-writer", daemon=True)
        self._worker.start()

    def submit(self, rows: pa.Table) -> Future:
        """Queue rows for insertion; the future resolves to the row count once they are stored.

        Raises Overloaded when the queue is full, StoreUnavailable while the store is known to
        be down, and WriterClosed after shutdown began.
        """
        pending = _Pending(rows)
        if rows.num_rows == 0:
            pending.done.set_result(0)
            return pending.done
        with self._condition:
            self._check_accepting(rows.num_rows)
            if not self._queue:
                self._oldest_enqueued_at = time.monotonic()
            self._queue.append(pending)
            self._last_arrival_at = time.monotonic()
            self._queued_spans += rows.num_rows
            self.stats.queued_spans = self._queued_spans
            self._metrics.queued_spans.set(self._queued_spans)
            self._condition.notify()
        return pending.done

    def shutdown(self, timeout_seconds: float = _SHUTDOWN_TIMEOUT_SECONDS) -> None:
        """Refuse new rows, store everything already queued, then stop the worker."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._worker.join(timeout_seconds)
        if self._worker.is_alive():
            logger.error("Span writer did not drain within %.0fs", timeout_seconds)

    def _check_accepting(self, span_count: int) -> None:
        if self._closing:
            raise WriterClosed("The collector is shutting down.")
        wait_seconds = self._unavailable_until - time.monotonic()
        if wait_seconds > 0:
            raise StoreUnavailable("The store failed moments ago; retry later.")
        if self._queue and self._queued_spans + span_count > self._max_queue_spans:
            raise Overloaded(
                f"{self._queued_spans} spans are waiting for the store (limit "
                f"{self._max_queue_spans}).",
                self._retry_after_seconds,
            )

    @property
    def retry_after_seconds(self) -> int:
        """Seconds a refused client is told to wait."""
        return self._retry_after_seconds

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._write(batch)

    def _next_batch(self) -> list[_Pending] | None:
        """Wait for a full batch or the flush interval; None once closed and drained."""
        with self._condition:
            while not self._queue:
                if self._closing:
                    return None
                self._condition.wait()
            while not self._closing and self._queued_spans < self._batch_max_spans:
                deadline = self._oldest_enqueued_at + self._flush_interval_seconds
                if self._queued_spans >= self._batch_min_spans:
                    if self._last_batch_requests < 2:
                        break
                    deadline = min(deadline, self._last_arrival_at + self._linger_seconds)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch = [self._queue.popleft()]
            taken = batch[0].rows.num_rows
            while self._queue and taken + self._queue[0].rows.num_rows <= self._batch_max_spans:
                batch.append(self._queue.popleft())
                taken += batch[-1].rows.num_rows
            self._queued_spans -= taken
            self.stats.queued_spans = self._queued_spans
            self._metrics.queued_spans.set(self._queued_spans)
            self._oldest_enqueued_at = time.monotonic()
            self._last_batch_requests = len(batch)
            return batch

    def _write(self, batch: list[_Pending]) -> None:
        rows = pa.concat_tables([pending.rows for pending in batch])
        started = time.monotonic()
        try:
            self._store.insert_arrow(TRACES_TABLE, rows)
        except StoreUnavailable as exc:
            self._fail(batch, exc)
            return
        except QueryError as exc:
            if len(batch) > 1:
                # One request's rows must not sink the others: try each on its own.
                for pending in batch:
                    self._write([pending])
                return
            self._fail(batch, exc)
            return
        elapsed = time.monotonic() - started
        self.stats.inserted_spans += rows.num_rows
        self.stats.inserted_batches += 1
        self.stats.last_insert_seconds = elapsed
        self._metrics.insert_seconds.observe(elapsed)
        self._metrics.inserted_spans.inc(rows.num_rows)
        logger.debug("Inserted %d spans into %s in %.3fs", rows.num_rows, TRACES_TABLE, elapsed)
        with self._condition:
            # Clients answered now send again; their rows count as arriving from here on.
            self._last_arrival_at = max(self._last_arrival_at, time.monotonic())
        for pending in batch:
            pending.done.set_result(pending.rows.num_rows)

    def _fail(self, batch: list[_Pending], exc: Exception) -> None:
        self.stats.failed_batches += 1
        if isinstance(exc, StoreUnavailable):
            self._unavailable_until = time.monotonic() + self._retry_after_seconds
            logger.warning(
                "Store unavailable, refusing %d spans for %ds: %s",
                sum(p.rows.num_rows for p in batch),
                self._retry_after_seconds,
                exc,
            )
        else:
            logger.error("Insert of %d spans refused: %s", batch[0].rows.num_rows, exc)
        for pending in batch:
            pending.done.set_exception(exc)
