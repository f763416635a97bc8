"""Fuzzing the decoders through the HTTP app: whatever a client sends, never a 5xx."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from collector.http_receiver import create_app
from collector.metrics import CollectorMetrics
from collector.pipeline import IngestPipeline
from collector.redaction import RedactionPolicy
from collector.spool import Spool
from collector.writer import SpanWriter


class RecordingStore:
    """An in-memory stand-in for the store: keeps what would be inserted."""

    database = "fuzz"
    backend = "memory"

    def __init__(self) -> None:
        self.rows = 0

    def insert_arrow(self, table: str, data: pa.Table) -> int:
        self.rows += data.num_rows
        return data.num_rows


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    metrics = CollectorMetrics()
    writer = SpanWriter(
        RecordingStore(),
        Spool(tmp_path_factory.mktemp("spool"), fsync=False),
        batch_max_spans=1000,
        flush_interval_millis=1,
        max_queue_spans=100_000,
        metrics=metrics,
    )
    app = create_app(
        IngestPipeline(writer, metrics, RedactionPolicy()), max_request_bytes=1024 * 1024
    )
    with TestClient(app) as test_client:
        yield test_client
    writer.shutdown()


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

hex_ids = st.one_of(
    st.text("0123456789abcdefABCDEF", min_size=0, max_size=34),
    st.text(max_size=5),
    st.integers(),
    st.none(),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
any_values = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "stringValue": scalars,
            "intValue": st.one_of(st.integers(), st.text("0123456789-", max_size=25)),
            "doubleValue": st.one_of(st.floats(), st.text(max_size=5)),
            "boolValue": scalars,
            "bytesValue": st.text(max_size=12),
        },
    ),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"arrayValue": st.fixed_dictionaries({"values": st.lists(inner)})}),
        st.fixed_dictionaries(
            {
                "kvlistValue": st.fixed_dictionaries(
                    {"values": st.lists(st.fixed_dictionaries({"key": st.text(), "value": inner}))}
                )
            }
        ),
    ),
    max_leaves=6,
)
attributes = st.lists(
    st.fixed_dictionaries({"key": st.one_of(st.text(max_size=10), scalars), "value": any_values}),
    max_size=4,
)
spans = st.fixed_dictionaries(
    {},
    optional={
        "traceId": hex_ids,
        "spanId": hex_ids,
        "parentSpanId": hex_ids,
        "name": scalars,
        "kind": st.one_of(st.integers(-3, 9), st.sampled_from(["SPAN_KIND_SERVER", "BOGUS"])),
        "startTimeUnixNano": st.one_of(st.integers(), st.text("0123456789", max_size=22)),
        "endTimeUnixNano": st.one_of(
            st.integers(min_value=0, max_value=2**64), st.text(max_size=4)
        ),
        "attributes": st.one_of(attributes, scalars),
        "events": st.lists(st.fixed_dictionaries({"name": scalars, "attributes": attributes})),
        "links": st.lists(st.fixed_dictionaries({"traceId": hex_ids, "spanId": hex_ids})),
        "status": st.one_of(
            scalars,
            st.fixed_dictionaries(
                {"code": st.one_of(st.integers(-1, 5), st.text(max_size=18)), "message": scalars}
            ),
        ),
    },
)
requests = st.fixed_dictionaries(
    {
        "resourceSpans": st.lists(
            st.fixed_dictionaries(
                {
                    "resource": st.fixed_dictionaries({"attributes": attributes}),
                    "scopeSpans": st.lists(
                        st.fixed_dictionaries({"spans": st.lists(spans, max_size=3)}), max_size=2
                    ),
                }
            ),
            max_size=2,
        )
    }
)


def assert_client_error_or_success(response) -> None:
    assert response.status_code in (200, 400, 413), response.text
    document = response.json()
    if response.status_code != 200:
        assert document["message"]


@FUZZ
@given(document=requests)
def test_otlp_shaped_json_never_gives_a_server_error(client, document):
    body = json.dumps(document, allow_nan=True).encode()
    response = client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert_client_error_or_success(response)


@FUZZ
@given(body=st.binary(max_size=400))
def test_random_bytes_as_json_never_give_a_server_error(client, body):
    response = client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert_client_error_or_success(response)


@FUZZ
@given(body=st.binary(max_size=400))
def test_random_bytes_as_protobuf_never_give_a_server_error(client, body):
    response = client.post(
        "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code in (200, 400), response.status_code


SPAN_PATH = "$.resourceSpans[0].scopeSpans[0].spans[0]"


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (b'"name":"caf\xff\xfe"', "name"),
        (
            b'"name":"x","attributes":[{"key":"k\xc3","value":{"stringValue":"v"}}]',
            "attributes[0].key",
        ),
        (b'"name":"x","status":{"message":"\xed\xa0\x80"}', "status.message"),
    ],
)
def test_invalid_utf8_in_json_is_400_naming_the_field(client, where, field):
    # it was stored as U+FFFD with 200, while the same string in protobuf is refused
    body = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",'
        b'"spanId":"eee19b7ec3c1b174",' + where + b"}]}]}]}"
    )
    response = client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith(f"{SPAN_PATH}.{field}: ")
    assert message.endswith("is not valid UTF-8; OTLP/JSON strings are UTF-8 text.")


def test_bytes_that_are_not_utf8_are_shown_as_sent(client):
    # they were shown as the lone surrogates Python decodes them to: "caf\udcff\udcfe"
    body = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",'
        b'"spanId":"eee19b7ec3c1b174","name":"caf\xc3\xa9 \xff\xfe"}]}]}]}'
    )
    response = client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith(f'{SPAN_PATH}.name: "caf\u00e9 \\xff\\xfe" is not valid UTF-8'), (
        message
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "startTimeUnixNano",
            "abc",
            'startTimeUnixNano: "abc" is not an integer (nanoseconds since the epoch, as a '
            "number or a decimal string).",
        ),
        ("endTimeUnixNano", -1, "endTimeUnixNano: -1 is out of range; it must be from 0 to 18"),
        ("name", 5, "name: 5 is not a string."),
        ("droppedEventsCount", "z", 'droppedEventsCount: "z" is not an integer (a number or a'),
        ("attributes", {"a": 1}, 'attributes must be an array, not {"a": 1}.'),
        ("attributes", [None], "attributes[0] must be an object, not null."),
        (
            "attributes",
            [{"key": "k", "value": {"boolValue": "true"}}],
            'attributes[0].value.boolValue: "true" is not true or false (without quotes).',
        ),
        (
            "attributes",
            [{"key": "k", "value": {"intValue": "1", "stringValue": "1"}}],
            "attributes[0].value sets intValue, stringValue; it takes only one of them.",
        ),
        (
            "events",
            [{"name": "e"}, {"timeUnixNano": 1.5}],
            "events[1].timeUnixNano: 1.5 is not an integer (nanoseconds since the epoch,",
        ),
    ],
)
def test_a_wrongly_typed_field_is_400_naming_its_path_and_type(client, field, value, message):
    # these came out as json_format's chain: "Failed to parse resourceSpans field: Failed to
    # parse scopeSpans field: ... invalid literal for int() with base 10: 'abc'...."
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}
    good = {**span, "name": "fine"}
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [good, {**span, field: value}]}]}]}
    response = client.post("/v1/traces", json=document)
    assert response.status_code == 400
    text = response.json()["message"]
    assert text.startswith(f"$.resourceSpans[0].scopeSpans[0].spans[1].{message}"), text
    assert "Failed to parse" not in text and "...." not in text


def test_every_form_otlp_json_allows_is_still_accepted(client):
    span = {
        "trace_id": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "eee19b7ec3c1b174",
        "name": "forms",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "end_time_unix_nano": 1700000000500000000,
        "status": {"code": "STATUS_CODE_ERROR"},
        "attributes": [
            {"key": "n", "value": {"intValue": "-9223372036854775808"}},
            {"key": "d", "value": {"doubleValue": "NaN"}},
            {"key": "b", "value": {"boolValue": False}},
        ],
        "events": [{"timeUnixNano": 1.7e18, "name": "e"}],
    }
    response = client.post(
        "/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    )
    assert response.status_code == 200, response.text


def test_invalid_utf8_in_protobuf_is_400(client):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="NAME"
    )
    body = request.SerializeToString().replace(b"NAME", b"N\xff\xfeE")
    response = client.post(
        "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 400


def test_deeply_nested_json_is_400_not_500(client):
    for body in (
        b"[" * 100_000,
        b'{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":'
        + b'{"arrayValue":{"values":[' * 3000,
    ):
        response = client.post(
            "/v1/traces", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["code"] == 3


def test_deep_but_complete_attribute_value_is_400_or_stored(client):
    depth = 3000
    value = '{"arrayValue":{"values":[' * depth + '{"intValue":"1"}' + "]}}" * depth
    body = (
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",'
        f'"spanId":"eee19b7ec3c1b174","name":"deep","attributes":[{{"key":"k","value":{value}}}]'
        "}]}]}]}"
    ).encode()
    response = client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", True, "kind = true is not one of"),
        ("kind", [2], "kind = [2] is not one of"),
        ("status", "bad", "status must be an object"),
        ("status", {"code": "STATUS_CODE_MAYBE"}, 'status.code = "STATUS_CODE_MAYBE"'),
    ],
)
def test_wrongly_typed_kind_or_status_is_400_naming_the_field(client, field, value, message):
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}
    span["name"], span[field] = "x", value
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    response = client.post("/v1/traces", json=document)
    assert response.status_code == 400
    assert message in response.json()["message"]


@pytest.mark.parametrize("good", ["aGVsbG8=", "aGVsbG8", "-_-_", ""])
def test_base64_bytes_values_are_accepted(client, good):
    response = client.post("/v1/traces", json=_one_span_with_bytes(good))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("bad", ["!!!", "a b c ?", 12])
def test_a_bytes_value_that_is_not_base64_is_400_naming_it(client, bad):
    response = client.post("/v1/traces", json=_one_span_with_bytes(bad))
    assert response.status_code == 400
    message = response.json()["message"]
    assert ".spans[0].attributes[0].value.bytesValue" in message
    assert "is not base64" in message


def _one_span_with_bytes(value: object) -> dict:
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "x",
        "attributes": [{"key": "payload", "value": {"bytesValue": value}}],
    }
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


DOUBLE_PATH = "$.resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.doubleValue"


def _one_span_with_double(value: str) -> bytes:
    """A request whose one attribute is a doubleValue written as ``value`` (raw JSON)."""
    span = (
        '{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x",'
        f'"attributes":[{{"key":"d","value":{{"doubleValue":{value}}}}}]}}'
    )
    return f'{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}'.encode()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1e400", "Infinity is not a number"),
        ('"1e400"', '"1e400" is out of range for a double'),
        ('"-1e400"', '"-1e400" is out of range for a double'),
        ('"inf"', '"inf" is not a number'),
        ('"-Inf"', '"-Inf" is not a number'),
        ('"infinity"', '"infinity" is not a number'),
        ('"nan"', '"nan" is not a number'),
        ('"-NaN"', '"-NaN" is not a number'),
        ('"1_0"', '"1_0" is not a number'),
        ('" 1.5"', '" 1.5" is not a number'),
        # true was stored as 1.0
        ("true", "true is not a number"),
        ("false", "false is not a number"),
    ],
)
def test_a_double_beyond_range_or_misspelt_is_400_naming_it(client, value, problem):
    # a string was read with float(): "1e400" and "inf" were stored as +Inf, while the number
    # 1e400 was refused
    response = client.post(
        "/v1/traces",
        content=_one_span_with_double(value),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert message.startswith(f"{DOUBLE_PATH}: {problem}"), message
    assert message.endswith('(or "NaN", "Infinity", "-Infinity").'), message


@pytest.mark.parametrize(
    "value", ['"NaN"', '"Infinity"', '"-Infinity"', '"1.5"', '"-2e-3"', "1e308"]
)
def test_doubles_proto3_json_allows_are_accepted(client, value):
    response = client.post(
        "/v1/traces",
        content=_one_span_with_double(value),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
