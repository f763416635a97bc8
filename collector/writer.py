"""Acknowledged, spooled, batched writes of span rows into ``otel_traces``.

Requests hand their rows to a ``SpanWriter`` and wait for the future it returns. Two named
threads do the work:

- the spooler writes the rows of every request waiting at that moment into one spool segment
  (one fsync for all of them) and resolves their futures: from then on the rows survive a
  crash, so the request is answered with success;
- the inserter fills the store from the spool, oldest first, in inserts of up to
  ``batch_max_spans`` rows (ClickHouse prefers few large inserts to many small ones), and
  removes each segment once the store holds its rows.

Under load the inserts grow to the batch maximum whatever the number of clients; when idle,
rows reach the store within the flush interval. Until the store has taken an insert (at start,
and after it failed), a request is answered only once its own rows are in the store: a client
never gets success for spans sent while the store is known to be down, and gets 503 instead,
its rows withdrawn from the spool. When the store fails, the inserter keeps the acknowledged
spool and tries again every second (probing the store when nothing waits); until the store
answers, ``outage`` says since when, and new requests get ``StoreUnavailable`` (503) so the
spool does not grow without bound. When more than ``max_queue_spans`` spans wait, new requests
get ``Overloaded`` (429). Both carry how long the client should wait before it retries.

A stop does not wait for a store that is down: what the spool holds is on disk already, and the
next start inserts it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from collector.metrics import CollectorMetrics
from collector.spool import Segment, Spool
from storage import TRACES_TABLE, QueryError, Store, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

_DEFAULT_RETRY_AFTER_SECONDS = 5
_SHUTDOWN_TIMEOUT_SECONDS = 30.0
# While the store is down, the inserter tries again this often (the spool keeps the rows).
_STORE_RETRY_SECONDS = 1.0
# While the store is down, the log reminds of it this often, rather than at every retry.
_OUTAGE_REMINDER_SECONDS = 60.0
# A stop with the store down waits this long at most for an insert already under way (a
# server that drops packets holds it until the connect timeout); its rows stay spooled.
_STOP_WITH_STORE_DOWN_SECONDS = 3.0
# When this many full batches wait in the spool, the store is the bottleneck: new requests then
# wait for their answer (their clients slow down) instead of filling the spool up to the limit
# and being refused with a Retry-After that would leave the store idle afterwards.
_SPOOL_AHEAD_BATCHES = 2
# An insert of a full batch takes a second or two on a busy store; one under way this long
# means a store that takes connections but hangs, which /health reports as slow.
SLOW_INSERT_SECONDS = 10.0


class Overloaded(Exception):
    """Too many spans wait for the store; the client should retry after ``retry_after_seconds``."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class WriterClosed(Exception):
    """The writer is shutting down and takes no new rows."""


@dataclass(frozen=True)
class StoreOutage:
    """The store has not taken an insert since ``since`` (UTC), for ``reason``."""

    since: datetime
    reason: str
    started: float = field(default_factory=time.monotonic, compare=False)


def count_spans(spans: int) -> str:
    """A span count in words ("1 span", "2 spans"), for messages people read."""
    return f"{spans} span" if spans == 1 else f"{spans} spans"


@dataclass(frozen=True)
class SlowInsert:
    """An insert under way for ``insert_seconds``, longer than ``SLOW_INSERT_SECONDS``, while
    the oldest acknowledged span not yet stored has waited ``oldest_queued_seconds``."""

    insert_seconds: float
    oldest_queued_seconds: float


@dataclass
class WriterStats:
    """Running totals since start, for logs and metrics."""

    inserted_spans: int = 0
    inserted_batches: int = 0
    failed_batches: int = 0
    rejected_spans: int = 0
    last_insert_seconds: float = 0.0
    queued_spans: int = 0


@dataclass
class _Pending:
    rows: pa.Table
    done: Future = field(default_factory=Future)
    # Answered once the rows are in the store rather than once they are spooled.
    after_insert: bool = False


class SpanWriter:
    """Spools span rows from many requests, then inserts them in large batches."""

    def __init__(
        self,
        store: Store,
        spool: Spool,
        *,
        batch_max_spans: int,
        flush_interval_millis: int,
        max_queue_spans: int,
        retry_after_seconds: int = _DEFAULT_RETRY_AFTER_SECONDS,
        metrics: CollectorMetrics | None = None,
        store_down: StoreUnavailable | None = None,
    ) -> None:
        """``store_down``: the store could not be opened, so the writer starts in an outage
        (503 for new requests, the spool kept) and tries it every second from the start."""
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
        self._spool = spool
        self._metrics = metrics or CollectorMetrics()
        self._batch_max_spans = batch_max_spans
        self._flush_interval_seconds = flush_interval_millis / 1000
        self._max_queue_spans = max_queue_spans
        self._retry_after_seconds = retry_after_seconds
        self._unspooled: deque[_Pending] = deque()
        self._unspooled_spans = 0
        self._backlog: deque[Segment] = deque(spool.recovered)
        self._insert_started: float | None = None  # monotonic time of the insert under way
        self._backlog_spans = sum(segment.spans for segment in spool.recovered)
        self._last_spooled = spool.recovered[-1].sequence if spool.recovered else 0
        self._stored_through = 0
        self._outage: StoreOutage | None = None
        self._retry_at = 0.0
        self._reminded_at = 0.0
        # After an outage: the spool segment through which the backlog it left is inserted,
        # and how many spans of it are, for one line when the store has caught up.
        self._catch_up_through: int | None = None
        self._catch_up_spans = 0
        self._outage_lasted = 0.0
        self._store_proven = False
        # Requests answered only after the insert of their segment, by segment sequence.
        self._unanswered: dict[int, list[_Pending]] = {}
        # spooled segments up to this sequence are inserted without waiting for a fuller batch
        self._hurry_through = 0
        self._closing = False
        self._give_up_at = float("inf")
        self._condition = threading.Condition()
        self.stats = WriterStats()
        if spool.recovered:
            logger.info(
                "Storing %s left in the spool by the previous run",
                count_spans(self._backlog_spans),
            )
        if store_down is not None:
            self._note_outage(store_down)
        self._publish_depth()
        self._spooler = threading.Thread(
            target=self._spool_loop, name="seamwatch-span-spooler", daemon=True
        )
        self._inserter = threading.Thread(
            target=self._insert_loop, name="seamwatch-span-writer", daemon=True
        )
        self._spooler.start()
        self._inserter.start()

    def submit(self, rows: pa.Table) -> Future:
        """Queue rows; the future resolves to the row count once they are spooled on disk.

        Raises Overloaded when too many spans wait, StoreUnavailable while the store is known
        to be down, and WriterClosed after shutdown began.
        """
        pending = _Pending(rows, after_insert=not self._store_proven)
        if rows.num_rows == 0:
            pending.done.set_result(0)
            return pending.done
        with self._condition:
            self._check_accepting(rows.num_rows)
            self._unspooled.append(pending)
            self._unspooled_spans += rows.num_rows
            self._publish_depth()
            self._condition.notify_all()
        return pending.done

    def store_acknowledged(self, timeout_seconds: float) -> bool:
        """Insert every span acknowledged so far without waiting for a fuller batch, and wait
        until it is stored; False on timeout (the store is down or slow)."""
        with self._condition:
            self._hurry_through = max(self._hurry_through, self._last_spooled)
            self._condition.notify_all()
        return self.wait_until_stored(timeout_seconds)

    def wait_until_stored(self, timeout_seconds: float = 30.0) -> bool:
        """Wait until every span acknowledged so far is in the store; False on timeout."""
        deadline = time.monotonic() + timeout_seconds
        with self._condition:
            target = self._last_spooled
            while self._stored_through < target:
                if not self._inserter.is_alive():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    @property
    def outage(self) -> StoreOutage | None:
        """Since when and why the store takes no inserts, or None while it does."""
        return self._outage

    def slow_insert(self) -> SlowInsert | None:
        """The insert under way if it has taken longer than ``SLOW_INSERT_SECONDS``, else None."""
        now = time.monotonic()
        started = self._insert_started
        if started is None or now - started <= SLOW_INSERT_SECONDS:
            return None
        with self._condition:
            oldest = self._backlog[0].spooled_at if self._backlog else started
        return SlowInsert(now - started, now - min(oldest, started))

    @property
    def left_in_spool(self) -> int:
        """After ``shutdown``: the acknowledged spans the store did not take, kept in the spool
        for the next start."""
        return self._backlog_spans

    def shutdown(self, timeout_seconds: float = _SHUTDOWN_TIMEOUT_SECONDS) -> None:
        """Refuse new rows, spool those waiting, store what the store takes, then stop.

        Rows the store cannot take before the timeout stay in the spool for the next start,
        and so does everything at once when the store is down: the spool has them on disk.
        """
        with self._condition:
            if self._closing:
                return
            self._closing = True
            self._give_up_at = time.monotonic() + timeout_seconds
            store_down = self._outage is not None
            self._condition.notify_all()
        self._spooler.join(timeout_seconds)
        if store_down:
            timeout_seconds = _STOP_WITH_STORE_DOWN_SECONDS
        self._inserter.join(timeout_seconds + _STORE_RETRY_SECONDS)
        if self._backlog_spans:
            self._report_left_in_spool()
        self._spool.close()

    def _report_left_in_spool(self) -> None:
        spans = self._backlog_spans
        why = (
            f"the store is unavailable ({self._outage.reason})"
            if self._outage
            else "the store did not take them in time"
        )
        stay, them = ("stays", "it") if spans == 1 else ("stay", "them")
        logger.warning(
            "%s %s in the spool %s, as %s; the next start inserts %s.",
            count_spans(spans).capitalize(),
            stay,
            self._spool.directory,
            why,
            them,
        )

    def _check_accepting(self, span_count: int) -> None:
        if self._closing:
            raise WriterClosed("the collector is shutting down")
        if self._outage is not None:
            raise StoreUnavailable(self._outage.reason)
        waiting = self._unspooled_spans + self._backlog_spans
        if waiting and waiting + span_count > self._max_queue_spans:
            raise Overloaded(
                f"{waiting} spans are waiting for the store (limit {self._max_queue_spans}).",
                self._retry_after_seconds,
            )

    @property
    def retry_after_seconds(self) -> int:
        """Seconds a refused client is told to wait."""
        return self._retry_after_seconds

    def _spool_loop(self) -> None:
        ahead_limit = _SPOOL_AHEAD_BATCHES * self._batch_max_spans
        while True:
            with self._condition:
                while not self._unspooled or (
                    self._backlog_spans >= ahead_limit and not self._closing
                ):
                    if self._closing and not self._unspooled:
                        return
                    self._condition.wait()
                group = list(self._unspooled)
                self._unspooled.clear()
            # Requests to answer after their insert get a segment of their own, so that the
            # rows of a refused request can be withdrawn without touching acknowledged ones.
            answered_now = [pending for pending in group if not pending.after_insert]
            if answered_now:
                self._spool_group(answered_now)
            if len(answered_now) < len(group):
                self._spool_group([pending for pending in group if pending.after_insert])

    def _spool_group(self, group: list[_Pending]) -> None:
        """Write every waiting request's rows as one segment, then answer them all."""
        spans = sum(pending.rows.num_rows for pending in group)
        try:
            rows = pa.concat_tables([pending.rows for pending in group])
            segment = self._spool.write(rows)
        except OSError as exc:
            logger.error("Cannot write %d spans to the spool: %s", spans, exc)
            with self._condition:
                self._unspooled_spans -= spans
                self._publish_depth()
            for pending in group:
                pending.done.set_exception(
                    StoreUnavailable(f"the spool cannot be written: {exc.strerror or exc}")
                )
            return
        after_insert = group[0].after_insert
        with self._condition:
            self._unspooled_spans -= spans
            self._backlog.append(segment)
            self._backlog_spans += spans
            if after_insert:
                self._unanswered[segment.sequence] = group
            else:
                self._last_spooled = segment.sequence
            self._publish_depth()
            self._condition.notify_all()
        if not after_insert:
            for pending in group:
                pending.done.set_result(pending.rows.num_rows)

    def _insert_loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            if batch:
                self._insert(batch)
            else:
                self._probe()
        self._refuse_unanswered()

    def _next_batch(self) -> list[Segment] | None:
        """Wait for a full batch or the flush interval; [] to probe a store that is down
        while nothing waits; None to stop (closed and drained, or the store is down)."""
        with self._condition:
            while True:
                if self._closing:
                    if self._stop_inserting():
                        return None
                    if self._backlog and self._outage is None:
                        break
                    self._condition.wait(0.1)
                elif self._outage is not None:
                    remaining = self._retry_at - time.monotonic()
                    if remaining <= 0:
                        if not self._backlog:
                            return []
                        break
                    self._condition.wait(remaining)
                elif self._backlog:
                    break
                else:
                    self._condition.wait()
            # Clients waiting for their own insert are not kept waiting for a larger batch,
            # nor are detectors about to read what was acknowledged.
            while (
                not self._closing
                and not self._unanswered
                and self._backlog[0].sequence > self._hurry_through
                and self._backlog_spans < self._batch_max_spans
            ):
                remaining = (
                    self._backlog[0].spooled_at + self._flush_interval_seconds - time.monotonic()
                )
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch = [self._backlog[0]]
            taken = batch[0].spans
            for segment in list(self._backlog)[1:]:
                if taken + segment.spans > self._batch_max_spans:
                    break
                batch.append(segment)
                taken += segment.spans
            return batch

    def _stop_inserting(self) -> bool:
        """While closing: whether the inserter is done (called with the condition held).

        Once the spooler has finished, nothing more comes: stop when the backlog is empty,
        when the store is down (the spool keeps the rest) or at the shutdown deadline.
        """
        if self._spooler.is_alive():
            return False
        return not self._backlog or self._outage is not None or time.monotonic() >= self._give_up_at

    def _insert(self, batch: list[Segment]) -> None:
        started = time.monotonic()
        try:
            rows = pa.concat_tables([segment.load() for segment in batch])
            self._insert_rows(rows)
        except StoreUnavailable as exc:
            self._store_failed(batch, exc)
            return
        except (QueryError, OSError, pa.ArrowException) as exc:
            if len(batch) > 1:
                # One segment's rows must not hold the others back: try each on its own, in
                # order, until one is not stored (the store went away meanwhile).
                for segment in batch:
                    if self._backlog[0] is not segment:
                        break
                    self._insert([segment])
                return
            self._reject(batch[0], exc)
            return
        elapsed = time.monotonic() - started
        self.stats.inserted_spans += rows.num_rows
        self.stats.inserted_batches += 1
        self.stats.last_insert_seconds = elapsed
        self._metrics.insert_seconds.observe(elapsed)
        self._metrics.inserted_spans.inc(rows.num_rows)
        logger.debug("Inserted %d spans into %s in %.3fs", rows.num_rows, TRACES_TABLE, elapsed)
        self._stored(batch, rows.num_rows)

    def _insert_rows(self, rows: pa.Table) -> None:
        """Insert into the store, noting meanwhile since when (see ``slow_insert``)."""
        self._insert_started = time.monotonic()
        try:
            self._store.insert_arrow(TRACES_TABLE, rows)
        finally:
            self._insert_started = None

    def _stored(self, batch: list[Segment], spans: int) -> None:
        self._store_answered()
        if self._catch_up_through is not None:
            self._catch_up_spans += spans
        self._spool.remove(batch)
        self._retire(batch, store_proven=True)

    def _probe(self) -> None:
        """Ask a store that is down whether it answers again, while nothing waits to go in."""
        try:
            self._store.command("SELECT 1")
        except StoreUnavailable as exc:
            self._note_outage(exc)
            return
        except (StoreError, OSError):
            pass  # it answered: it is up, whatever it thinks of the statement
        self._store_answered()
        self._report_catch_up()

    def _retire(self, batch: list[Segment], *, store_proven: bool = False) -> None:
        """Take the oldest segments off the backlog and answer the clients still waiting."""
        answered: list[_Pending] = []
        with self._condition:
            self._store_proven = self._store_proven or store_proven
            for _ in batch:
                segment = self._backlog.popleft()
                self._backlog_spans -= segment.spans
                self._stored_through = segment.sequence
                answered += self._unanswered.pop(segment.sequence, [])
            self._publish_depth()
            self._condition.notify_all()
        for pending in answered:
            pending.done.set_result(pending.rows.num_rows)
        self._report_catch_up()

    def _store_failed(self, batch: list[Segment], exc: StoreUnavailable) -> None:
        self.stats.failed_batches += 1
        refused = self._withdraw_unanswered(batch)
        for pending in refused:
            pending.done.set_exception(exc)
        if refused:
            logger.debug(
                "%s not yet answered are refused with 503",
                count_spans(sum(pending.rows.num_rows for pending in refused)),
            )
        self._note_outage(exc)

    def _note_outage(self, exc: StoreUnavailable) -> None:
        """Record a failed attempt: warn once, then remind now and then, and retry later."""
        now = time.monotonic()
        with self._condition:
            self._retry_at = now + _STORE_RETRY_SECONDS
            waiting = self._backlog_spans
            if self._outage is None:
                self._outage = StoreOutage(datetime.now(UTC), _short(str(exc)))
                self._reminded_at = now
                self._catch_up_through = None
                self._condition.notify_all()
                logger.warning(
                    "The store is unavailable: %s. New requests get 503 until it answers; %s.",
                    self._outage.reason,
                    _in_spool(waiting),
                )
            elif now - self._reminded_at >= _OUTAGE_REMINDER_SECONDS:
                self._reminded_at = now
                logger.warning(
                    "The store is still unavailable after %s: %s; %s.",
                    _duration(now - self._outage.started),
                    self._outage.reason,
                    _in_spool(waiting),
                )

    def _store_answered(self) -> None:
        """The store took an insert or answered a probe: end the outage, if there was one."""
        with self._condition:
            if self._outage is None:
                return
            self._catch_up_through = self._backlog[-1].sequence if self._backlog else 0
            self._catch_up_spans = 0
            self._outage_lasted = time.monotonic() - self._outage.started
            self._outage = None
            self._condition.notify_all()

    def _report_catch_up(self) -> None:
        """One line once the spans the outage left in the spool are in the store."""
        if self._catch_up_through is None or self._stored_through < self._catch_up_through:
            return
        self._catch_up_through = None
        logger.info(
            "The store is available again after %s; %s from the spool inserted",
            _duration(self._outage_lasted),
            count_spans(self._catch_up_spans),
        )

    def _refuse_unanswered(self) -> None:
        """At a stop: requests still waiting for their own insert are refused (503)."""
        reason = self._outage.reason if self._outage else "the collector is shutting down"
        for pending in self._withdraw_unanswered(list(self._backlog)):
            pending.done.set_exception(StoreUnavailable(reason))

    def _withdraw_unanswered(self, batch: list[Segment]) -> list[_Pending]:
        """Take back the rows of requests not yet answered: their clients are told to retry."""
        withdrawn = [segment for segment in batch if segment.sequence in self._unanswered]
        self._spool.remove(withdrawn)
        with self._condition:
            self._store_proven = False
            refused: list[_Pending] = []
            for segment in withdrawn:
                self._backlog.remove(segment)
                self._backlog_spans -= segment.spans
                refused += self._unanswered.pop(segment.sequence)
            self._publish_depth()
            self._condition.notify_all()
        return refused

    def _reject(self, segment: Segment, exc: Exception) -> None:
        """The store refuses these rows for good: keep them aside, never delete them."""
        self.stats.failed_batches += 1
        self.stats.rejected_spans += segment.spans
        self._metrics.dropped_spans.inc(segment.spans)
        place = self._spool.reject(segment, f"the store refused the rows: {exc}")
        logger.error(
            "The store refused %d acknowledged spans for good (%s); they are kept in %s",
            segment.spans,
            exc,
            place,
        )
        # Kept aside for good, so a client still waiting is answered: a retry cannot help.
        self._retire([segment])

    def _publish_depth(self) -> None:
        self.stats.queued_spans = self._unspooled_spans + self._backlog_spans
        self._metrics.queued_spans.set(self.stats.queued_spans)
        self._metrics.spool_bytes.set(self._spool.size_bytes)
        self._metrics.spool_segments.set(self._spool.segments)


def _short(reason: str, limit: int = 300) -> str:
    """A reason for the log and a client's 503: one line, bounded."""
    line = reason.strip().splitlines()[0] if reason.strip() else "no reason given"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _in_spool(spans: int) -> str:
    if spans == 0:
        return "nothing waits in the spool"
    return f"{count_spans(spans)} {'waits' if spans == 1 else 'wait'} in the spool"


def _duration(seconds: float) -> str:
    """How long an outage lasted, for the log ("42 s", "3 min 5 s")."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
