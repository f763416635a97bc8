"""The OTLP ingest cases of the shared data, each with the outcome its README expects."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.service import Collector
from storage import Store
from tests.collector.conftest import shared_file

CASE_TRACE = "4bf92f3577b34da6a3ce929d0e0e{:02d}36"
JSON_HEADERS = {"Content-Type": "application/json"}


def post(
    collector: Collector, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{collector.endpoint}/v1/traces", content=body, headers=headers or JSON_HEADERS
    )


def count_rows(store: Store, trace_id: str | None = None) -> int:
    if trace_id is None:
        return store.query_rows(f"SELECT count() FROM {store.table('otel_traces')}")[0][0]
    sql = f"SELECT count() FROM {store.table('otel_traces')} WHERE TraceId = {{t:String}}"
    return store.query_rows(sql, {"t": trace_id})[0][0]


def one_row(store: Store, columns: str, trace_id: str) -> dict:
    sql = f"SELECT {columns} FROM {store.table('otel_traces')} WHERE TraceId = {{t:String}}"
    frame = store.query_df(sql, {"t": trace_id})
    assert len(frame) == 1, f"expected one row for {trace_id}, found {len(frame)}"
    return frame.iloc[0].to_dict()


def assert_success_body(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() in ({}, {"partialSuccess": {}})


def assert_status_body(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    document = response.json()
    assert set(document) == {"code", "message"} and document["message"]


def test_hex_ids_in_any_case_are_stored_lowercase(running_collector, store):
    assert_success_body(
        post(running_collector, shared_file("cases/01-hex-trace-id.json").read_bytes())
    )
    row = one_row(
        store,
        "SpanId, ParentSpanId, SpanKind, StatusCode, Links.TraceId AS lt, Links.SpanId AS ls",
        "5b8efff798038103d269b633813fc60c",
    )
    assert row["SpanId"] == "eee19b7ec3c1b174"
    assert row["ParentSpanId"] == "eee19b7ec3c1b173"
    assert (row["SpanKind"], row["StatusCode"]) == ("Server", "Unset")
    assert list(row["lt"]) == ["4bf92f3577b34da6a3ce929d0e0e4736"]
    assert list(row["ls"]) == ["00f067aa0ba902b7"]


def test_base64_id_fails_the_whole_request(running_collector, store):
    response = post(running_collector, shared_file("cases/01b-base64-trace-id.json").read_bytes())
    assert_status_body(response, 400)
    assert "traceId" in response.json()["message"]
    assert count_rows(store) == 0


@pytest.mark.parametrize(
    ("trace_id", "problem"),
    [
        # 31 digits were refused as "not hex"
        ("5b8efff798038103d269b633813fc60", "has 31 hex digits; it must have 32."),
        ("5b8efff798038103d269b633813fc6", "has 30 hex digits; it must have 32."),
        ("5b8efff798038103d269b633813fc60g", "is not hex; OTLP/JSON ids are 32 hex digits."),
    ],
)
def test_a_wrong_trace_id_is_named_with_what_is_wrong(running_collector, store, trace_id, problem):
    span = {"traceId": trace_id, "spanId": "eee19b7ec3c1b174", "name": "x"}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    response = post(running_collector, body)
    assert_status_body(response, 400)
    assert response.json()["message"] == (
        f'$.resourceSpans[0].scopeSpans[0].spans[0].traceId = "{trace_id}" {problem}'
    )
    assert count_rows(store) == 0


def test_enum_names_and_unknown_fields_are_accepted(running_collector, store):
    body = shared_file("cases/03-enum-names-unknown-fields.json").read_bytes()
    assert_success_body(post(running_collector, body))
    row = one_row(store, "SpanKind, StatusCode, StatusMessage", CASE_TRACE.format(3))
    assert row == {"SpanKind": "Client", "StatusCode": "Error", "StatusMessage": "boom"}


def test_unknown_enum_name_is_refused(running_collector, store):
    response = post(running_collector, shared_file("cases/03b-unknown-enum-name.json").read_bytes())
    assert_status_body(response, 400)
    assert "SPAN_KIND_BOGUS" in response.json()["message"]
    assert count_rows(store) == 0


def test_snake_case_keys_are_accepted(running_collector, store):
    assert_success_body(
        post(running_collector, shared_file("cases/03c-snake-case-keys.json").read_bytes())
    )
    sql = (
        f"SELECT ServiceName, SpanName, toUnixTimestamp64Nano(Timestamp), Duration "
        f"FROM {store.table('otel_traces')} WHERE ServiceName = 'case03c'"
    )
    assert store.query_rows(sql) == [("case03c", "Simple", 1697982593201336000, 11750)]


@pytest.mark.parametrize(
    ("content_type", "method", "status"),
    [
        ("application/json; charset=utf-8", "POST", 200),
        ("text/plain", "POST", 415),
        ("application/json", "GET", 405),
    ],
)
def test_media_type_is_matched_without_parameters(
    running_collector, store, content_type, method, status
):
    body = shared_file("cases/01-hex-trace-id.json").read_bytes()
    response = httpx.request(
        method,
        f"{running_collector.endpoint}/v1/traces",
        content=body if method == "POST" else None,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    assert count_rows(store, "5b8efff798038103d269b633813fc60c") == (1 if status == 200 else 0)


def test_gzip_body_gives_the_same_row(running_collector, store):
    body = shared_file("cases/05-gzip-body.json.gz").read_bytes()
    headers = {**JSON_HEADERS, "Content-Encoding": "gzip"}
    assert_success_body(post(running_collector, body, headers))
    row = one_row(store, "SpanId, SpanKind", "5b8efff798038103d269b633813fc60c")
    assert row == {"SpanId": "eee19b7ec3c1b174", "SpanKind": "Server"}


@pytest.mark.parametrize(
    ("encoding", "gzipped", "status"), [("br", False, 415), ("gzip", False, 400)]
)
def test_bad_content_encoding_is_a_client_error(
    running_collector, store, encoding, gzipped, status
):
    body = shared_file("cases/01-hex-trace-id.json").read_bytes()
    response = post(running_collector, body, {**JSON_HEADERS, "Content-Encoding": encoding})
    assert_status_body(response, status)
    assert count_rows(store) == 0


def test_long_attribute_is_stored_whole(running_collector, store):
    template = shared_file("cases/06-long-attribute.template.json").read_text()
    body = template.replace("@@REPEAT:x:204800@@", "x" * 204_800).encode()
    assert_success_body(post(running_collector, body))
    sql = f"SELECT length(SpanAttributes['db.statement']) FROM {store.table('otel_traces')}"
    assert store.query_rows(sql) == [(204_800,)]


def test_gzip_bomb_is_refused_with_413(store, collector_settings):
    collector_settings.max_request_bytes = 1024 * 1024
    template = shared_file("cases/06b-gzip-bomb.template.json").read_text()
    marker = template[
        template.index("@@REPEAT") : template.index("@@", template.index("@@REPEAT") + 2) + 2
    ]
    count = int(marker.strip("@").split(":")[2])
    body = gzip.compress(template.replace(marker, "a" * count).encode(), compresslevel=9)
    assert len(body) < 200 * 1024
    service = Collector(store, collector_settings)
    service.start()
    try:
        response = post(service, body, {**JSON_HEADERS, "Content-Encoding": "gzip"})
    finally:
        service.stop()
    assert_status_body(response, 413)
    assert count_rows(store) == 0


@pytest.mark.parametrize("name", ["cases/07-empty-request.json", "cases/07b-empty-envelope.json"])
def test_empty_json_requests_succeed_and_write_nothing(running_collector, store, name):
    assert_success_body(post(running_collector, shared_file(name).read_bytes()))
    assert count_rows(store) == 0
    assert running_collector.writer.stats.inserted_batches == 0


def test_empty_protobuf_request_succeeds_in_protobuf(running_collector, store):
    response = post(running_collector, b"", {"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    assert count_rows(store) == 0


def test_protobuf_errors_are_protobuf_status(running_collector, store):
    response = post(running_collector, b"\xff\xff\xff", {"Content-Type": "application/x-protobuf"})
    assert response.status_code == 400
    status = status_pb2.Status.FromString(response.content)
    assert status.code == 3 and "protobuf" in status.message


def test_resent_batch_is_stored_as_sent(running_collector, store):
    body = shared_file("cases/09-duplicate-retry.json").read_bytes()
    assert_success_body(post(running_collector, body))
    assert_success_body(post(running_collector, body))
    sql = (
        f"SELECT uniqExact(TraceId, SpanId), uniqExactIf((TraceId, SpanId), StatusCode = 'Error') "
        f"FROM {store.table('otel_traces')} WHERE TraceId = {{t:String}}"
    )
    assert store.query_rows(sql, {"t": CASE_TRACE.format(9)}) == [(1, 1)]


def test_end_before_start_is_stored_with_zero_duration(running_collector, store):
    assert_success_body(
        post(running_collector, shared_file("cases/12-end-before-start.json").read_bytes())
    )
    sql = (
        f"SELECT Duration, toUnixTimestamp64Nano(Timestamp) FROM {store.table('otel_traces')} "
        "WHERE TraceId = {t:String}"
    )
    assert store.query_rows(sql, {"t": CASE_TRACE.format(12)}) == [(0, 1697982593201336123)]


def test_zero_and_empty_trace_ids_are_rejected_one_by_one(running_collector, store):
    body = shared_file("cases/15-zero-trace-id-partial-success.json").read_bytes()
    response = post(running_collector, body)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2" and partial["errorMessage"]
    assert store.query_rows(f"SELECT SpanName, TraceId FROM {store.table('otel_traces')}") == [
        ("good", CASE_TRACE.format(15))
    ]


def test_specification_trace_example_is_stored_exactly(running_collector, store):
    assert_success_body(
        post(running_collector, shared_file("data/otlp-examples/trace.json").read_bytes())
    )
    row = one_row(
        store,
        "SpanKind, ServiceName, SpanAttributes, ScopeName, Duration",
        "5b8efff798038103d269b633813fc60c",
    )
    assert row == {
        "SpanKind": "Server",
        "ServiceName": "my.service",
        "SpanAttributes": {"my.span.attr": "some value"},
        "ScopeName": "my.library",
        "Duration": 1_000_000_000,
    }


def test_malformed_json_names_the_problem(running_collector, store):
    response = post(running_collector, b'{"resourceSpans": [')
    assert_status_body(response, 400)
    assert "JSON" in response.json()["message"]
    response = post(running_collector, json.dumps({"resourceSpans": {"x": 1}}).encode())
    assert_status_body(response, 400)
    assert "resourceSpans" in response.json()["message"]
