"""ClickHouse's HTTP interface in front of chDB, so clickhouse-connect can be tested unchanged.

Every statement really runs in chDB; this module only does what ClickHouse's HTTP handler
does around the engine: it reads the query from the ``query`` URL parameter and the body,
applies the ``database`` and settings given as URL parameters, binds ``param_<name>``
values to ``{name:Type}`` placeholders, streams ``INSERT ... FORMAT <fmt>`` bodies into the
table, answers in the requested format and reports errors as ClickHouse does (an HTTP error
status, ``Code: NN. DB::Exception: ...`` and the ``X-ClickHouse-Exception-Code`` header).

chDB allows one data directory per process, so the server runs in a process of its own::

    python tests/storage/clickhouse_http.py --data-dir DIR --port-file FILE

It listens on an ephemeral loopback port (or the one ``--port`` names, for a server that
comes back where a client expects it), writes the port number to FILE once it accepts
connections, and stops on SIGTERM or when its standard input closes (its parent is gone).
:func:`serve` does all of that for a test.

What it leaves out: responses are never compressed (``Accept-Encoding`` is allowed to be
ignored), the ``compress``/``decompress`` parameters of ClickHouse's own block compression
are refused, every HTTP session shares one chDB session (so ``SET`` and temporary tables
are not private to a ``session_id``), GET requests are not made read-only, and Native output
never carries the block info that ``client_protocol_version`` asks for, so clients fall
back to protocol version 0.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlsplit

LOOPBACK = "127.0.0.1"

# URL parameters the HTTP handler itself consumes; everything else names a setting.
HTTP_PARAMETERS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "user",
        "password",
        "quota_key",
        "role",
        "stacktrace",
    }
)

# Settings that would change the shared chDB session for good, so they are not applied.
UNSUPPORTED_SETTINGS = frozenset({"readonly", "allow_ddl", "profile"})

# Statements that produce a result set even when it is empty (ClickHouse then names the
# output format in X-ClickHouse-Format); the others answer with an empty body.
RESULT_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "VALUES"}
)

# chDB turns these output "formats" into Python objects instead of bytes.
PYTHON_ONLY_FORMATS = frozenset({"dataframe", "arrowtable", "debug"})

# The HTTP status ClickHouse answers with for a few error codes; any other error is a 500.
HTTP_STATUS_BY_CODE = {
    27: 400,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    36: 400,  # BAD_ARGUMENTS
    41: 400,  # CANNOT_PARSE_DATETIME
    46: 404,  # UNKNOWN_FUNCTION
    47: 400,  # UNKNOWN_IDENTIFIER
    50: 400,  # UNKNOWN_TYPE
    53: 400,  # TYPE_MISMATCH
    60: 404,  # UNKNOWN_TABLE
    62: 400,  # SYNTAX_ERROR
    73: 404,  # UNKNOWN_FORMAT
    81: 404,  # UNKNOWN_DATABASE
    115: 400,  # UNKNOWN_SETTING
    372: 404,  # SESSION_NOT_FOUND
    456: 400,  # UNKNOWN_QUERY_PARAMETER
    516: 403,  # AUTHENTICATION_FAILED
}

CONTENT_TYPES = {
    "native": "application/octet-stream",
    "arrow": "application/octet-stream",
    "arrowstream": "application/octet-stream",
    "parquet": "application/octet-stream",
    "rowbinary": "application/octet-stream",
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
}

_INSERT_WITH_DATA = re.compile(
    rb"\A\s*(?P<head>INSERT\s+INTO\s+.+?)\s+FORMAT\s+(?P<format>[A-Za-z][A-Za-z0-9_]*)"
    rb"[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
# An INSERT whose rows come from a query, not from the data after FORMAT.
_INSERT_FROM_QUERY = re.compile(rb"\b(?:SELECT|VALUES)\b", re.IGNORECASE)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*$", re.IGNORECASE)
_LEADING_NOISE = re.compile(r"\A(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.DOTALL)
_ERROR_CODE = re.compile(r"Code: (\d+)\. ")
_DOUBLED_ERROR = re.compile(
    r"\ACode: (\d+)\. DB::Exception: (Code: \1\. .*)\. \(\w+\)\Z", re.DOTALL
)


class ClickHouseError(Exception):
    """An error to answer with, in ClickHouse's words."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.text = f"Code: {code}. DB::Exception: {message}. ({name})"


def engine_error(exc: Exception) -> ClickHouseError:
    """The ClickHouse error behind a chDB exception, with its code and text as chDB gave them."""
    text = str(exc).strip()
    while True:
        doubled = _DOUBLED_ERROR.match(text)
        if doubled is None:
            break
        text = doubled.group(2)
    match = _ERROR_CODE.search(text)
    if match is None:
        return ClickHouseError(1001, "STD_EXCEPTION", text)
    error = ClickHouseError(int(match.group(1)), "", "")
    error.text = text[match.start() :]
    return error


@dataclass
class Request:
    """What one HTTP request asks the engine to do."""

    params: dict[str, str]
    body: bytes
    form: dict[str, str] = field(default_factory=dict)

    def value(self, name: str, default: str | None = None) -> str | None:
        """A parameter from the form fields or, failing that, the URL."""
        return self.form.get(name, self.params.get(name, default))

    def query_bytes(self) -> bytes:
        """The statement and any data after it, as ClickHouse reads them.

        The ``query`` parameter comes first and the body, a continuation of it, second.
        """
        query = self.value("query")
        if query and self.body:
            return query.encode() + b"\n" + self.body
        if query:
            return query.encode()
        return self.body

    def bound_parameters(self) -> dict[str, str]:
        """``param_<name>`` values, still in ClickHouse's escaped text form."""
        merged = {**self.params, **self.form}
        return {key[6:]: value for key, value in merged.items() if key.startswith("param_")}

    def settings(self) -> dict[str, str]:
        """The URL parameters that name settings."""
        return {
            key: value
            for key, value in self.params.items()
            if key not in HTTP_PARAMETERS and not key.startswith("param_")
        }


@dataclass
class Answer:
    """The response to send: status, headers and body."""

    status: int
    body: bytes
    headers: dict[str, str]


class Engine:
    """The chDB session, and the per-request state (database, settings) put on it."""

    def __init__(self, data_dir: Path) -> None:
        from chdb import session

        self._session = session.Session(str(data_dir / "clickhouse"))
        self._lock = threading.Lock()
        self._temp_dir = Path(tempfile.mkdtemp(prefix="inserts-", dir=data_dir))
        self._current_database = "default"
        self._applied: dict[str, str] = {}
        self._known_settings = frozenset(
            self._text("SELECT name FROM system.settings").splitlines()
        )
        version, zone, display_name = self._text(
            "SELECT version(), timezone(), displayName()"
        ).split("\t")
        self.version = version
        self.timezone = zone
        self.display_name = display_name
        self._session_locks: dict[str, threading.Lock] = {}
        self._sessions_guard = threading.Lock()

    def close(self) -> None:
        """Close the chDB session."""
        with self._lock:
            self._session.close()

    def _text(self, sql: str) -> str:
        return self._session.query(sql, "TabSeparated").bytes().decode().strip()

    @contextlib.contextmanager
    def http_session(self, request: Request) -> Iterator[None]:
        """Hold the request's ``session_id``; refuse a concurrent user as ClickHouse does."""
        session_id = request.value("session_id")
        if not session_id:
            yield
            return
        with self._sessions_guard:
            known = session_id in self._session_locks
            if not known and request.value("session_check") == "1":
                raise ClickHouseError(372, "SESSION_NOT_FOUND", f"Session {session_id} not found")
            lock = self._session_locks.setdefault(session_id, threading.Lock())
        if not lock.acquire(blocking=False):
            raise ClickHouseError(
                373, "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client"
            )
        try:
            yield
        finally:
            lock.release()

    def run(self, request: Request) -> tuple[bytes, str | None, dict[str, str]]:
        """Run the request's statement; return the body, the output format, the summary."""
        statement = request.query_bytes()
        if not statement.strip():
            raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
        with self._lock:
            self._use_database(request.value("database") or "default")
            self._apply_settings(request.settings())
            insert = _INSERT_WITH_DATA.match(statement)
            if insert is not None and not _INSERT_FROM_QUERY.search(insert.group("head")):
                return self._insert(insert, statement[insert.end() :], request)
            return self._select(statement, request)

    def _use_database(self, database: str) -> None:
        if database == self._current_database:
            return
        try:
            self._session.query(f"USE {quote_identifier(database)}", "TabSeparated")
        except Exception as exc:
            raise engine_error(exc) from None
        self._current_database = database

    def _apply_settings(self, wanted: dict[str, str]) -> None:
        known = {}
        for name, value in wanted.items():
            if name in self._known_settings and name not in UNSUPPORTED_SETTINGS:
                known[name] = value
            else:
                print(f"ignoring parameter {name}={value!r}", file=sys.stderr, flush=True)
        changes = [
            f"{name} = {quote_string(value)}"
            for name, value in known.items()
            if self._applied.get(name) != value
        ]
        changes += [f"{name} = DEFAULT" for name in self._applied if name not in known]
        if not changes:
            return
        try:
            self._session.query("SET " + ", ".join(changes), "TabSeparated")
        except Exception as exc:
            # The statement may have applied part of the changes: put them all back.
            resets = [f"{name} = DEFAULT" for name in set(self._applied) | set(known)]
            with contextlib.suppress(Exception):
                self._session.query("SET " + ", ".join(resets), "TabSeparated")
            self._applied = {}
            raise engine_error(exc) from None
        self._applied = known

    def _insert(
        self, match: re.Match[bytes], data: bytes, request: Request
    ) -> tuple[bytes, str | None, dict[str, str]]:
        head = match.group("head").decode()
        data_format = match.group("format").decode()
        handle, path = tempfile.mkstemp(dir=self._temp_dir, suffix=f".{data_format.lower()}")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            sql = f"{head} FROM INFILE {quote_string(path)} FORMAT {data_format}"
            result = self._query(sql, "TabSeparated", request.bound_parameters())
        finally:
            os.unlink(path)
        return b"", None, summary(result)

    def _select(
        self, statement: bytes, request: Request
    ) -> tuple[bytes, str | None, dict[str, str]]:
        try:
            sql = statement.decode()
        except UnicodeDecodeError:
            raise ClickHouseError(
                27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "The query is not valid UTF-8"
            ) from None
        sql = sql.rstrip().rstrip(";").rstrip()
        explicit = _TRAILING_FORMAT.search(sql)
        output_format = (
            explicit.group(1) if explicit else request.value("default_format") or "TabSeparated"
        )
        if output_format.lower() in PYTHON_ONLY_FORMATS:
            raise ClickHouseError(73, "UNKNOWN_FORMAT", f"Unknown format {output_format}")
        result = self._query(sql, output_format, request.bound_parameters())
        body = result.bytes()
        first_word = _LEADING_NOISE.sub("", sql).split(None, 1)[0].upper() if sql else ""
        produces_result = bool(explicit) or bool(body) or first_word in RESULT_KEYWORDS
        return body, output_format if produces_result else None, summary(result)

    def _query(self, sql: str, output_format: str, parameters: dict[str, str]) -> Any:
        try:
            return self._session.query(sql, output_format, params=parameters or None)
        except Exception as exc:  # chDB raises one exception type for every refusal
            raise engine_error(exc) from None


def summary(result: Any) -> dict[str, str]:
    """The X-ClickHouse-Summary fields chDB measures, as strings like ClickHouse sends them."""
    return {
        "read_rows": str(result.rows_read()),
        "read_bytes": str(result.bytes_read()),
        "written_rows": str(result.rows_written()),
        "written_bytes": str(result.bytes_written()),
        "elapsed_ns": str(int(result.elapsed() * 1_000_000_000)),
    }


def quote_string(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    """A backquoted ClickHouse identifier."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def decode_body(body: bytes, encoding: str | None) -> bytes:
    """The request body without its Content-Encoding."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity" or not body:
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        from backports import zstd

        return zstd.decompress(body)
    if encoding == "lz4":
        import lz4.frame

        # Each block the client sends is a frame of its own.
        chunks = []
        while body:
            decompressor = lz4.frame.LZ4FrameDecompressor()
            chunks.append(decompressor.decompress(body))
            body = decompressor.unused_data
        return b"".join(chunks)
    raise ClickHouseError(
        36, "BAD_ARGUMENTS", f"Unknown Content-Encoding of HTTP request: {encoding}"
    )


def read_request_body(rfile: BinaryIO, headers: Message) -> bytes:
    """The whole body of a request, sent with a length or in chunks (as clickhouse-connect
    streams inserts), still encoded as sent."""
    if headers.get("Transfer-Encoding", "").lower() != "chunked":
        return rfile.read(int(headers.get("Content-Length") or 0))
    chunks = []
    while True:
        size = int(rfile.readline().split(b";", 1)[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        chunks.append(rfile.read(size))
        rfile.readline()


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a multipart/form-data body (the query and ``param_`` values)."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            raise ClickHouseError(48, "NOT_IMPLEMENTED", "External tables are not supported")
        if name:
            fields[str(name)] = part.get_payload(decode=True).decode()
    return fields


class Handler(BaseHTTPRequestHandler):
    """One HTTP request: authenticate, read, run in the engine, answer."""

    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse"
    server: ClickHouseHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        """Queries in the URL, and the ``/ping`` health check."""
        self._handle()

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        """Queries in the URL and the body, inserts with their data."""
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Log requests to standard error, which the test keeps in a file."""
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query_id = ""
        try:
            body = self._read_body()
            if url.path.rstrip("/") == "/ping":
                self._send(Answer(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"}))
                return
            if url.path not in ("", "/"):
                raise ClickHouseError(
                    1000, "POCO_EXCEPTION", f"There is no handle {url.path} on this server"
                )
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            query_id = params.get("query_id") or str(uuid.uuid4())
            request = Request(params=params, body=body)
            content_type = self.headers.get("Content-Type", "")
            if content_type.lower().startswith("multipart/form-data"):
                request.form = parse_form(content_type, body)
                request.body = b""
            if self.command == "GET" and not request.value("query"):
                self._send(Answer(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"}))
                return
            self._authenticate(request)
            for name in ("compress", "decompress"):
                if request.value(name) == "1":
                    raise ClickHouseError(
                        48, "NOT_IMPLEMENTED", f"The {name} parameter is not supported here"
                    )
            engine = self.server.engine
            with engine.http_session(request):
                output, output_format, measured = engine.run(request)
            headers = {
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Summary": json.dumps(measured),
            }
            if output_format is not None:
                headers["X-ClickHouse-Format"] = output_format
                headers["X-ClickHouse-Timezone"] = engine.timezone
                headers["Content-Type"] = CONTENT_TYPES.get(
                    output_format.lower(), "text/plain; charset=UTF-8"
                )
            else:
                headers["Content-Type"] = "text/plain; charset=UTF-8"
            self._send(Answer(200, output, headers))
        except ClickHouseError as error:
            self._send_error(error, query_id)
        except Exception as exc:  # anything else is a bug here, reported like a server bug
            self._send_error(ClickHouseError(1001, "STD_EXCEPTION", repr(exc)), query_id)

    def _read_body(self) -> bytes:
        body = read_request_body(self.rfile, self.headers)
        return decode_body(body, self.headers.get("Content-Encoding"))

    def _authenticate(self, request: Request) -> None:
        user = self.headers.get("X-ClickHouse-User") or request.value("user")
        password = self.headers.get("X-ClickHouse-Key") or request.value("password") or ""
        authorization = self.headers.get("Authorization", "")
        if authorization.lower().startswith("basic "):
            import base64

            decoded = base64.b64decode(authorization[6:].strip()).decode()
            user, _, password = decoded.partition(":")
        user = user or "default"
        if (user, password) != (self.server.user, self.server.password):
            raise ClickHouseError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, "
                "or there is no user with such name",
            )

    def _send_error(self, error: ClickHouseError, query_id: str) -> None:
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(error.code),
        }
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        body = f"{error.text}\n".encode()
        self._send(Answer(HTTP_STATUS_BY_CODE.get(error.code, 500), body, headers))

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        answer.headers.setdefault("X-ClickHouse-Server-Display-Name", self.server.display_name)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Keep-Alive", "timeout=10")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)


class ClickHouseHTTPServer(ThreadingHTTPServer):
    """The HTTP server, holding the engine its handlers share."""

    daemon_threads = True

    def __init__(self, engine: Engine, user: str, password: str, port: int = 0) -> None:
        super().__init__((LOOPBACK, port), Handler)
        self.engine = engine
        self.user = user
        self.password = password
        self.display_name = engine.display_name

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.server_address[1]


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or until standard input closes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    args.data_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(args.data_dir)
    server = ClickHouseHTTPServer(engine, args.user, args.password, args.port)

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)

    def watch_parent() -> None:
        sys.stdin.buffer.read()
        stop()

    threading.Thread(target=watch_parent, daemon=True).start()
    pending = args.port_file.with_suffix(".tmp")
    pending.write_text(str(server.port))
    pending.replace(args.port_file)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        engine.close()


@contextlib.contextmanager
def serve(
    data_dir: Path, start_timeout_seconds: float = 60.0, port: int = 0, password: str = ""
) -> Iterator[int]:
    """Run the server in a child process over ``data_dir`` (on ``port``, or one the system
    picks, with ``password`` for its user ``default``); yield its port, stop it after."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port_file = data_dir / "port"
    port_file.unlink(missing_ok=True)  # left by an earlier run over the same folder
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, __file__, "--data-dir", str(data_dir)),
                *("--port-file", str(port_file), "--port", str(port), "--password", password),
            ],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + start_timeout_seconds
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"The ClickHouse HTTP test server did not start:\n{log_path.read_text()}"
                )
            time.sleep(0.05)
        yield int(port_file.read_text())
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
