"""The server store: a ClickHouse server or cluster reached with clickhouse-connect."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa

from storage.errors import NotClickHouse, QueryError, StoreError, StoreUnavailable, query_error

logger = logging.getLogger(__name__)
# The driver logs a warning before raising each connection error; the error we raise says it.
logging.getLogger("clickhouse_connect.driver._backend.http_sync").setLevel(logging.ERROR)

# Threads inside a call to the server, whose urllib3 retry warnings are dropped.
_in_store_call = threading.local()


class _StoreRetryFilter(logging.Filter):
    """Drops urllib3's "Retrying ..." warnings of store calls (other clients keep theirs).

    Each repeats the request URL with every query parameter, about 1 KB a line, once per
    attempt while the server is down; the StoreUnavailable we raise says it in one sentence.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        in_store_call = getattr(_in_store_call, "active", False)
        return not (in_store_call and str(record.msg).startswith("Retrying"))


logging.getLogger("urllib3.connectionpool").addFilter(_StoreRetryFilter())


@contextlib.contextmanager
def _store_call() -> Iterator[None]:
    _in_store_call.active = True
    try:
        yield
    finally:
        _in_store_call.active = False


def server_address(url: str) -> str:
    """``host:port`` of a ClickHouse URL, without its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a connection error in a few words, never a URL.

    "[Errno 111] Connection refused", "timed out": the driver's own text repeats the request
    URL with its query parameters, which says nothing to the reader and can be long.
    """
    from urllib3.exceptions import ProtocolError, TimeoutError

    silent = _silent_seconds(exc)
    if silent is not None:
        return f"it accepted the connection but did not answer within {silent:g} s"
    chain = _chain(exc)
    for error in chain:
        match = re.search(r"\[Errno -?\d+\][^\"')]*", str(error))
        if match:
            return match.group(0).strip()
    if any(isinstance(error, TimeoutError) for error in chain):
        return "timed out"
    if any(isinstance(error, ProtocolError) for error in chain):
        return "the connection was closed"
    text = re.sub(r"\S*(://|\?)\S*", "", str(exc)).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class ServerStore:
    """A database on a ClickHouse server. Safe to share between threads.

    clickhouse-connect pools its HTTP connections. The client opens no HTTP session, because a
    ClickHouse session takes one query at a time and the store is shared by threads. Columns
    with a time zone come back time-zone aware, and an empty result keeps its columns, as they
    do from the embedded store.
    """

    backend = "server"

    def __init__(self, url: str, database: str, *, probe_seconds: int | None = None) -> None:
        """Connect, creating ``database`` if need be.

        With ``probe_seconds``, the server is first asked whether it answers at all, with
        that connect and read timeout: a port that accepts connections but never answers
        then fails within seconds rather than after the driver's read timeout (300 s). The
        store's own queries keep the driver's timeouts."""
        import clickhouse_connect
        from clickhouse_connect.driver import exceptions as ch_errors

        self._errors = ch_errors
        self.database = database
        self.address = server_address(url)
        options = {"autogenerate_session_id": False, "tz_mode": "schema"}
        try:
            with _store_call():
                if probe_seconds is not None:
                    _probe(url, probe_seconds, options)
                admin = clickhouse_connect.get_client(dsn=url, database="default", **options)
                version = admin.server_version or ""
                if not _CLICKHOUSE_VERSION.fullmatch(version):
                    admin.close()
                    answer = _foreign_version(url) or f"HTTP 200, {_first_line(version)}"
                    raise _not_clickhouse(self.address, answer)
                admin.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
                admin.close()
                self._client = clickhouse_connect.get_client(dsn=url, database=database, **options)
        except ch_errors.Error as exc:
            status = _passing_status(exc)
            if status is not None:
                raise StoreUnavailable(
                    f"The ClickHouse server at {self.address} answers HTTP {status} (busy, "
                    "starting or behind a proxy that cannot reach it); try again shortly."
                ) from exc
            answer = foreign_answer(exc, url)
            if answer is not None:
                raise _not_clickhouse(self.address, answer) from exc
            if isinstance(exc, ch_errors.OperationalError):
                raise StoreUnavailable(
                    f"Cannot reach the ClickHouse server at {self.address}: {_root_cause(exc)}. "
                    "Check SEAMWATCH_CLICKHOUSE_URL (or --clickhouse-url) and that the server "
                    "runs."
                ) from exc
            raise StoreError(f"The ClickHouse server refused the connection: {exc}") from exc

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        self._call(self._client.command, sql, parameters=parameters)

    def query_df(self, sql: str, parameters: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = self._call(self._client.query_df, sql, parameters=parameters)
        if len(frame.columns) == 0:
            frame = self._empty_frame(sql, parameters)
        return frame

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        result = self._call(self._client.query, sql, parameters=parameters)
        return [tuple(row) for row in result.result_rows]

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        if data.num_rows == 0:
            return 0
        self._call(self._client.insert_arrow, table, data, database=self.database)
        return data.num_rows

    def close(self) -> None:
        self._client.close()

    def _empty_frame(self, sql: str, parameters: dict[str, Any] | None) -> pd.DataFrame:
        # ClickHouse answers an empty result in the Native format with no bytes at all, so not
        # even the column names arrive; a LIMIT 0 query over the statement names them.
        probe = f"SELECT * FROM ({sql}) LIMIT 0"
        try:
            columns = self._call(self._client.query, probe, parameters=parameters).column_names
        except QueryError:  # not a SELECT (SHOW, EXPLAIN...): the result has no known columns
            return pd.DataFrame()
        return pd.DataFrame(columns=list(columns))

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with _store_call():
                return method(*args, **kwargs)
        except self._errors.Error as exc:
            outage = server_outage(exc, self.address)
            if outage is not None:
                raise outage from exc
            raise query_error(str(exc)) from exc


def _not_clickhouse(address: str, answer: str) -> NotClickHouse:
    return NotClickHouse(
        f"{address} answered but is not a ClickHouse server ({answer}); check "
        "--clickhouse-url or SEAMWATCH_CLICKHOUSE_URL (ClickHouse's HTTP port is 8123)."
    )


def _probe(url: str, seconds: int, options: dict[str, Any]) -> None:
    """Ask the server at ``url`` for its version (as every new client does), giving up after
    ``seconds`` to connect or to answer."""
    import clickhouse_connect

    clickhouse_connect.get_client(
        dsn=url,
        database="default",
        connect_timeout=seconds,
        send_receive_timeout=seconds,
        **options,
    ).close()


def _silent_seconds(exc: BaseException) -> float | None:
    """The read timeout that ran out when a server accepted the connection but did not
    answer; None for any other error."""
    from urllib3.exceptions import ReadTimeoutError

    for error in _chain(exc):
        if isinstance(error, ReadTimeoutError):
            found = re.search(r"read timeout=([\d.]+)", str(error))
            return float(found.group(1)) if found else None
    return None


def server_outage(exc: BaseException | None, address: str) -> StoreUnavailable | None:
    """A driver error that means the server at ``address`` cannot be reached now, as one short
    sentence; None for any other error (the server answered)."""
    from clickhouse_connect.driver.exceptions import OperationalError

    if exc is None:
        return None
    # Read by people (logs, a client's 503, /health): no URL, query or password.
    status = _passing_status(exc)
    if status is not None:
        return StoreUnavailable(
            f"the ClickHouse server at {address} answers HTTP {status} (busy, "
            "starting or behind a proxy that cannot reach it)"
        )
    silent = _silent_seconds(exc)
    if silent is not None:
        return StoreUnavailable(
            f"the ClickHouse server at {address} accepted the connection but did not answer "
            f"within {silent:g} s"
        )
    if isinstance(exc, OperationalError):
        cause = re.sub(r"^\[Errno -?\d+\]\s*", "", _root_cause(exc))
        return StoreUnavailable(
            f"the ClickHouse server at {address} does not answer: {cause.lower()}"
        )
    return None


# Statuses a proxy or a waking server answers before ClickHouse itself has seen the request:
# the same request may succeed later, so the rows must wait in the spool, not be set aside.
PASSING_STATUSES = (429, 502, 503, 504)


def _passing_status(exc: BaseException) -> int | None:
    """The HTTP status of an error that did not come from ClickHouse and will pass, or None.

    ClickHouse's own errors carry its exception code; an answer without one is the driver's
    "received HTTP status N" from whatever stands in front of the server.
    """
    if getattr(exc, "code", None):
        return None
    found = re.search(r"HTTP status (\d{3})", str(exc))
    status = int(found.group(1)) if found else None
    return status if status in PASSING_STATUSES else None


_ANSWER_PATTERNS = (
    # the driver's text when the status is not 200 and no ClickHouse exception code came
    re.compile(r"HTTP driver received HTTP status (?P<status>\d{3})(?:, server response: )?"),
    # a 200 whose body is not the answer to SELECT version(): a web page, say
    re.compile(r"Unexpected response to server version query: (?P<body>.*)", re.DOTALL),
)
_QUOTED_CHARACTERS = 60


def foreign_answer(exc: BaseException, url: str | None = None) -> str | None:
    """What answered at the server's address, in a few words, when it is not ClickHouse:
    "HTTP 501, an HTML page", "not HTTP: 'SSH-2.0-OpenSSH_9.6'"; None when the answer may be
    ClickHouse's, or nothing answered at all.

    ClickHouse answers every error with its exception code (a header the driver reads, and
    ``Code: N. DB::Exception`` in the body); a status that passes (a proxy's 502, a server
    starting up) is an outage, not a wrong address. With ``url``, the body of a 200 is asked
    for again to be quoted as sent (see :func:`_version_body`)."""
    from http.client import BadStatusLine, LineTooLong, RemoteDisconnected

    for error in _chain(exc):
        # a server that closes before answering may be restarting: that is an outage
        if isinstance(error, BadStatusLine | LineTooLong) and not isinstance(
            error, RemoteDisconnected
        ):
            return f"not HTTP: {_first_line(str(error.args[0]) if error.args else '')}"
    if getattr(exc, "code", None) or _passing_status(exc) is not None:
        return None
    text = str(exc)
    if "DB::Exception" in text:  # a ClickHouse too old to send the code in a header
        return None
    status = _ANSWER_PATTERNS[0].match(text)
    if status is not None:
        return f"HTTP {status.group('status')}, {_describe_body(text[status.end() :])}"
    version = _ANSWER_PATTERNS[1].match(text)
    if version is not None:
        body = _version_body(url) if url else None
        return f"HTTP 200, {_describe_body(body or _unquote(version.group('body')))}"
    if url and not _unreached(exc):
        # the driver takes any two columns for a version and a time zone ("a\tb"), and then
        # fails on the next query as if the server had broken off: ask what it answered
        return _foreign_version(url)
    return None


# What ClickHouse answers SELECT version(), timezone() with: "24.8.4.13\tUTC\n".
_CLICKHOUSE_VERSION = re.compile(r"\d+\.\d+[\w.-]*")
_VERSION_ANSWER = re.compile(rf"{_CLICKHOUSE_VERSION.pattern}\t[^\t\n]+\n?")


def _unreached(exc: BaseException) -> bool:
    """Whether ``exc`` came of the connection (refused, timed out, cut) rather than of an
    answer the driver could not read."""
    from urllib3.exceptions import HTTPError

    return any(isinstance(error, OSError | HTTPError) for error in _chain(exc))


def _foreign_version(url: str) -> str | None:
    """What the server at ``url`` answers the version query with, in a few words, when it is
    an HTTP 200 that is not ClickHouse's version and time zone; None otherwise (a refusal, as
    a ClickHouse that wants a password answers a query without one, or no answer now)."""
    answer = _version_answer(url)
    if answer is None or answer[0] != 200 or _VERSION_ANSWER.fullmatch(answer[1]):
        return None
    return f"HTTP 200, {_describe_body(answer[1])}"


# Enough of a body to quote its start, and a short wait for it: the server answered already.
_BODY_BYTES = 4096
_BODY_SECONDS = 5


def _version_body(url: str) -> str | None:
    """The body the server at ``url`` answers the driver's version query with, as sent; None
    when it does not answer now.

    The driver's error quotes the body cut by its last character (it strips the line end
    ClickHouse ends with, and a body ``ok`` became ``'o'``) and split at tabs. The query goes
    to the URL's own address, without its credentials: the server is not ClickHouse."""
    answer = _version_answer(url)
    return None if answer is None else answer[1]


def _version_answer(url: str) -> tuple[int, str] | None:
    """The status and the start of the body the server at ``url`` answers the version query
    with (see :func:`_version_body`); None when it does not answer now."""
    import urllib3

    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"
    try:
        response = urllib3.request(
            "POST",
            origin,
            body=b"SELECT version(), timezone()",
            timeout=_BODY_SECONDS,
            retries=False,
            preload_content=False,
        )
        try:
            return response.status, response.read(_BODY_BYTES).decode("utf-8", "replace")
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError:
        return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from, outermost first, each once."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in list(chain):  # urllib3 wraps the http.client error in its arguments
        chain += [arg for arg in error.args if isinstance(arg, BaseException)]
    return chain


def _describe_body(body: str) -> str:
    """A body in a few words: never a page of HTML in an error line."""
    body = re.sub(r"\s*\(for url \S*\)$", "", body).strip()
    if not body:
        return "an empty body"
    if re.match(r"<(!doctype\s+html|html)\b", body, re.IGNORECASE):
        return "an HTML page"
    return _first_line(body)


def _first_line(text: str) -> str:
    """The first line of ``text``, shortened and quoted."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if len(line) > _QUOTED_CHARACTERS:
        line = line[: _QUOTED_CHARACTERS - 3] + "..."
    return repr(line)


def _unquote(text: str) -> str:
    """The driver quotes the body it did not expect with repr(); its text, roughly."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text.replace("\\n", "\n")
