"""Request heads over the limit get 431, a client that leaves mid-body is no server error, and
a wrong path gets a Status document."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import time

import pytest

from collector.http_protocol import MAX_HEAD_BYTES
from tests.cli.test_server_down import command
from tests.raw_http import read_answer

EMPTY_EXPORT = b"{}"


def _exchange(port: int, head_extra: bytes, body: bytes = EMPTY_EXPORT, *, hang_up=False) -> bytes:
    """Send one raw HTTP/1.1 request and return the answer's status line ('' if none)."""
    request = (
        b"POST /v1/traces HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\n"
        + head_extra
        + b"Content-Length: %d\r\n\r\n" % (len(body) + (10 if hang_up else 0))
        + body
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        try:
            client.sendall(request)
            if hang_up:
                client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close while a huge head is still being sent
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = client.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
    return answer.split(b"\r\n", 1)[0].decode()


def test_a_normal_head_is_served(running_collector):
    extra = b"X-Note: " + b"a" * (MAX_HEAD_BYTES // 2) + b"\r\n"
    assert _exchange(running_collector.port, extra) == "HTTP/1.1 200 OK"


def test_a_head_just_over_the_limit_in_one_read_gets_431(running_collector):
    extra = b"X-Note: " + b"a" * (MAX_HEAD_BYTES + 100) + b"\r\n"
    assert (
        _exchange(running_collector.port, extra) == "HTTP/1.1 431 Request Header Fields Too Large"
    )


def _refused_head(port: int, path: bytes, content_type: bytes) -> tuple[bytes, bytes]:
    """The Content-Type and body of the answer to a request whose head is over the limit."""
    request = (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: collector\r\nContent-Type: "
        + content_type
        + b"\r\nX-Note: "
        + b"a" * (MAX_HEAD_BYTES + 100)
        + b"\r\nContent-Length: 0\r\n\r\n"
    )
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request)
        with contextlib.suppress(OSError):
            while chunk := client.recv(4096):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    [media_type] = [line[14:] for line in head.split(b"\r\n") if line.startswith(b"content-type: ")]
    return media_type, body


TOO_LARGE = (
    f"The request line and headers exceed {MAX_HEAD_BYTES} bytes; send fewer or smaller headers."
)


def test_the_431_is_a_status_document_as_every_other_error(running_collector):
    # it was the one plain-text error answer of the receiver
    media_type, body = _refused_head(running_collector.port, b"/v1/traces", b"application/json")
    assert media_type == b"application/json"
    assert json.loads(body) == {"code": 8, "message": TOO_LARGE}


def test_the_431_answers_protobuf_to_a_protobuf_request(running_collector):
    from google.rpc import status_pb2

    media_type, body = _refused_head(
        running_collector.port, b"/v1/traces", b"application/x-protobuf"
    )
    assert media_type == b"application/x-protobuf"
    status = status_pb2.Status.FromString(body)
    assert (status.code, status.message) == (8, TOO_LARGE)


def test_the_431_of_an_api_path_is_the_api_error_document(running_collector):
    media_type, body = _refused_head(running_collector.port, b"/api/v1/alerts", b"text/plain")
    assert media_type == b"application/json"
    assert json.loads(body) == {"error": TOO_LARGE}


def test_a_long_request_line_gets_431(running_collector):
    request = (
        b"POST /v1/traces?" + b"a" * (MAX_HEAD_BYTES + 10) + b" HTTP/1.1\r\nHost: collector\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    with socket.create_connection(("127.0.0.1", running_collector.port), timeout=10) as client:
        client.sendall(request)
        answer = client.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")


def test_a_huge_header_gets_431_and_does_not_grow_memory(running_collector):
    extra = b"X-Huge: " + b"a" * (8 * 2**20) + b"\r\n"
    assert (
        _exchange(running_collector.port, extra) == "HTTP/1.1 431 Request Header Fields Too Large"
    )


def test_many_small_headers_get_431(running_collector):
    extra = b"".join(b"X-%d: v\r\n" % number for number in range(20_000))
    assert (
        _exchange(running_collector.port, extra) == "HTTP/1.1 431 Request Header Fields Too Large"
    )
    assert _exchange(running_collector.port, b"") == "HTTP/1.1 200 OK"  # still serving


def test_a_client_leaving_mid_body_is_not_logged_as_an_error(running_collector, caplog):
    caplog.set_level(logging.DEBUG)
    _exchange(running_collector.port, b"", b"{", hang_up=True)
    assert _exchange(running_collector.port, b"") == "HTTP/1.1 200 OK"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_wrong_path_gets_a_status_document_naming_the_right_one(running_collector):
    import httpx

    response = httpx.post(f"{running_collector.endpoint}/v1/metrics", content=b"{}")
    assert response.status_code == 404
    assert response.json() == {
        "code": 5,
        "message": "No such path: /v1/metrics. Traces go to POST /v1/traces.",
    }


def test_an_unknown_api_path_points_to_the_api_index(store, collector_settings):
    # it answered "Traces go to POST /v1/traces", the receiver's hint, to an API caller
    import httpx

    from collector.service import Collector
    from seamwatch.api import api_routes

    service = Collector(store, collector_settings, extra_routes=api_routes(store))
    service.start()
    try:
        response = httpx.get(f"{service.endpoint}/api/v1/nonexistent")
    finally:
        service.stop()
    assert response.status_code == 404
    assert response.json() == {
        "error": "No such path: /api/v1/nonexistent. GET /api/v1 lists the API's routes."
    }


def test_a_wrong_path_answers_protobuf_to_a_protobuf_request(running_collector):
    import httpx
    from google.rpc import status_pb2

    response = httpx.post(
        f"{running_collector.endpoint}/v1/metrics",
        content=b"",
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/x-protobuf"
    assert status_pb2.Status.FromString(response.content).code == 5


def test_a_wrong_method_on_the_api_gets_json_naming_the_allowed_ones(store, collector_settings):
    # GET on the ack route once answered a plain-text "Method Not Allowed"
    import httpx

    from collector.service import Collector
    from seamwatch.api import api_routes

    service = Collector(store, collector_settings, extra_routes=api_routes(store))
    service.start()
    try:
        ack = httpx.get(f"{service.endpoint}/api/v1/alerts/abc/ack")
        silences = httpx.delete(f"{service.endpoint}/api/v1/silences")
    finally:
        service.stop()
    assert ack.status_code == 405
    assert ack.json() == {"error": "GET is not allowed on /api/v1/alerts/abc/ack; use POST."}
    assert ack.headers["allow"] == "POST"
    assert silences.status_code == 405
    assert silences.json()["error"].endswith("use GET, POST.")


# what a request the parser refuses may be, in its 400 and in the log
REFUSED = "a malformed request line, header or chunked body, or TLS sent to a plain HTTP port"
NOT_HTTP = f"The request is not valid HTTP/1.1 ({REFUSED}); send a well-formed request."
# the start of a TLS ClientHello, as a client of https:// sends it to the plain port
TLS_HELLO = bytes.fromhex("160301020001000200fc03034a2b")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/traces HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"POST /v1/traces HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        TLS_HELLO,
    ],
    ids=["bad chunk", "two lengths", "TLS"],
)
def test_bytes_that_are_not_http_get_a_status_document(running_collector, request_bytes):
    # uvicorn answered them with text/plain "Invalid HTTP request received."
    status, headers, body = _raw_answer(running_collector.port, request_bytes)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"code": 3, "message": NOT_HTTP}


def test_bytes_that_are_not_http_answer_protobuf_to_a_protobuf_request(running_collector):
    from google.rpc import status_pb2

    request_bytes = (
        b"POST /v1/traces HTTP/1.1\r\nHost: c\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    )
    status, headers, body = _raw_answer(running_collector.port, request_bytes)
    assert (status, headers[b"content-type"]) == (b"HTTP/1.1 400 Bad Request", PROTOBUF)
    assert status_pb2.Status.FromString(body) == status_pb2.Status(code=3, message=NOT_HTTP)


def test_bytes_that_are_not_http_on_an_api_path_get_the_api_error_document(running_collector):
    request_bytes = b"GET /api/v1/alerts HTTP/1.1\r\nHost: c\r\nContent-Length: x\r\n\r\n"
    status, headers, body = _raw_answer(running_collector.port, request_bytes)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert json.loads(body) == {"error": NOT_HTTP}


@pytest.mark.parametrize("codings", [b"gzip, chunked", b"deflate,chunked", b"br"])
def test_a_transfer_coding_other_than_chunked_is_501(running_collector, codings):
    # "gzip, chunked" was read as chunked alone: a plain body got 200, a compressed one
    # would have reached the decoder still compressed
    request_bytes = (
        b"POST /v1/traces HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: " + codings + b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    status, headers, body = _raw_answer(running_collector.port, request_bytes)
    assert status == b"HTTP/1.1 501 Not Implemented"
    message = json.loads(body)["message"]
    assert message.startswith("Transfer-Encoding ") and "is not supported" in message
    assert json.loads(body)["code"] == 12


def test_uvicorn_s_warning_of_each_refused_request_reaches_the_log_once_a_minute(
    running_collector, caplog, monkeypatch
):
    # one line per request: a client sending garbage in a loop filled the log
    from collector.http_protocol import RepeatedParserWarnings

    uvicorn_log = logging.getLogger("uvicorn.error")
    installed = RepeatedParserWarnings._installed
    assert installed in uvicorn_log.filters  # by the collector's start
    fresh = RepeatedParserWarnings()  # a throttle that let nothing through yet
    uvicorn_log.removeFilter(installed)
    uvicorn_log.addFilter(fresh)
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(5):
                _raw_answer(running_collector.port, TLS_HELLO)
            later = time.monotonic() + 120  # as if the minute had passed
            monkeypatch.setattr("collector.log_throttle.time.monotonic", lambda: later)
            _raw_answer(running_collector.port, TLS_HELLO)
    finally:
        uvicorn_log.removeFilter(fresh)
        uvicorn_log.addFilter(installed)
    # in the receiver's words, not uvicorn's "Invalid HTTP request received."
    warnings = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        ("collector.http_protocol", f"Refused a request that is not valid HTTP/1.1: {REFUSED}"),
        (
            "collector.http_protocol",
            "Refused a request that is not valid HTTP/1.1 (4 more since the last such line): "
            f"{REFUSED}",
        ),
    ]


@pytest.mark.slow
def test_the_warning_of_a_refused_request_has_the_receiver_s_log_format(tmp_path):
    # it kept uvicorn's format ("WARNING:  Invalid HTTP request received."), unlike every
    # other line of the receiver's log
    args = ["collector", "--otlp-http-port", "0", "--otlp-grpc-port", "-1"]
    with command(*args, "--data-dir", str(tmp_path / "data")) as collector:
        listening = collector.log("OTLP/HTTP receiver listening on http://127.0.0.1:")
        port = int(re.search(r":(\d+)/v1/traces", listening).group(1))
        _raw_answer(port, TLS_HELLO)
        collector.log("Refused a request that is not valid HTTP/1.1")
        collector.stop()
    warnings = [line for line in collector.stderr if "WARNING" in line]
    assert len(warnings) == 1, collector.output()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d WARNING collector\.http_protocol: Refused a request that is not "
        rf"valid HTTP/1\.1: {re.escape(REFUSED)}",
        warnings[0],
    )


PROTOBUF = b"application/x-protobuf"


def _raw_answer(port: int, request_bytes: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request_bytes)
        return read_answer(client)
