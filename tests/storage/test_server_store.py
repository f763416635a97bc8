"""The server store against a real ClickHouse engine behind ClickHouse's HTTP interface.

No ClickHouse server can be installed for the suite, so ``clickhouse_http`` serves the HTTP
interface over chDB in a child process, and ``ServerStore`` talks to it with an unchanged
clickhouse-connect client: connection start-up, bound parameters, Arrow inserts, errors.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from collector.service import Collector
from collector.spool import Spool
from seamwatch.settings import Settings
from storage import QueryError, Store, StoreError, StoreUnavailable, open_store
from storage.schema import MIGRATIONS, SCHEMA_TABLE, TRACE_ID_TS_TABLE, TRACES_TABLE
from storage.server import ServerStore
from tests.rows import make_span_rows, otlp_json_request
from tests.storage.clickhouse_http import read_request_body, serve

DATABASE = "swtest"


@pytest.fixture(scope="module")
def server_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a ClickHouse HTTP interface over chDB, running for this module."""
    with serve(tmp_path_factory.mktemp("clickhouse-http")) as port:
        yield port


@pytest.fixture(scope="module")
def server_url(server_port: int) -> str:
    return f"http://default:@127.0.0.1:{server_port}/{DATABASE}"


@pytest.fixture(scope="module")
def server_store(server_url: str) -> Iterator[Store]:
    """The store ``open_store`` opens for a server URL, migrated."""
    store = open_store(Settings(clickhouse_url=server_url))
    try:
        yield store
    finally:
        store.close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def schema_of(store: Store) -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
    """The tables (name, engine) and columns (table, name, type) of the store's database."""
    where = "WHERE database = {d:String}"
    tables = store.query_rows(
        f"SELECT name, engine FROM system.tables {where}", {"d": store.database}
    )
    columns = store.query_rows(
        f"SELECT table, name, type FROM system.columns {where}", {"d": store.database}
    )
    return {tuple(row) for row in tables}, {tuple(row) for row in columns}


def test_open_store_creates_the_database_and_applies_every_migration(server_store):
    assert isinstance(server_store, ServerStore)
    assert server_store.backend == "server"
    assert server_store.database == DATABASE
    versions = server_store.query_rows(f"SELECT version FROM {server_store.table(SCHEMA_TABLE)}")
    assert sorted(int(version) for (version,) in versions) == sorted(m.version for m in MIGRATIONS)
    tables = dict(schema_of(server_store)[0])
    assert tables[TRACES_TABLE] == "MergeTree"
    assert tables[TRACE_ID_TS_TABLE] == "AggregatingMergeTree"
    assert tables["otel_traces_trace_id_ts_mv"] == "MaterializedView"


def test_the_server_schema_is_the_embedded_schema(server_store, store):
    assert schema_of(server_store) == schema_of(store)


def test_opening_again_migrates_nothing(server_store, server_url):
    again = open_store(Settings(clickhouse_url=server_url))
    try:
        rows = again.query_rows(f"SELECT count() FROM {again.table(SCHEMA_TABLE)}")
        assert rows == [(len(MIGRATIONS),)]
    finally:
        again.close()


def test_inserted_exporter_rows_read_back_unchanged(server_store):
    started = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    rows = make_span_rows(
        [
            {
                "service": "billing",
                "name": "POST /invoice",
                "timestamp": started,
                "duration_ms": 12.5,
                "status": "Error",
                "StatusMessage": 'it\'s "broken"\tbadly',
                "attributes": {"http.route": "/invoice", "erp.doc": "Ä-42"},
                "ResourceAttributes": {"service.name": "billing"},
                "Events.Timestamp": [started + timedelta(milliseconds=3)],
                "Events.Name": ["retry"],
                "Events.Attributes": [{"attempt": "2"}],
                "Links.TraceId": ["ab" * 16],
                "Links.SpanId": ["cd" * 8],
                "Links.TraceState": [""],
                "Links.Attributes": [{}],
            }
        ]
    )
    trace_id = rows["TraceId"][0].as_py()
    assert server_store.insert_arrow(TRACES_TABLE, rows) == 1
    assert server_store.insert_arrow(TRACES_TABLE, rows.slice(0, 0)) == 0

    frame = server_store.query_df(
        f"SELECT * FROM {server_store.table(TRACES_TABLE)} WHERE TraceId = {{t:String}}",
        {"t": trace_id},
    )
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["ServiceName"] == "billing"
    assert row["SpanName"] == "POST /invoice"
    assert row["Timestamp"].to_pydatetime() == started.replace(tzinfo=None)
    assert row["Duration"] == 12_500_000
    assert row["StatusCode"] == "Error"
    assert row["StatusMessage"] == 'it\'s "broken"\tbadly'
    assert row["SpanAttributes"] == {"http.route": "/invoice", "erp.doc": "Ä-42"}
    assert list(row["Events.Name"]) == ["retry"]
    assert list(row["Events.Attributes"]) == [{"attempt": "2"}]
    assert list(row["Links.TraceId"]) == ["ab" * 16]


def test_bound_parameters_of_several_types(server_store):
    since = datetime(2024, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)
    rows = make_span_rows(
        [
            {"service": "bind-test", "name": "early", "timestamp": since - timedelta(seconds=1)},
            {"service": "bind-test", "name": "late", "timestamp": since, "duration_ms": 40},
            {"service": "bind-test", "name": "later", "timestamp": since + timedelta(hours=1)},
        ]
    )
    server_store.insert_arrow(TRACES_TABLE, rows)
    sql = (
        f"SELECT SpanName FROM {server_store.table(TRACES_TABLE)} "
        "WHERE ServiceName = {service:String} AND Timestamp >= {since:DateTime64(9)} "
        "AND Duration >= {min_duration:UInt64} ORDER BY Timestamp"
    )
    found = server_store.query_rows(
        sql, {"service": "bind-test", "since": since, "min_duration": 1_000_000}
    )
    assert found == [("late",), ("later",)]
    found = server_store.query_rows(
        sql, {"service": "bind-test", "since": since, "min_duration": 40_000_000}
    )
    assert found == [("late",)]

    text = "quote ' backslash \\ tab \t newline \n unicode ✓"
    echoed = server_store.query_df(
        "SELECT {s:String} AS s, {n:UInt64} AS n, {t:DateTime64(9)} AS t, "
        "{names:Array(String)} AS names",
        {"s": text, "n": 2**64 - 1, "t": since, "names": ["a", "b'c"]},
    )
    assert echoed["s"][0] == text
    assert int(echoed["n"][0]) == 2**64 - 1
    assert echoed["t"][0].to_pydatetime() == since.replace(tzinfo=None)
    assert list(echoed["names"][0]) == ["a", "b'c"]


def test_command_runs_ddl_and_inserts_with_parameters(server_store):
    table = server_store.table("notes")
    server_store.command(
        f"CREATE TABLE IF NOT EXISTS {table} (id UInt64, body String, at DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY id"
    )
    at = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    server_store.command(
        f"INSERT INTO {table} VALUES ({{id:UInt64}}, {{body:String}}, {{at:DateTime64(3, 'UTC')}})",
        {"id": 7, "body": "hello; DROP TABLE x", "at": at},
    )
    assert server_store.query_rows(f"SELECT id, body, at FROM {table}") == [
        (7, "hello; DROP TABLE x", at)
    ]
    server_store.command(f"DROP TABLE {table}")
    assert server_store.query_rows(
        "SELECT count() FROM system.tables WHERE database = {d:String} AND name = 'notes'",
        {"d": DATABASE},
    ) == [(0,)]


def test_the_trace_id_lookup_view_fills(server_store):
    first = datetime(2024, 7, 1, 10, 0, 0, tzinfo=UTC)
    trace = "0123456789abcdef0123456789abcdef"
    rows = make_span_rows(
        [
            {"TraceId": trace, "timestamp": first},
            {"TraceId": trace, "timestamp": first + timedelta(seconds=90)},
        ]
    )
    server_store.insert_arrow(TRACES_TABLE, rows)
    found = server_store.query_rows(
        f"SELECT min(Start), max(End) FROM {server_store.table(TRACE_ID_TS_TABLE)} "
        "WHERE TraceId = {t:String}",
        {"t": trace},
    )
    naive = first.replace(tzinfo=None)
    assert found == [(naive, naive + timedelta(seconds=90))]


def test_a_refused_statement_raises_query_error(server_store):
    with pytest.raises(QueryError, match="UNKNOWN_TABLE"):
        server_store.query_rows(f"SELECT * FROM {server_store.table('no_such_table')}")
    with pytest.raises(QueryError, match="SYNTAX_ERROR"):
        server_store.command("CREATE TABLEX nothing")
    with pytest.raises(QueryError):
        server_store.query_df("SELECT {n:UInt8}", {"n": "not a number"})
    rows = make_span_rows([{}])
    wrong = rows.rename_columns(["NoSuchColumn", *rows.column_names[1:]])
    with pytest.raises(QueryError, match="NoSuchColumn"):
        server_store.insert_arrow(TRACES_TABLE, wrong)
    # The store still works after each refusal.
    assert server_store.query_rows("SELECT 1") == [(1,)]


def test_an_unreachable_server_raises_store_unavailable():
    url = f"http://default:@127.0.0.1:{closed_port()}/{DATABASE}"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="Cannot reach the ClickHouse server") as caught:
        open_store(Settings(clickhouse_url=url))
    assert "127.0.0.1" in str(caught.value)
    assert time.monotonic() - started < 10


def test_a_server_that_goes_away_raises_store_unavailable(tmp_path):
    with serve(tmp_path / "short-lived") as port:
        store = ServerStore(f"http://default:@127.0.0.1:{port}", "gone")
        assert store.query_rows("SELECT 1") == [(1,)]
    try:
        with pytest.raises(StoreUnavailable, match="does not answer"):
            store.query_rows("SELECT 1")
        with pytest.raises(StoreUnavailable):
            store.insert_arrow("t", make_span_rows([{}]))
    finally:
        store.close()


def test_one_store_serves_many_threads_at_once(server_store):
    errors: list[BaseException] = []
    results: list[list[tuple]] = []
    start = threading.Barrier(8)

    def work(number: int) -> None:
        start.wait()
        try:
            for _ in range(5):
                results.append(
                    server_store.query_rows(
                        "SELECT {n:UInt32} + sum(number) FROM numbers(100000)", {"n": number}
                    )
                )
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 40


def test_the_collector_stores_otlp_json_through_the_server(server_store, server_url, tmp_path):
    settings = Settings(
        clickhouse_url=server_url,
        data_dir=tmp_path,
        otlp_http_host="127.0.0.1",
        otlp_http_port=0,
        otlp_grpc_port=-1,
        batch_flush_interval_millis=20,
    )
    trace_id = "5b8efff798038103d269b633813fc6aa"
    start_ns = 1_697_982_593_201_336_123
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "erp-sync"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "case.lib", "version": "1.0.0"},
                        "spans": [
                            {
                                "traceId": trace_id.upper(),
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "POST /orders",
                                "kind": 2,
                                "startTimeUnixNano": str(start_ns),
                                "endTimeUnixNano": str(start_ns + 2_500_000),
                                "attributes": [
                                    {"key": "order.id", "value": {"stringValue": "SO-1001"}},
                                    {"key": "retries", "value": {"intValue": "2"}},
                                ],
                                "status": {"code": 2, "message": "ERP rejected"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    collector = Collector(server_store, settings)
    collector.start()
    try:
        response = httpx.post(f"{collector.endpoint}/v1/traces", json=body, timeout=10)
    finally:
        collector.stop()
    assert response.status_code == 200, response.text

    frame = server_store.query_df(
        "SELECT ServiceName, SpanName, SpanKind, ScopeName, Duration, StatusCode, "
        "StatusMessage, SpanAttributes, toUnixTimestamp64Nano(Timestamp) AS ns "
        f"FROM {server_store.table(TRACES_TABLE)} WHERE TraceId = {{t:String}}",
        {"t": trace_id},
    )
    assert len(frame) == 1
    row = frame.iloc[0].to_dict()
    assert row["ServiceName"] == "erp-sync"
    assert row["SpanName"] == "POST /orders"
    assert row["SpanKind"] == "Server"
    assert row["ScopeName"] == "case.lib"
    assert row["Duration"] == 2_500_000
    assert row["StatusCode"] == "Error"
    assert row["StatusMessage"] == "ERP rejected"
    assert row["SpanAttributes"] == {"order.id": "SO-1001", "retries": "2"}
    assert row["ns"] == start_ns


def test_the_http_interface_answers_errors_as_clickhouse_does(server_port):
    base = f"http://127.0.0.1:{server_port}"
    assert httpx.get(f"{base}/ping").text == "Ok.\n"
    refused = httpx.post(f"{base}/", content=b"SELECT * FROM missing_table")
    assert refused.status_code == 404
    assert refused.headers["X-ClickHouse-Exception-Code"] == "60"
    assert refused.text.startswith("Code: 60. DB::Exception: ")
    denied = httpx.post(f"{base}/", content=b"SELECT 1", auth=("default", "wrong"))
    assert denied.status_code == 403
    assert denied.headers["X-ClickHouse-Exception-Code"] == "516"
    answered = httpx.post(f"{base}/?param_x=41", content=b"SELECT {x:UInt8} + 1")
    assert answered.text == "42\n"
    assert answered.headers["X-ClickHouse-Format"] == "TabSeparated"
    created = httpx.post(f"{base}/", content=b"CREATE DATABASE IF NOT EXISTS probe")
    assert created.status_code == 200 and created.text == ""
    assert "X-ClickHouse-Format" not in created.headers


def test_a_wrong_password_is_refused_not_unavailable(server_port):
    url = f"http://default:wrong@127.0.0.1:{server_port}/{DATABASE}"
    with pytest.raises(StoreError, match="AUTHENTICATION_FAILED") as caught:
        open_store(Settings(clickhouse_url=url))
    assert not isinstance(caught.value, StoreUnavailable)


def test_an_empty_result_keeps_its_columns_as_on_the_embedded_store(server_store, store):
    sql = "SELECT TraceId, SpanName, Duration FROM {table} WHERE ServiceName = {service:String}"
    for backend in (server_store, store):
        frame = backend.query_df(
            sql.replace("{table}", backend.table(TRACES_TABLE)), {"service": "nobody"}
        )
        assert frame.empty
        assert list(frame.columns) == ["TraceId", "SpanName", "Duration"], backend.backend
    assert server_store.query_df("SHOW TABLES LIKE 'nothing%'").empty


def test_time_zone_columns_come_back_as_on_the_embedded_store(server_store, store):
    sql = (
        "SELECT toDateTime64('2024-01-02 03:04:05.678', 3, 'UTC') AS zoned, "
        "toDateTime64('2024-01-02 03:04:05.678', 9) AS plain"
    )
    expected = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    for backend in (server_store, store):
        row = backend.query_df(sql).iloc[0]
        assert row["zoned"].to_pydatetime() == expected, backend.backend
        assert row["plain"].to_pydatetime() == expected.replace(tzinfo=None), backend.backend
        (zoned, plain), *_ = backend.query_rows(sql)
        assert zoned == expected and plain == expected.replace(tzinfo=None), backend.backend


def test_an_unreachable_server_is_one_sentence_without_the_password():
    # the error once carried urllib3's whole retry text, after a stray driver warning
    from storage.errors import StoreUnavailable
    from storage.server import ServerStore

    with pytest.raises(StoreUnavailable) as caught:
        ServerStore("http://default:hunter2@127.0.0.1:1/seamwatch", "seamwatch")
    message = str(caught.value)
    assert message.startswith("Cannot reach the ClickHouse server at 127.0.0.1:1: [Errno 111]")
    assert "SEAMWATCH_CLICKHOUSE_URL" in message
    assert "hunter2" not in message and "HTTPConnectionPool" not in message


def test_a_stopped_server_is_one_short_warning_and_one_short_503(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with serve(tmp_path / "short-lived") as port:
        url = f"http://default:@127.0.0.1:{port}/{DATABASE}"
        settings = Settings(
            clickhouse_url=url,
            data_dir=tmp_path / "data",
            otlp_http_host="127.0.0.1",
            otlp_http_port=0,
            otlp_grpc_port=-1,
            batch_flush_interval_millis=20,
        )
        server_store = open_store(settings)
        collector = Collector(server_store, settings)
        collector.start()
    # the server stopped before the first request: the store has not taken an insert yet
    try:
        traces = f"{collector.endpoint}/v1/traces"
        first = httpx.post(traces, json=otlp_json_request("ab" * 16), timeout=30)
        time.sleep(2.5)  # several more attempts, every second
        again = httpx.post(traces, json=otlp_json_request("cd" * 16), timeout=30)
        health = httpx.get(f"{collector.endpoint}/health", timeout=30)
    finally:
        collector.stop()
        server_store.close()

    expected = (
        f"The store cannot take spans now (the ClickHouse server at 127.0.0.1:{port} does not "
        "answer: connection refused); retry after 5 s."
    )
    for refused in (first, again):
        assert refused.status_code == 503
        assert refused.json()["message"] == expected
    assert health.status_code == 503
    assert health.json()["store"] == "unavailable"
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.name for record in warnings] == ["collector.writer"]
    assert warnings[0].getMessage() == (
        f"The store is unavailable: the ClickHouse server at 127.0.0.1:{port} does not answer: "
        "connection refused. New requests get 503 until it answers; nothing waits in the spool."
    )


def test_ctrl_c_with_the_server_down_leaves_the_spool_at_once(tmp_path):
    data_dir = tmp_path / "data"
    with serve(tmp_path / "short-lived") as port:
        url = f"http://default:@127.0.0.1:{port}/{DATABASE}"
        collector = subprocess.Popen(
            [
                *(sys.executable, "-m", "seamwatch", "collector", "--data-dir", str(data_dir)),
                *("--clickhouse-url", url, "--otlp-http-port", "0", "--otlp-grpc-port", "-1"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            first_line = collector.stdout.readline()
            endpoint = first_line.removeprefix("OTLP/HTTP receiver: ").strip()
            assert endpoint.endswith("/v1/traces"), first_line
            stored = httpx.post(endpoint, json=otlp_json_request("ab" * 16), timeout=30)
        except BaseException:
            collector.kill()
            collector.wait()
            raise
    try:
        # the store took an insert before, so this one is acknowledged and waits in the spool
        spooled = httpx.post(endpoint, json=otlp_json_request("cd" * 16), timeout=30)
        health = endpoint.removesuffix("/v1/traces") + "/health"
        deadline = time.monotonic() + 10
        while httpx.get(health, timeout=10).status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # more attempts, which must not be logged
        started = time.monotonic()
        collector.send_signal(signal.SIGINT)
        stdout, stderr = collector.communicate(timeout=60)
        stop_seconds = time.monotonic() - started
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.wait()

    assert stored.status_code == 200 and spooled.status_code == 200
    assert collector.returncode == 0
    assert stop_seconds < 8
    assert stdout.strip().endswith("Stopping...")
    warnings = [line for line in stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == 2, stderr
    assert "The store is unavailable: the ClickHouse server at" in warnings[0]
    assert warnings[1].endswith(
        f"1 span stays in the spool {data_dir / 'spool'}, as the store is unavailable (the "
        f"ClickHouse server at 127.0.0.1:{port} does not answer: connection refused); the next "
        "start inserts it."
    )
    assert "urllib3" not in stderr and "?" not in stderr
    assert "Collector stopped after storing 1 span\n" in stderr
    assert len(list((data_dir / "spool").glob("*.arrow"))) == 1


def test_the_collector_starts_with_the_server_down_and_inserts_its_spool_once_it_is_back(
    tmp_path,
):
    # it refused to start ("Cannot reach the ClickHouse server", exit 1) with a span waiting
    # in its spool from an earlier outage, and its clients got "connection refused"
    port = closed_port()
    url = f"http://default:@127.0.0.1:{port}/{DATABASE}"
    data_dir = tmp_path / "data"
    spool = Spool(data_dir / "spool", store=Settings(clickhouse_url=url).store_identity())
    spool.write(make_span_rows([{"TraceId": "ab" * 16}]))
    spool.close()
    collector = subprocess.Popen(
        [
            *(sys.executable, "-m", "seamwatch", "collector", "--data-dir", str(data_dir)),
            *("--clickhouse-url", url, "--otlp-http-port", "0", "--otlp-grpc-port", "-1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = collector.stdout.readline().removeprefix("OTLP/HTTP receiver: ").strip()
        health = endpoint.removesuffix("/v1/traces") + "/health"
        refused = httpx.post(endpoint, json=otlp_json_request("cd" * 16), timeout=30)
        down = httpx.get(health, timeout=30)
        lineage = httpx.get(
            endpoint.removesuffix("/v1/traces") + "/api/v1/lineage",
            params={"trace_id": "ab" * 16},
            timeout=30,
        )
        with serve(tmp_path / "server", port=port):
            deadline = time.monotonic() + 30
            while httpx.get(health, timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "the collector did not take the server back"
                time.sleep(0.1)
            accepted = httpx.post(endpoint, json=otlp_json_request("ef" * 16), timeout=30)
            collector.send_signal(signal.SIGINT)
            _, stderr = collector.communicate(timeout=60)
            store = ServerStore(url.removesuffix(f"/{DATABASE}"), DATABASE)
            try:
                stored = store.query_rows(f"SELECT DISTINCT TraceId FROM {TRACES_TABLE}")
            finally:
                store.close()
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.communicate()

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["message"] == (
        f"The store cannot take spans now (the ClickHouse server at 127.0.0.1:{port} does not "
        "answer: connection refused); retry after 5 s."
    )
    assert down.status_code == 503 and down.json()["queued_spans"] == 1
    # the API beside the receiver answered 500 with a traceback in the log
    assert lineage.status_code == 503
    assert lineage.json() == {
        "error": f"store error: the ClickHouse server at 127.0.0.1:{port} does not answer: "
        "connection refused"
    }
    assert accepted.status_code == 200
    assert collector.returncode == 0
    assert sorted(row[0] for row in stored) == ["ab" * 16, "ef" * 16]
    warnings = [line for line in stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, stderr
    assert warnings[0].endswith(
        f"The store is unavailable: the ClickHouse server at 127.0.0.1:{port} does not answer: "
        "connection refused. New requests get 503 until it answers; 1 span waits in the spool."
    )
    assert "the spool inserted" in stderr.split(warnings[0])[1]
    assert "Traceback" not in stderr


class _Gate:
    """A proxy in front of the test server that can answer 503 itself, as a load balancer in
    front of a busy or waking ClickHouse does."""

    def __init__(self, upstream: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        gate = self
        self.open = True
        self.status = 503

        class Forward(BaseHTTPRequestHandler):
            # persistent connections, as the client expects: over HTTP/1.0 with the server's
            # Keep-Alive header passed on, the client reused a connection the gate had closed
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
                self._forward()

            def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
                self._forward()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def _forward(self) -> None:
                # the whole body, chunked too: an insert answered while it is still being
                # sent ends with a closed connection instead of the status under test
                body = read_request_body(self.rfile, self.headers)
                if not gate.open:
                    self.send_response(gate.status)
                    self.send_header("Content-Length", "19")
                    self.end_headers()
                    self.wfile.write(b"Service Unavailable")
                    return
                passed = ("host", "transfer-encoding", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in passed}
                answer = httpx.request(
                    self.command,
                    f"http://127.0.0.1:{upstream}{self.path}",
                    content=body,
                    headers=headers,
                )
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    hop_by_hop = ("content-length", "transfer-encoding", "connection", "keep-alive")
                    if name.lower() not in hop_by_hop:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [502, 503])
def test_a_proxy_error_in_front_of_the_server_is_an_outage_not_a_refusal(tmp_path, status):
    # a 502 was taken for ClickHouse refusing the statement: the rows of an insert would have
    # been set aside instead of waiting in the spool for the server to come back
    with serve(tmp_path / "behind-a-gate") as port:
        gate = _Gate(port)
        store = ServerStore(f"http://default:@127.0.0.1:{gate.port}", "gated")
        try:
            assert store.query_rows("SELECT 1") == [(1,)]
            gate.open, gate.status = False, status
            with pytest.raises(StoreUnavailable, match=f"answers HTTP {status}"):
                store.insert_arrow(TRACES_TABLE, make_span_rows([{}]))
            with pytest.raises(StoreUnavailable, match=f"answers HTTP {status}"):
                store.query_rows("SELECT 1")
            gate.open = True
            assert store.query_rows("SELECT 1") == [(1,)]
        finally:
            store.close()
            gate.close()


def test_a_503_when_opening_the_store_is_an_outage_not_a_refusal(tmp_path):
    with serve(tmp_path / "closed-gate") as port:
        gate = _Gate(port)
        gate.open = False
        try:
            with pytest.raises(StoreUnavailable, match="answers HTTP 503"):
                ServerStore(f"http://default:@127.0.0.1:{gate.port}", "gated")
        finally:
            gate.close()
