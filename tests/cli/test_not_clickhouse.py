"""A ClickHouse URL whose port answers, but not as ClickHouse: a web server, another service.

Waiting cannot fix a wrong address, so every command stops at once with one ``Error:`` line
that says what answered (never a page of its HTML) and what to check. Each case runs a real
server of its kind on a loopback port.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.cli.test_server_down import command, free_port, server_url
from tests.loopback_tcp import tcp_server
from tests.storage.clickhouse_http import serve

pytestmark = pytest.mark.slow

# long enough to start a command, far shorter than the waits that used to never end
COMMAND_SECONDS = 60

COMMANDS = {
    "collector": ["collector", "--otlp-http-port", "0", "--otlp-grpc-port", "-1"],
    "up": ["up", "--otlp-http-port", "0", "--otlp-grpc-port", "-1"],
    "detectors": ["detectors"],
    "detectors --once": ["detectors", "--once"],
    "alerts": ["alerts"],
}


class _QuietFiles(SimpleHTTPRequestHandler):
    """``python -m http.server``: a listing for GET, 501 with an HTML page for POST."""

    def log_message(self, *args: object) -> None:
        pass


class _WelcomePage(BaseHTTPRequestHandler):
    """A web server's welcome page, answered with 200 to every request."""

    page = b"<html><body><h1>welcome to nginx!</h1>\n<p>It works.</p></body></html>\n"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class _PlainNotFound(_WelcomePage):
    """A service that answers 404 with a line of text and no ClickHouse header."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"404 page not found\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


class _TwoColumns(_WelcomePage):
    """A service whose 200 has two tab-separated columns, as ClickHouse's version answer has,
    but no version in them."""

    page = b"a\tb\n"


class _VersionOnly(_WelcomePage):
    """A service that answers the version query with a name where the version goes, and any
    other query with an empty 200, which the driver reads as an empty result."""

    def _answer(self) -> None:
        query = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"seamwatch-mock\tUTC\n" if b"version()" in query else b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@contextmanager
def http_service(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """An HTTP server of ``handler`` on a loopback port, yielding the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def tcp_service(greeting: bytes) -> Iterator[int]:
    """A TCP service that reads what it is sent and answers ``greeting``, which is no HTTP."""

    def answer(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                connection.recv(65536)
                connection.sendall(greeting)
            except OSError:
                pass

    with tcp_server(answer) as port:
        yield port


SERVICES = {
    "http.server": (lambda: http_service(_QuietFiles), "HTTP 501, an HTML page"),
    "welcome page": (lambda: http_service(_WelcomePage), "HTTP 200, an HTML page"),
    "plain 404": (lambda: http_service(_PlainNotFound), "HTTP 404, '404 page not found'"),
    # the driver took "a" for a version and "b" for a time zone, then read the next answer
    # as a broken-off stream: the command waited for a server that "does not answer"
    "two columns": (lambda: http_service(_TwoColumns), "HTTP 200, 'a\\tb'"),
    "not HTTP": (
        lambda: tcp_service(b"SSH-2.0-OpenSSH_9.6\r\n"),
        "not HTTP: 'SSH-2.0-OpenSSH_9.6'",
    ),
}


def run_command(args: list[str], data_dir: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "seamwatch", *args, "--data-dir", data_dir],
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
        raise AssertionError(f"still waiting after {COMMAND_SECONDS} s:\n{output}") from exc


def not_clickhouse_line(port: int, answer: str) -> str:
    return (
        f"Error: 127.0.0.1:{port} answered but is not a ClickHouse server ({answer}); check "
        "--clickhouse-url or SEAMWATCH_CLICKHOUSE_URL (ClickHouse's HTTP port is 8123)."
    )


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("name", COMMANDS)
def test_a_url_of_something_that_is_not_clickhouse_stops_every_command_at_once(
    tmp_path, name, service
):
    # a 501 was "refused the connection" followed by the page's HTML; a 200 page or a service
    # that speaks no HTTP kept the command waiting for good, as if the server were down
    serving, answer = SERVICES[service]
    args = COMMANDS[name]
    if name == "up":
        args = [*args, "--dashboard-port", str(free_port())]
    with serving() as port:
        done = run_command([*args, "--clickhouse-url", server_url(port)], str(tmp_path / "d"))

    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == not_clickhouse_line(port, answer)
    assert "<" not in done.stderr and "Traceback" not in done.stderr
    assert "does not answer" not in done.stderr


def test_a_server_that_is_not_clickhouse_ends_the_wait_for_one_that_is_down(tmp_path):
    # what comes up on the port is not the server that was awaited: the wait is over
    port = free_port()
    with command(
        "detectors", "--clickhouse-url", server_url(port), "--data-dir", str(tmp_path / "d")
    ) as detectors:
        detectors.log("does not answer: connection refused")
        server = ThreadingHTTPServer(("127.0.0.1", port), _WelcomePage)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            detectors.process.wait(timeout=COMMAND_SECONDS)
        finally:
            server.shutdown()
            server.server_close()
        detectors.stop()

    assert detectors.process.returncode == 1, detectors.output()
    assert detectors.stderr[-1] == not_clickhouse_line(port, "HTTP 200, an HTML page")


def test_a_clickhouse_server_that_answers_an_error_is_still_clickhouse(tmp_path):
    # ClickHouse's own refusals keep their message: only foreign answers are "not ClickHouse"
    with serve(tmp_path / "server", password="not-empty") as port:
        done = run_command(["alerts", "--clickhouse-url", server_url(port)], str(tmp_path / "d"))

    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert last.startswith("Error: The ClickHouse server refused the connection: ")
    assert "AUTHENTICATION_FAILED" in last


class _PlainOk(_WelcomePage):
    """A health endpoint's answer: 200 with ``ok`` and no line end."""

    page = b"ok"


class _LongText(_WelcomePage):
    """A 200 with a long line of text."""

    page = b"this port serves the inventory service of the warehouse, not a database " * 2


@pytest.mark.parametrize(
    ("handler", "answer"),
    [
        (_PlainOk, "HTTP 200, 'ok'"),
        (_LongText, "HTTP 200, 'this port serves the inventory service of the warehouse, ...'"),
    ],
)
def test_the_body_of_a_200_is_quoted_as_sent(handler, answer):
    # the driver's error cuts the body by its last character: 'ok' was quoted as 'o'
    from storage.errors import NotClickHouse
    from storage.server import ServerStore

    with http_service(handler) as port, pytest.raises(NotClickHouse) as caught:
        ServerStore(f"http://127.0.0.1:{port}/seamwatch", "seamwatch", probe_seconds=5)
    assert str(caught.value) == not_clickhouse_line(port, answer).removeprefix("Error: ")


@pytest.mark.parametrize(
    ("handler", "answer"),
    [(_TwoColumns, "HTTP 200, 'a\\tb'"), (_VersionOnly, "HTTP 200, 'seamwatch-mock\\tUTC'")],
)
def test_a_200_that_gives_no_clickhouse_version_is_not_clickhouse(handler, answer):
    # the driver takes any two columns for a version and a time zone: the store was opened,
    # or its next query failed as if the server had broken off and it was waited for
    from storage.errors import NotClickHouse
    from storage.server import ServerStore

    with http_service(handler) as port, pytest.raises(NotClickHouse) as caught:
        ServerStore(f"http://127.0.0.1:{port}/seamwatch", "seamwatch", probe_seconds=5)
    assert str(caught.value) == not_clickhouse_line(port, answer).removeprefix("Error: ")
