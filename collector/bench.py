"""``seamwatch bench ingest``: spans per second through a running receiver, against the ceiling.

The receiver runs in a process of its own (as in production, and so that its peak memory can be
read on its own). Senders in this process post realistic OTLP/HTTP protobuf requests over
loopback, prepared in advance: 1,000 spans each, 8 to 12 attributes, some events and links. In
the same run, the same spans decoded in advance are inserted straight into another embedded
store: that is the ceiling the end-to-end figure is compared with.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from collector.spans import request_to_batch

SPANS_PER_REQUEST = 1000
_DISTINCT_REQUESTS = 32
_START_TIMEOUT_SECONDS = 60.0
_RETRYABLE = (429, 502, 503, 504)
_SERVICES = ("crm", "integration-api", "event-router", "canonical-mapper", "billing", "erp")
_FLOWS = ("order-to-cash.order-submit", "billing.invoice-post", "payments.payment-apply")


@dataclass(frozen=True)
class IngestFigures:
    """What one benchmark run measured."""

    spans: int
    end_to_end_spans_per_second: float
    ceiling_rows_per_second: float
    receiver_peak_rss_bytes: int

    @property
    def ratio(self) -> float:
        """End-to-end rate over the ceiling."""
        return self.end_to_end_spans_per_second / self.ceiling_rows_per_second


def realistic_request(rng: random.Random, number: int) -> bytes:
    """One OTLP request of ``SPANS_PER_REQUEST`` spans shaped like an integration stack's."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    service = _SERVICES[number % len(_SERVICES)]
    for key, value in (("service.name", service), ("deployment.environment", "prod")):
        resource_spans.resource.attributes.add(key=key).value.string_value = value
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "seamwatch.bench"
    start = 1_764_000_000_000_000_000 + number * 10_000_000_000
    for index in range(SPANS_PER_REQUEST):
        _add_span(scope_spans.spans.add(), rng, start + index * 1_000_000, index)
    return request.SerializeToString()


def _add_span(span: object, rng: random.Random, start_ns: int, index: int) -> None:
    span.trace_id = rng.randbytes(16)
    span.span_id = rng.randbytes(8)
    span.parent_span_id = rng.randbytes(8) if index % 4 else b""
    span.name = "POST /sales-orders" if index % 2 else "publish invoice.posted"
    span.kind = 2 + index % 3
    span.start_time_unix_nano = start_ns
    span.end_time_unix_nano = start_ns + rng.randint(1_000_000, 900_000_000)
    attributes = {
        "integration.flow": _FLOWS[index % len(_FLOWS)],
        "integration.stage": "post",
        "integration.source": "crm",
        "integration.target": "erp",
        "business.object": "SalesOrder",
        "business.key": f"SO-{rng.randint(10_000, 99_999)}",
        "correlation.id": rng.randbytes(16).hex(),
        "http.request.method": "POST",
    }
    for key, value in attributes.items():
        span.attributes.add(key=key).value.string_value = value
    span.attributes.add(key="http.response.status_code").value.int_value = 200
    span.attributes.add(key="business.amount").value.double_value = rng.randint(100, 90_000) / 4
    for extra in range(rng.randint(0, 2)):
        span.attributes.add(key=f"erp.field.{extra}").value.string_value = "x" * rng.randint(3, 40)
    if index % 10 == 0:
        event = span.events.add(name="exception", time_unix_nano=start_ns + 5_000)
        event.attributes.add(key="exception.message").value.string_value = "ERP timeout"
        span.status.code = 2
        span.status.message = "ERP timeout"
    if index % 5 == 0:
        span.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8))


def run_ingest_benchmark(total_spans: int, senders: int, console: Console) -> IngestFigures:
    """Measure end to end and the ceiling side by side; print progress on ``console``."""
    rng = random.Random(20261204)
    console.print(f"Preparing {_DISTINCT_REQUESTS} distinct requests of {SPANS_PER_REQUEST} spans")
    bodies = [realistic_request(rng, number) for number in range(_DISTINCT_REQUESTS)]
    requests = max(1, total_spans // SPANS_PER_REQUEST)
    with tempfile.TemporaryDirectory(prefix="seamwatch-bench-") as scratch:
        receiver, endpoint = start_receiver_process(Path(scratch) / "receiver")
        try:
            rate = _drive(endpoint, bodies, requests, senders, console)
            peak_rss = _peak_rss_bytes(receiver.pid)
        finally:
            receiver.terminate()
            receiver.wait(60)
        ceiling = _ceiling(bodies, requests, Path(scratch) / "ceiling", console)
    return IngestFigures(requests * SPANS_PER_REQUEST, rate, ceiling, peak_rss)


def start_receiver_process(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """``seamwatch collector`` in a process of its own, and its traces URL once it listens."""
    command = [
        sys.executable, "-m", "seamwatch", "collector", "--data-dir", str(data_dir),
        "--otlp-http-port", "0", "--otlp-grpc-port", "-1", "--log-level", "warning",
    ]  # fmt: skip
    receiver = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        line = receiver.stdout.readline()
        if "OTLP/HTTP receiver:" in line:
            return receiver, line.split("receiver:", 1)[1].strip()
        if not line and receiver.poll() is not None:
            break
    receiver.kill()
    raise RuntimeError("The receiver process did not start; run `seamwatch collector` to see why.")


def _drive(
    endpoint: str, bodies: list[bytes], requests: int, senders: int, console: Console
) -> float:
    sent = iter(range(requests))
    lock = threading.Lock()
    failures: list[str] = []
    progress = Progress(
        TextColumn("end to end"), BarColumn(), TextColumn("{task.completed:,} spans"),
        TimeElapsedColumn(), console=console,
    )  # fmt: skip
    task = progress.add_task("spans", total=requests * SPANS_PER_REQUEST)

    def send() -> None:
        headers = {"Content-Type": "application/x-protobuf"}
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    number = next(sent, None)
                if number is None:
                    return
                response = client.post(
                    endpoint, content=bodies[number % len(bodies)], headers=headers
                )
                while response.status_code in _RETRYABLE:  # as an OTLP exporter does
                    time.sleep(float(response.headers.get("retry-after", "1")))
                    response = client.post(
                        endpoint, content=bodies[number % len(bodies)], headers=headers
                    )
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    return
                progress.advance(task, SPANS_PER_REQUEST)

    threads = [threading.Thread(target=send, name=f"bench-sender-{n}") for n in range(senders)]
    with progress:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _wait_until_stored(endpoint)
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"The receiver refused a request: {failures[0]}")
    return requests * SPANS_PER_REQUEST / elapsed


def _wait_until_stored(endpoint: str) -> None:
    """Answers come once spans are spooled: the clock stops when the store holds them all."""
    health = endpoint.rsplit("/v1/traces", 1)[0] + "/health"
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while httpx.get(health, timeout=10).json()["queued_spans"]:
        if time.monotonic() > deadline:
            raise RuntimeError("The receiver did not store the acknowledged spans in time.")
        time.sleep(0.02)


def _ceiling(bodies: list[bytes], requests: int, data_dir: Path, console: Console) -> float:
    """Insert the same rows, decoded in advance, straight into an embedded store."""
    from seamwatch.settings import Settings
    from storage import TRACES_TABLE, open_store

    console.print("Ceiling: inserting the same rows, decoded in advance")
    tables = [request_to_batch(ExportTraceServiceRequest.FromString(b)).rows for b in bodies]
    settings = Settings(data_dir=data_dir)
    batches_per_insert = max(1, settings.batch_max_spans // SPANS_PER_REQUEST)  # as the receiver
    store = open_store(settings)
    try:
        started = time.perf_counter()
        for first in range(0, requests, batches_per_insert):
            count = min(batches_per_insert, requests - first)
            chunk = [tables[(first + n) % len(tables)] for n in range(count)]
            store.insert_arrow(TRACES_TABLE, pa.concat_tables(chunk))
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    return requests * SPANS_PER_REQUEST / elapsed


def _peak_rss_bytes(pid: int) -> int:
    """The process's high-water resident set size (Linux's VmHWM), or 0 where unknown."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
