"""Stored times do not depend on the time zone of the host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STORE_AND_READ = """
import json, sys
from collector.otlp_json import decode_json_export
from collector.spans import request_to_batch
from seamwatch.settings import load_settings
from storage import open_store

span = {
    "traceId": "4bf92f3577b34da6a3ce929d0e0e1236", "spanId": "00f067aa0ba91201", "name": "t",
    "startTimeUnixNano": "1697982593201336123", "endTimeUnixNano": "1697982593201347750",
    "events": [{"timeUnixNano": "1697982593201340001", "name": "e"}],
}
body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
store = open_store(load_settings(data_dir=sys.argv[1]))
store.insert_arrow("otel_traces", request_to_batch(decode_json_export(body).request).rows)
row = store.query_rows(
    "SELECT toUnixTimestamp64Nano(Timestamp), "
    "arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) FROM "
    + store.table("otel_traces")
)[0]
print(row[0], *row[1])
"""


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Kiritimati"])
def test_nanosecond_times_survive_any_host_time_zone(tmp_path: Path, zone: str):
    result = subprocess.run(
        [sys.executable, "-c", STORE_AND_READ, str(tmp_path / "data")],
        env={**os.environ, "TZ": zone},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1697982593201336123", "1697982593201340001"]
