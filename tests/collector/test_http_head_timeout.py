"""A connection whose request head does not arrive in time is closed (with 408 once a request
began), while kept-alive connections keep uvicorn's keep-alive wait; over real sockets."""

from __future__ import annotations

import json
import selectors
import socket
import time

import pytest

from seamwatch.settings import Settings
from tests.raw_http import read_answer

LATE_HEAD = (
    "The request line and headers did not arrive within 1 s (SEAMWATCH_HEADER_TIMEOUT_SECONDS), "
    "so the connection is closed; send the whole request head at once."
)
REQUEST = (
    b"POST /v1/traces HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)


@pytest.fixture
def collector_settings(collector_settings: Settings) -> Settings:
    """The receiver waits 1 s for a request's head."""
    return collector_settings.model_copy(update={"header_timeout_seconds": 1.0})


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_connections_that_send_nothing_are_closed_without_an_answer(running_collector):
    # they were held open for ever: enough of them use up the server (slowloris)
    clients = [_connect(running_collector.port) for _ in range(20)]
    started = time.monotonic()
    try:
        answers = [read_answer(client) for client in clients]
    finally:
        for client in clients:
            client.close()

    assert 0.9 < time.monotonic() - started < 4
    assert answers == [(b"", {}, b"")] * len(clients)
    # and the server holds none of them any more
    assert running_collector._http.server_state.connections == set()


def test_a_head_that_stops_arriving_gets_408(running_collector):
    with _connect(running_collector.port) as client:
        client.sendall(REQUEST[:40])
        started = time.monotonic()
        status, headers, body = read_answer(client)

    assert status == b"HTTP/1.1 408 Request Timeout"
    assert 0.9 < time.monotonic() - started < 4
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"code": 4, "message": LATE_HEAD}


def test_a_head_trickling_in_is_cut_at_the_deadline_for_the_whole_head(running_collector):
    # a byte every 0.2 s never lets a wait between parts run out; the head's deadline does
    with _connect(running_collector.port) as client:
        started = time.monotonic()
        for byte in REQUEST[:40]:
            client.sendall(bytes([byte]))
            # stop once the server answered: bytes sent after its close would reset the answer
            if _readable(client, 0.2):
                break
        status, _, _ = read_answer(client)

    assert status == b"HTTP/1.1 408 Request Timeout"
    assert 0.9 < time.monotonic() - started < 4


def test_a_late_head_to_the_api_gets_the_api_s_error(running_collector):
    with _connect(running_collector.port) as client:
        client.sendall(b"POST /api/v1/silences HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        status, headers, body = read_answer(client)

    assert status == b"HTTP/1.1 408 Request Timeout"
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"error": LATE_HEAD}


def test_a_head_sent_in_parts_within_the_deadline_is_served(running_collector):
    with _connect(running_collector.port) as client:
        head, body = REQUEST.split(b"\r\n\r\n")
        close = head + b"\r\nConnection: close\r\n\r\n"
        for start in range(0, len(close), 30):
            client.sendall(close[start : start + 30])
            time.sleep(0.15)  # about 0.6 s in all, under the 1 s deadline
        # the body has its own wait: it comes after the head's deadline would have passed
        time.sleep(0.6)
        client.sendall(body)
        status, _, _ = read_answer(client)

    assert status == b"HTTP/1.1 200 OK"


def test_a_kept_alive_connection_waits_for_the_next_request_as_uvicorn_says(running_collector):
    with _connect(running_collector.port) as client:
        client.sendall(REQUEST)
        first = client.recv(65536)
        time.sleep(1.5)  # longer than the head's deadline, within uvicorn's keep-alive (5 s)
        client.sendall(REQUEST)
        second = client.recv(65536)
        # then the next head has the head's deadline
        client.sendall(REQUEST[:40])
        started = time.monotonic()
        status, _, _ = read_answer(client)

    assert first.startswith(b"HTTP/1.1 200 OK")
    assert second.startswith(b"HTTP/1.1 200 OK")
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert 0.9 < time.monotonic() - started < 4


def test_the_header_timeout_is_a_setting(monkeypatch):
    monkeypatch.setenv("SEAMWATCH_HEADER_TIMEOUT_SECONDS", "2.5")
    assert Settings().header_timeout_seconds == 2.5
    monkeypatch.setenv("SEAMWATCH_HEADER_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValueError, match="header_timeout_seconds"):
        Settings()


def _readable(client: socket.socket, seconds: float) -> bool:
    """Whether ``client`` has something to read within ``seconds``; by the platform's selector,
    as ``select.select`` refuses descriptors numbered 1024 and above, which a long run reaches."""
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ)
        return bool(selector.select(seconds))
