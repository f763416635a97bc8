"""OTLP/JSON metrics or logs posted to /v1/traces: answered 200, with a partial success that
says why nothing was stored, and a warning in the log at most once a minute."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from tests.collector.test_shared_cases import count_rows, post

GAUGE = {
    "name": "queue.depth",
    "gauge": {"dataPoints": [{"asInt": "3", "timeUnixNano": "1700000000000000000"}]},
}
METRICS = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [GAUGE]}]}]}
LOG_RECORD = {"timeUnixNano": "1700000000000000000", "body": {"stringValue": "order posted"}}
LOGS = {"resourceLogs": [{"scopeLogs": [{"logRecords": [LOG_RECORD]}]}]}
SPAN = {
    "traceId": "5b8efff798038103d269b633813fc60c",
    "spanId": "eee19b7ec3c1b174",
    "name": "post invoice",
    "startTimeUnixNano": "1700000000000000000",
    "endTimeUnixNano": "1700000000001000000",
}
SPANS = {"resourceSpans": [{"scopeSpans": [{"spans": [SPAN]}]}]}


def warning(signal: str, key: str) -> str:
    return (
        f"The body holds OTLP {signal} ({key}) and no spans; Seamwatch stores traces only, so "
        f"nothing was stored. The exporter is likely pointed at the wrong path: /v1/traces "
        f"takes traces, not {signal}."
    )


@pytest.mark.parametrize(
    ("document", "signal", "key"),
    [
        (METRICS, "metrics", "resourceMetrics"),
        (LOGS, "logs", "resourceLogs"),
        ({"resource_metrics": METRICS["resourceMetrics"]}, "metrics", "resourceMetrics"),
    ],
    ids=["metrics", "logs", "snake_case metrics"],
)
def test_another_signal_gets_a_partial_success_saying_so(
    running_collector, store, document, signal, key
):
    # it got a bare 200 and nothing was stored, with no word to anyone
    response = post(running_collector, json.dumps(document).encode())

    assert response.status_code == 200, response.text
    assert response.json() == {
        "partialSuccess": {"rejectedSpans": "0", "errorMessage": warning(signal, key)}
    }
    assert count_rows(store) == 0


def test_another_signal_is_logged_once_a_minute(running_collector, caplog):
    caplog.set_level(logging.WARNING, logger="collector.pipeline")

    for _ in range(3):
        assert post(running_collector, json.dumps(METRICS).encode()).status_code == 200

    lines = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert lines == [
        "A trace request was answered with a warning: " + warning("metrics", "resourceMetrics")
    ]


def test_spans_beside_another_signals_key_are_stored_without_a_warning(running_collector, store):
    response = post(running_collector, json.dumps({**SPANS, **METRICS}).encode())

    assert response.json() == {"partialSuccess": {}}
    assert count_rows(store) == 1


def test_an_empty_export_is_still_a_plain_success(running_collector):
    for body in (b"{}", b'{"resourceSpans": []}'):
        assert post(running_collector, body).json() == {"partialSuccess": {}}


def test_a_minute_later_the_warning_says_how_many_were_held_back(
    running_collector, caplog, monkeypatch
):
    import collector.log_throttle

    clock = [1000.0]
    # the log throttle's own clock only: the receiver's event loop keeps the real one
    monkeypatch.setattr(collector.log_throttle, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    caplog.set_level(logging.WARNING, logger="collector.pipeline")
    body = json.dumps(LOGS).encode()

    for seconds in (0, 10, 20, 61):
        clock[0] = 1000.0 + seconds
        running_collector.pipeline.decode(body, json=True)

    lines = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert [line.split(":", 1)[0] for line in lines] == [
        "A trace request was answered with a warning",
        "A trace request was answered with a warning (2 more since the last such line)",
    ]
