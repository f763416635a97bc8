"""A body declared over the size limit is refused from its header, and one that stops arriving
is answered 408; both over real sockets, and both close the connection."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from google.rpc import status_pb2

from collector.http_receiver import _read_gzip
from collector.service import Collector
from seamwatch.body_limits import BodyLimits
from seamwatch.settings import DEFAULT_MAX_REQUEST_BYTES, Settings
from storage import Store
from tests.raw_http import read_answer

HUGE = 999_999_999_999
TOO_LARGE = (
    f"Request body of {HUGE} bytes (its Content-Length) is larger than the limit of "
    f"{DEFAULT_MAX_REQUEST_BYTES} bytes (SEAMWATCH_MAX_REQUEST_BYTES); send smaller batches."
)
STALLED = (
    "The request body stopped arriving: nothing came for 1 s (SEAMWATCH_BODY_TIMEOUT_SECONDS), "
    "so the connection is closed; send the whole body without pausing that long."
)
SMALL_LIMIT = 1024
STREAMED_TOO_LARGE = (
    f"Request body is larger than {SMALL_LIMIT} bytes after decompression; send smaller batches."
)


def _head(
    content_length: int, content_type: bytes = b"application/json", extra: bytes = b""
) -> bytes:
    return (
        b"POST /v1/traces HTTP/1.1\r\nHost: collector\r\nContent-Type: %s\r\n%s"
        b"Content-Length: %d\r\n\r\n" % (content_type, extra, content_length)
    )


@pytest.fixture
def collector_settings(collector_settings: Settings) -> Settings:
    """The receiver waits 1 s for a body's next part and decodes one request at a time."""
    return collector_settings.model_copy(
        update={"body_timeout_seconds": 1.0, "max_concurrent_requests": 1}
    )


def test_a_content_length_over_the_limit_gets_413_at_once(running_collector):
    # the receiver waited for the body for ever
    with socket.create_connection(("127.0.0.1", running_collector.port), timeout=5) as client:
        client.sendall(_head(HUGE))
        started = time.monotonic()
        status, headers, body = read_answer(client)

    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert time.monotonic() - started < 2
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"code": 8, "message": TOO_LARGE}
    assert _refused(running_collector, "too_large") == 1


def test_the_413_from_content_length_answers_protobuf_to_a_protobuf_request(running_collector):
    with socket.create_connection(("127.0.0.1", running_collector.port), timeout=5) as client:
        client.sendall(_head(HUGE, b"application/x-protobuf"))
        status, headers, body = read_answer(client)

    assert status.startswith(b"HTTP/1.1 413 ")
    assert headers[b"content-type"] == b"application/x-protobuf"
    refusal = status_pb2.Status.FromString(body)
    assert (refusal.code, refusal.message) == (8, TOO_LARGE)


def test_a_body_that_stops_arriving_gets_408_and_frees_the_receiver(running_collector, caplog):
    # headers and part of the body, then nothing: the connection was held for good
    caplog.set_level(logging.DEBUG, logger="collector.http_receiver")
    with socket.create_connection(("127.0.0.1", running_collector.port), timeout=10) as client:
        client.sendall(_head(100) + b'{"resourceSpans"')
        started = time.monotonic()
        status, headers, body = read_answer(client)

    assert status == b"HTTP/1.1 408 Request Timeout"
    assert 0.9 < time.monotonic() - started < 5
    assert headers[b"connection"] == b"close"
    assert json.loads(body) == {"code": 4, "message": STALLED}
    assert _refused(running_collector, "timeout") == 1
    # counted, and logged at debug level only: a line each would let a client flood the log
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (logging.DEBUG, "Closing a connection whose request body stopped arriving")
    ]
    # it held the one request slot; the next request is served
    response = httpx.post(
        f"{running_collector.endpoint}/v1/traces",
        content=b"{}",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_a_slow_body_that_keeps_arriving_is_read_to_its_end(running_collector):
    body = b'{"resourceSpans": []}'
    with socket.create_connection(("127.0.0.1", running_collector.port), timeout=10) as client:
        # closed after the answer, so that reading it to the end of the connection ends
        client.sendall(_head(len(body), extra=b"Connection: close\r\n"))
        for part in (body[:7], body[7:14], body[14:]):
            time.sleep(0.6)  # under the 1 s wait, 1.8 s in all
            client.sendall(part)
        status, _, answer = read_answer(client)

    assert status == b"HTTP/1.1 200 OK"
    assert json.loads(answer) == {"partialSuccess": {}}


@pytest.fixture
def small_collector(store: Store, collector_settings: Settings) -> Iterator[Collector]:
    """A receiver taking bodies of up to ``SMALL_LIMIT`` bytes after decompression."""
    service = Collector(
        store, collector_settings.model_copy(update={"max_request_bytes": SMALL_LIMIT})
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


def _post_chunked(collector: Collector, body: bytes, content_encoding: str) -> httpx.Response:
    """POST ``body`` without a Content-Length, so that only reading it finds its size."""
    headers = {"Content-Type": "application/json", "Content-Encoding": content_encoding}
    return httpx.post(
        f"{collector.endpoint}/v1/traces", content=iter([body]), headers=headers, timeout=10
    )


def _refused(collector: Collector, reason: str) -> float:
    text = httpx.get(f"{collector.endpoint}/metrics", timeout=10).text
    line = f'seamwatch_collector_refused_requests_total{{reason="{reason}"}} '
    return float(text.split(line, 1)[1].split()[0]) if line in text else 0.0


@pytest.mark.parametrize("content_encoding", ["identity", "gzip"])
def test_a_streamed_body_over_the_limit_gets_413(small_collector, content_encoding):
    document = b'{"resourceSpans": []}' + b" " * SMALL_LIMIT
    body = gzip.compress(document) if content_encoding == "gzip" else document
    response = _post_chunked(small_collector, body, content_encoding)

    assert response.status_code == 413
    assert response.json() == {"code": 8, "message": STREAMED_TOO_LARGE}
    assert "connection" not in response.headers  # the body was read to its limit
    assert _refused(small_collector, "too_large") == 1


def test_the_limit_is_on_the_inflated_body_not_on_the_gzip_that_arrives(small_collector):
    document = b'{"resourceSpans": []}'.ljust(SMALL_LIMIT - 16)
    body = gzip.compress(document, compresslevel=0)  # stored: larger than what it holds
    assert len(body) > SMALL_LIMIT
    response = _post_chunked(small_collector, body, "gzip")

    assert response.status_code == 200, response.text
    assert _refused(small_collector, "too_large") == 0


def test_the_body_timeout_is_a_setting(monkeypatch):
    monkeypatch.setenv("SEAMWATCH_BODY_TIMEOUT_SECONDS", "2.5")
    assert Settings().body_timeout_seconds == 2.5
    monkeypatch.setenv("SEAMWATCH_BODY_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValueError, match="body_timeout_seconds"):
        Settings()


class _TooLarge(Exception):
    pass


class _Refusals:
    def declared_too_large(self, declared: int, limit: int) -> Exception:
        return _TooLarge(declared)

    def too_large(self, limit: int) -> Exception:
        return _TooLarge(limit)

    def stalled(self, message: str) -> Exception:
        return TimeoutError(message)


def test_a_gzip_bomb_holds_no_more_than_its_limit_while_refused():
    # the first call inflated the whole limit at once, held beside the body it joined: a
    # 64 MiB limit raised the receiver's peak memory by about 190 MiB
    limit = 8 * 1024 * 1024
    bomb = gzip.compress(b"a" * (4 * limit), compresslevel=9)
    limits = BodyLimits(limit, 5.0, _Refusals())

    async def arriving() -> AsyncIterator[bytes]:
        for at in range(0, len(bomb), 64 * 1024):
            yield bomb[at : at + 64 * 1024]

    tracemalloc.start()
    try:
        with pytest.raises(_TooLarge):
            asyncio.run(_read_gzip(arriving(), limits, pipeline=None))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.3 * limit
