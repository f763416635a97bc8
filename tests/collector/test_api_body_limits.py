"""The JSON API limits its request bodies in size and in the time they take to arrive, and its
request heads in time, on the receiver's port and on the API server of its own; over real
sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from collector.service import Collector
from seamwatch.api import ApiGuard, api_routes
from seamwatch.api_body import MAX_API_BODY_BYTES
from seamwatch.api_server import ApiServer
from seamwatch.settings import Settings
from storage import Store
from tests.raw_http import read_answer

STALLED = (
    "The request body stopped arriving: nothing came for 1 s (SEAMWATCH_BODY_TIMEOUT_SECONDS), "
    "so the connection is closed; send the whole body without pausing that long."
)
SILENCE = b'{"seconds": 60, "flow": "billing", "reason": "maintenance"}'


@pytest.fixture(params=["receiver", "api-server"])
def api_port(request, store: Store, collector_settings: Settings, tmp_path: Path) -> Iterator[int]:
    """The port of an API that waits 1 s for a request's head and for each part of its body:
    the receiver's, or that of the API server of ``seamwatch detectors``."""
    if request.param == "receiver":
        settings = collector_settings.model_copy(
            update={"body_timeout_seconds": 1.0, "header_timeout_seconds": 1.0}
        )
        server = Collector(store, settings, api_routes(store))
        server.start()
        try:
            yield server.port
        finally:
            server.stop()
        return
    api = ApiServer(store, tmp_path, body_timeout_seconds=1.0, header_timeout_seconds=1.0)
    api.start()
    try:
        yield int(api.endpoint.rsplit(":", 1)[1])
    finally:
        api.stop()


def _head(content_length: int, extra: bytes = b"") -> bytes:
    return (
        b"POST /api/v1/silences HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"%sContent-Length: %d\r\n\r\n" % (extra, content_length)
    )


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_a_content_length_over_the_api_s_limit_gets_413_at_once(api_port):
    # the body was waited for, then read whatever its size
    with _connect(api_port) as client:
        client.sendall(_head(MAX_API_BODY_BYTES + 1))
        started = time.monotonic()
        status, headers, body = read_answer(client)

    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert time.monotonic() - started < 2
    assert headers[b"connection"] == b"close"
    assert json.loads(body) == {
        "error": f"The request body of {MAX_API_BODY_BYTES + 1} bytes (its Content-Length) is "
        f"larger than the API takes ({MAX_API_BODY_BYTES} bytes); send a smaller body."
    }


def test_a_chunked_body_over_the_api_s_limit_gets_413(api_port):
    # without a Content-Length, a silence with a huge reason was taken
    reason = "x" * MAX_API_BODY_BYTES
    parts = [b'{"seconds": 60, "reason": "', reason.encode(), b'"}']
    answer = httpx.post(
        f"http://127.0.0.1:{api_port}/api/v1/silences",
        content=iter(parts),
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 413
    assert answer.headers["connection"] == "close"
    assert answer.json() == {
        "error": f"The request body is larger than the API takes ({MAX_API_BODY_BYTES} bytes); "
        "send a smaller body."
    }


def test_a_body_that_stops_arriving_gets_408(api_port):
    # the route waited for the rest of the body for ever
    with _connect(api_port) as client:
        client.sendall(_head(len(SILENCE)) + SILENCE[:10])
        started = time.monotonic()
        status, headers, body = read_answer(client)

    assert status == b"HTTP/1.1 408 Request Timeout"
    assert 0.9 < time.monotonic() - started < 4
    assert headers[b"connection"] == b"close"
    assert json.loads(body) == {"error": STALLED}


def test_a_head_that_stops_arriving_gets_408_in_the_api_s_shape(api_port):
    with _connect(api_port) as client:
        client.sendall(_head(len(SILENCE))[:30])
        started = time.monotonic()
        status, _, body = read_answer(client)

    assert status == b"HTTP/1.1 408 Request Timeout"
    assert 0.9 < time.monotonic() - started < 4
    assert json.loads(body)["error"].startswith("The request line and headers did not arrive")


def test_a_slow_body_that_keeps_arriving_is_taken(api_port):
    with _connect(api_port) as client:
        client.sendall(_head(len(SILENCE), b"Connection: close\r\n"))
        for start in range(0, len(SILENCE), 21):
            time.sleep(0.6)  # under the 1 s wait, 1.8 s in all
            client.sendall(SILENCE[start : start + 21])
        status, _, body = read_answer(client)

    assert status == b"HTTP/1.1 200 OK"
    assert json.loads(body)["reason"] == "maintenance"


def test_once_the_body_is_complete_the_api_may_wait_without_a_limit():
    # a wait for the client to disconnect, after the whole body, is not a stalled body
    incoming: list[Message] = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> Message:
        if incoming:
            return incoming.pop()
        await asyncio.sleep(0.3)  # over the 0.1 s body timeout
        return {"type": "http.disconnect"}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await receive()
        after = await receive()
        await JSONResponse({"body": body["body"].decode(), "after": after["type"]})(
            scope, receive, send
        )

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/alerts",
        "raw_path": b"/api/v1/alerts",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
    }
    asyncio.run(ApiGuard(app, token=None, body_timeout_seconds=0.1)(scope, receive, send))

    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"body": "{}", "after": "http.disconnect"}
