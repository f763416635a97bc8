"""The simulator's export pipeline: spans leave once simulated time has passed their end."""

from __future__ import annotations

import threading
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from sample_data.telemetry import ReleasingBatchProcessor


class RecordingExporter(SpanExporter):
    """Keeps the batches it is given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.arrived = threading.Event()

    def export(self, spans):
        self.batches.append([span.name for span in spans])
        self.arrived.set()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _end_spans(provider: TracerProvider, names: list[str], end_ns: int) -> None:
    tracer = provider.get_tracer("test")
    for name in names:
        tracer.start_span(name, start_time=end_ns - 1000).end(end_time=end_ns)


def test_a_partial_batch_leaves_after_its_delay_without_a_flush():
    # a live demo at night once held its spans until 2,048 had ended: half an hour and more
    exporter = RecordingExporter()
    processor = ReleasingBatchProcessor(exporter, max_batch=2048, max_delay_seconds=0.05)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    _end_spans(provider, ["post invoice", "post order"], end_ns=1_000)

    processor.release(500)  # simulated time has not passed their end yet
    processor.release(2_000)  # it has: they wait in a partial batch
    assert not exporter.arrived.wait(0.02)
    time.sleep(0.06)
    processor.release(3_000)  # the next step of the simulation sends the waiting batch

    assert exporter.arrived.wait(5)
    assert exporter.batches == [["post invoice", "post order"]]
    processor.shutdown()


def test_a_full_batch_leaves_at_once_and_nothing_is_lost_at_shutdown():
    exporter = RecordingExporter()
    processor = ReleasingBatchProcessor(exporter, max_batch=3, max_delay_seconds=60)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    _end_spans(provider, [f"span {n}" for n in range(5)], end_ns=1_000)

    processor.release(2_000)
    assert exporter.arrived.wait(5)
    processor.shutdown()

    assert exporter.batches == [["span 0", "span 1", "span 2"], ["span 3", "span 4"]]
