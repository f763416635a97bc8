"""OpenTelemetry plumbing of the simulated stack: services, ids, export and span writing.

Every simulated service owns a ``TracerProvider`` with its own resource, like a real deployment.
All providers share one id generator seeded from the run's seed (and run number), so trace and
span ids repeat for a given seed and run, and one export pipeline, so batches stay large even
though eleven services live in one process.

The pipeline holds each ended span until simulated time has passed its end, then hands it to an
exporter thread through a bounded queue. A full queue blocks the simulation instead of dropping
spans, which is what a backfill of a simulated week needs.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

logger = logging.getLogger(__name__)

SCOPE_NAME = "sample_data.simulator"
SCOPE_VERSION = "0.1.0"
ENVIRONMENT = "production"

_ROOT_CONTEXT = Context()


@dataclass(frozen=True)
class ServiceSpec:
    """One simulated service: its name, the namespace it belongs to and the version it runs."""

    name: str
    namespace: str
    version: str


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("crm", "saas", "2024.11.2"),
    ServiceSpec("cpq", "saas", "5.8.0"),
    ServiceSpec("billing", "saas", "3.14.1"),
    ServiceSpec("payments", "saas", "2.31.0"),
    ServiceSpec("catalog", "saas", "1.9.4"),
    ServiceSpec("support", "saas", "7.2.0"),
    ServiceSpec("integration-api", "middleware", "4.6.3"),
    ServiceSpec("event-router", "middleware", "2.3.7"),
    ServiceSpec("batch-reconciler", "middleware", "1.12.0"),
    ServiceSpec("canonical-mapper", "middleware", "3.0.5"),
    ServiceSpec("erp", "erp", "24.10"),
)


class SeededIdGenerator(IdGenerator):
    """Trace and span ids drawn from a seeded generator, so a seed always yields the same ids."""

    def __init__(self, seed: int | str) -> None:
        self._rng = random.Random(f"{seed}:ids")

    def generate_span_id(self) -> int:
        """A non-zero 64-bit span id."""
        span_id = 0
        while span_id == 0:
            span_id = self._rng.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        """A non-zero 128-bit trace id."""
        trace_id = 0
        while trace_id == 0:
            trace_id = self._rng.getrandbits(128)
        return trace_id

    def is_trace_id_random(self) -> bool:
        """The low 56 bits are uniformly random, which samplers may rely on."""
        return True


@dataclass
class ExportStats:
    """Counters of the export pipeline; written by the exporter thread, read by anyone."""

    emitted: int = 0
    exported: int = 0
    failed: int = 0
    batches: int = 0


class ReleasingBatchProcessor(SpanProcessor):
    """Batches ended spans for export once simulated time has passed their end; never drops.

    ``on_end`` only records the span. ``release(until_ns)`` moves every span that ended by then
    into batches; a batch goes to a bounded queue read by one exporter thread once it is full or
    its first span has waited ``max_delay_seconds`` (a live demo at night fills a batch in an
    hour, and the dashboard would show nothing new meanwhile). Putting into a full queue waits,
    so a slow receiver slows the simulation down rather than losing spans. Spans whose export
    fails after the exporter's own retries are counted; the first failed batch in a row is
    logged.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        max_batch: int = 2048,
        max_queued_batches: int = 4,
        max_delay_seconds: float = 2.0,
    ) -> None:
        self._exporter = exporter
        self._max_batch = max_batch
        self._max_delay_seconds = max_delay_seconds
        self._batch_started = 0.0
        self._held: list[tuple[int, int, ReadableSpan]] = []
        self._order = itertools.count()
        self._batch: list[ReadableSpan] = []
        self._queue: queue.Queue[list[ReadableSpan] | None] = queue.Queue(max_queued_batches)
        self._lock = threading.Lock()
        self._shut_down = False
        self._failing = False  # the last batch failed
        self.stats = ExportStats()
        self._worker = threading.Thread(
            target=self._export_loop, name="simulator-span-export", daemon=True
        )
        self._worker.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts; it is exported once it has ended."""

    def on_end(self, span: ReadableSpan) -> None:
        """Hold the span until simulated time passes its end."""
        heapq.heappush(self._held, (span.end_time or 0, next(self._order), span))
        self.stats.emitted += 1

    @property
    def held(self) -> int:
        """Spans ended in the simulation but not yet released for export."""
        return len(self._held)

    def release(self, until_ns: int) -> None:
        """Queue for export every held span that ended at or before ``until_ns``."""
        held = self._held
        batch = self._batch
        while held and held[0][0] <= until_ns:
            if not batch:
                self._batch_started = time.monotonic()
            batch.append(heapq.heappop(held)[2])
            if len(batch) >= self._max_batch:
                self._queue.put(batch)
                batch = self._batch = []
        if batch and time.monotonic() - self._batch_started >= self._max_delay_seconds:
            self._queue.put(batch)
            self._batch = []

    def drop_ending_after(self, cutoff_ns: int) -> int:
        """Forget the held spans that end after ``cutoff_ns``; returns how many. They no
        longer count as emitted."""
        kept = [entry for entry in self._held if entry[0] <= cutoff_ns]
        dropped = len(self._held) - len(kept)
        heapq.heapify(kept)
        self._held = kept
        self.stats.emitted -= dropped
        return dropped

    def release_all(self) -> None:
        """Queue every held span, whatever its end time (used when the run stops)."""
        while self._held:
            self.release(self._held[0][0])

    def flush(self) -> None:
        """Queue the partial batch and wait until the exporter thread has sent everything."""
        if self._batch:
            self._queue.put(self._batch)
            self._batch = []
        self._queue.join()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Release and export everything held; the SDK calls this through the providers."""
        self.release_all()
        self.flush()
        return True

    def shutdown(self) -> None:
        """Export everything still held, stop the exporter thread and shut the exporter down."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        self.force_flush()
        self._queue.put(None)
        self._worker.join()
        self._exporter.shutdown()

    def _export_loop(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                self._export(batch)
            finally:
                self._queue.task_done()

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        try:
            result = self._exporter.export(batch)
        except Exception:  # an exporter bug must not kill the thread and stall the run
            logger.exception("Exporting %d spans raised", len(batch))
            result = SpanExportResult.FAILURE
        with self._lock:
            self.stats.batches += 1
            if result is SpanExportResult.SUCCESS:
                self.stats.exported += len(batch)
                self._failing = False
                return
            self.stats.failed += len(batch)
            failed = self.stats.failed
            first_in_a_row, self._failing = not self._failing, True
        if first_in_a_row:  # the batches failing after it are counted in the run's summary
            logger.warning("Failed to export %d spans (%d failed so far)", len(batch), failed)


class ServiceTracers:
    """One TracerProvider and tracer per simulated service, sharing ids and the export pipeline."""

    def __init__(self, seed: int | str, processor: SpanProcessor) -> None:
        self.id_generator = SeededIdGenerator(seed)
        self.providers: dict[str, TracerProvider] = {}
        self.tracers: dict[str, Tracer] = {}
        for service in SERVICES:
            provider = TracerProvider(
                resource=service_resource(service),
                sampler=ALWAYS_ON,
                id_generator=self.id_generator,
                shutdown_on_exit=False,
            )
            provider.add_span_processor(processor)
            self.providers[service.name] = provider
            self.tracers[service.name] = provider.get_tracer(SCOPE_NAME, SCOPE_VERSION)


def service_resource(service: ServiceSpec) -> Resource:
    """The resource a real deployment of ``service`` would report."""
    return Resource.create(
        {
            "service.name": service.name,
            "service.namespace": service.namespace,
            "service.version": service.version,
            "deployment.environment": ENVIRONMENT,
            "deployment.environment.name": ENVIRONMENT,
        }
    )


Attributes = dict[str, AttributeValue]


class OpenSpan:
    """A span being written by a ``TraceWriter``; a context manager that ends it on exit."""

    __slots__ = ("span", "_writer")

    def __init__(self, writer: TraceWriter, span: Span) -> None:
        self._writer = writer
        self.span = span

    def __enter__(self) -> OpenSpan:
        self._writer.stack.append(self.span)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._writer.stack.pop()
        self.span.end(end_time=self._writer.now)

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Set attributes by their dotted names."""
        self.span.set_attributes(attributes)

    def fail(
        self,
        category: str,
        message: str,
        exception_type: str,
        error_type: str | None = None,
        status: bool = True,
    ) -> None:
        """Mark a failure: category, ``error.type``, an exception event and (by default) Error."""
        now = self._writer.now
        self.span.set_attribute("integration.exception.category", category)
        self.span.set_attribute("error.type", error_type or exception_type)
        self.span.add_event(
            "exception",
            {"exception.type": exception_type, "exception.message": message},
            timestamp=now,
        )
        if status:
            self.span.set_status(Status(StatusCode.ERROR, message))

    def ok(self) -> None:
        """Mark the span as explicitly successful (used on roots of finished transactions)."""
        self.span.set_status(Status(StatusCode.OK))

    @property
    def context(self) -> trace.SpanContext:
        """The span context, for links from later hops."""
        return self.span.get_span_context()


class TraceWriter:
    """Writes the spans of one trace in simulated time, the way instrumented code nests them.

    ``now`` is the simulated clock in nanoseconds; spans start and end at its current value and
    ``wait`` moves it forward. ``base`` holds the transaction's business attributes, which every
    span of the trace carries.
    """

    __slots__ = ("tracers", "now", "base", "stack")

    def __init__(self, tracers: Mapping[str, Tracer], start_ns: int, base: Attributes) -> None:
        self.tracers = tracers
        self.now = start_ns
        self.base = base
        self.stack: list[Span] = []

    def wait(self, millis: float) -> None:
        """Advance the simulated clock by ``millis`` milliseconds."""
        self.now += int(millis * 1_000_000)

    def span(
        self,
        service: str,
        name: str,
        kind: SpanKind,
        stage: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        links: Sequence[Link] | None = None,
    ) -> OpenSpan:
        """Start a span of ``service`` now, as a child of the innermost open span."""
        attrs = dict(self.base)
        attrs["integration.stage"] = stage
        if attributes:
            attrs.update(attributes)
        context = trace.set_span_in_context(self.stack[-1]) if self.stack else _ROOT_CONTEXT
        span = self.tracers[service].start_span(
            name,
            context=context,
            kind=kind,
            attributes=attrs,
            links=links,
            start_time=self.now,
        )
        return OpenSpan(self, span)  # type: ignore[arg-type]
