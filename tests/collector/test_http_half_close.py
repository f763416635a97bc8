"""A client that sends its whole request and then shuts down its side of the connection (an
HTTP/1.0 client, ``nc -N``) gets its answer, and the spans it sent are stored once."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.raw_http import read_answer


def _request(version: bytes, name: str) -> bytes:
    span = {"traceId": "0" * 31 + "1", "spanId": "00000000000000a1", "name": name}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    return (
        b"POST /v1/traces " + version + b"\r\nHost: collector\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


def _stored(store, name: str) -> int:
    table = store.table("otel_traces")
    [(count,)] = store.query_rows(
        f"SELECT count() FROM {table} WHERE SpanName = {{name:String}}", {"name": name}
    )
    return count


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/1.1"])
def test_a_half_closed_post_gets_its_answer_and_its_spans_are_stored(
    running_collector, store, version
):
    # the spans were stored, but the connection was closed as the client's side ended, so
    # the answer was never written and the client could not tell they were taken
    with socket.create_connection(("127.0.0.1", running_collector.port), timeout=10) as client:
        client.sendall(_request(version, "half-closed"))
        client.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        status, headers, body = read_answer(client)
        answered_in = time.monotonic() - started
    assert status == b"HTTP/1.1 200 OK", body
    assert json.loads(body) == {"partialSuccess": {}}
    # nothing more can come on the connection: it is closed after the answer, not kept alive
    assert headers[b"connection"] == b"close" and answered_in < 4
    deadline = time.monotonic() + 10
    while _stored(store, "half-closed") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _stored(store, "half-closed") == 1


def test_a_connection_half_closed_before_its_request_is_whole_is_closed(running_collector):
    # the rest of the body can no longer come: closed without an answer, as before
    request = _request(b"HTTP/1.0", "never-whole")
    with socket.create_connection(("127.0.0.1", running_collector.port), timeout=10) as client:
        client.sendall(request[:-5])
        client.shutdown(socket.SHUT_WR)
        assert read_answer(client) == (b"", {}, b"")
