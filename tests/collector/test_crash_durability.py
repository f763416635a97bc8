"""Every span answered with success survives a kill -9 of the collector under load.

The collector answers once spans are in its spool; the spans the kill caught between the spool
and the store are inserted when the collector starts again on the same data directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.bench import start_receiver_process

SPANS_PER_REQUEST = 200
SENDERS = 4
LOAD_SECONDS = 4.0

COUNT_STORED = """
import sys
from seamwatch.settings import load_settings
from storage import open_store

store = open_store(load_settings(data_dir=sys.argv[1]))
sql = "SELECT TraceId, uniqExact(SpanId) FROM " + store.table("otel_traces") + " GROUP BY TraceId"
for trace_id, spans in store.query_rows(sql):
    print(trace_id, spans)
"""


def request_body(number: int) -> tuple[bytes, str]:
    """A request whose spans all share one trace id derived from ``number``."""
    trace_id = (number + 1).to_bytes(16, "big")
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for index in range(SPANS_PER_REQUEST):
        spans.add(
            trace_id=trace_id,
            span_id=(index + 1).to_bytes(8, "big"),
            name="post",
            start_time_unix_nano=1_700_000_000_000_000_000,
            end_time_unix_nano=1_700_000_000_001_000_000,
        )
    return request.SerializeToString(), trace_id.hex()


@pytest.mark.slow
def test_acknowledged_spans_survive_kill_9(tmp_path: Path):
    data_dir = tmp_path / "data"
    process, url = start_receiver_process(data_dir)
    acknowledged: list[str] = []
    counter = iter(range(1_000_000))
    lock = threading.Lock()
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                with lock:
                    number = next(counter)
                body, trace_id = request_body(number)
                try:
                    response = client.post(
                        url, content=body, headers={"Content-Type": "application/x-protobuf"}
                    )
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(trace_id)

    senders = [threading.Thread(target=send) for _ in range(SENDERS)]
    for sender in senders:
        sender.start()
    time.sleep(LOAD_SECONDS)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    stop.set()
    for sender in senders:
        sender.join(30)

    restarted, _ = start_receiver_process(data_dir)  # stores what the spool kept
    restarted.send_signal(signal.SIGTERM)  # a clean stop drains the spool first
    assert restarted.wait(120) == 0
    assert not list((data_dir / "spool").glob("*.arrow")), "the spool was not drained"
    counted = subprocess.run(
        [sys.executable, "-c", COUNT_STORED, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert counted.returncode == 0, counted.stderr
    stored = dict(line.split() for line in counted.stdout.splitlines())
    assert len(acknowledged) > 10, "the load never got going"
    incomplete = [t for t in acknowledged if stored.get(t) != str(SPANS_PER_REQUEST)]
    assert incomplete == []
