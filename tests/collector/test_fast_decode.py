"""The fast protobuf decoder gives exactly what the reference flattening gives, for any body.

Every test decodes one body both ways: ``request_to_batch(ExportTraceServiceRequest.FromString)``
(the reference) and ``decode_protobuf_batch`` (the C extension), and requires the same table,
rejected count and reason, or the same exception class (and, for InvalidSpans, message).
"""

from __future__ import annotations

import math
import random
import struct
import sys
import threading
import time

import pyarrow as pa
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector import fast_decode
from collector.fast_decode import FAST_DECODER_AVAILABLE, decode_protobuf_batch
from collector.spans import InvalidSpans, format_double, request_to_batch

needs_extension = pytest.mark.skipif(
    not FAST_DECODER_AVAILABLE, reason="collector._fastotlp was not built (no C compiler)"
)

EXPECTED_ERRORS = (DecodeError, InvalidSpans)


def reference(body: bytes):
    return request_to_batch(ExportTraceServiceRequest.FromString(body))


def outcome(decode, body: bytes):
    try:
        batch = decode(body)
    except EXPECTED_ERRORS as exc:
        return exc
    batch.rows.validate(full=True)
    return batch


def assert_same(body: bytes):
    """Both decoders agree on ``body``; returns the batch, or the exception both raised."""
    expected = outcome(reference, body)
    actual = outcome(decode_protobuf_batch, body)
    if isinstance(expected, Exception):
        assert type(actual) is type(expected), (expected, actual)
        if isinstance(expected, InvalidSpans):
            assert str(actual) == str(expected)
        return expected
    assert not isinstance(actual, Exception), (expected, actual)
    assert actual.rows.schema.equals(expected.rows.schema)
    assert actual.rows.equals(expected.rows), _first_difference(expected.rows, actual.rows)
    assert actual.rejected_spans == expected.rejected_spans
    assert actual.rejection_reason == expected.rejection_reason
    return expected


def _first_difference(expected: pa.Table, actual: pa.Table) -> str:
    if expected.num_rows != actual.num_rows:
        return f"rows: {expected.num_rows} != {actual.num_rows}"
    for name in expected.column_names:
        want, got = expected.column(name).to_pylist(), actual.column(name).to_pylist()
        if want != got:
            return f"{name}: {want!r} != {got!r}"
    return "tables differ"


# ---- wire-format builders (for bodies protobuf's own serializer would never write) ----------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def ld(field: int, *payload: bytes) -> bytes:
    data = b"".join(payload)
    return tag(field, 2) + varint(len(data)) + data


def vi(field: int, value: int) -> bytes:
    return tag(field, 0) + varint(value)


def f64(field: int, value: int) -> bytes:
    return tag(field, 1) + struct.pack("<Q", value)


def f32(field: int, value: int) -> bytes:
    return tag(field, 5) + struct.pack("<I", value)


def group(field: int, *payload: bytes) -> bytes:
    return tag(field, 3) + b"".join(payload) + tag(field, 4)


TRACE = b"\x11" * 16
SPAN = b"\x22" * 8


def span_bytes(*fields: bytes, ids: bool = True) -> bytes:
    prefix = ld(1, TRACE) + ld(2, SPAN) if ids else b""
    return prefix + b"".join(fields)


def request_bytes(*spans: bytes, resource: bytes = b"", scope: bytes = b"") -> bytes:
    scope_spans = (ld(1, scope) if scope else b"") + b"".join(ld(2, s) for s in spans)
    resource_spans = (ld(1, resource) if resource else b"") + ld(2, scope_spans)
    return ld(1, resource_spans)


def kv(key: str, *value: bytes) -> bytes:
    return ld(1, key.encode()) + b"".join(ld(2, v) for v in value)


def sv(text: str | bytes) -> bytes:
    return ld(1, text.encode() if isinstance(text, str) else text)


# ---- (a) hand-built requests ----------------------------------------------------------------


def _full_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add(schema_url="https://schema/1")
    resource = resource_spans.resource
    resource.dropped_attributes_count = 3
    for key, value in (("service.name", "checkout"), ("host.name", "web-1"), ("zone", "eu")):
        resource.attributes.add(key=key).value.string_value = value
    ref = resource.entity_refs.add(type="service", schema_url="s")
    ref.id_keys.append("service.name")
    ref.description_keys.append("host.name")
    scope_spans = resource_spans.scope_spans.add(schema_url="https://schema/2")
    scope_spans.scope.name = "io.opentelemetry.http"
    scope_spans.scope.version = "1.2.3"
    scope_spans.scope.attributes.add(key="scope.attr").value.int_value = 1
    span = scope_spans.spans.add(
        trace_id=TRACE,
        span_id=SPAN,
        parent_span_id=b"\x33" * 8,
        trace_state="rojo=00f067aa0ba902b7",
        name="GET /orders/{id} «ü»",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_123_456_789,
        flags=0x301,
        dropped_attributes_count=1,
        dropped_events_count=2,
        dropped_links_count=3,
    )
    span.status.code = 2
    span.status.message = "boom <&>"
    _all_value_kinds(span.attributes)
    event = span.events.add(time_unix_nano=1_700_000_000_000_000_001, name="exception")
    event.attributes.add(key="exception.message").value.string_value = 'bad "thing"\n'
    event.attributes.add(key="exception.count").value.int_value = 2
    span.events.add(name="empty event")
    link = span.links.add(trace_id=b"\x44" * 16, span_id=b"\x55" * 8, trace_state="k=v", flags=1)
    link.attributes.add(key="link.kind").value.string_value = "follows"
    span.links.add()  # empty link ids are allowed
    return request


def _all_value_kinds(attributes) -> None:
    add = attributes.add
    add(key="string").value.string_value = "text with ünïcödé ✓ and \x00 nul"
    add(key="empty string").value.string_value = ""
    add(key="true").value.bool_value = True
    add(key="false").value.bool_value = False
    add(key="int").value.int_value = -9_223_372_036_854_775_808
    add(key="int max").value.int_value = 9_223_372_036_854_775_807
    add(key="zero").value.int_value = 0
    doubles = (0.0, -0.0, 1.0, 0.5, -1.5, 1e21, 1e-7, 1e-6, 123456789.25, 1e16, 5e-324)
    doubles += (1.7976931348623157e308, float("nan"), float("inf"), float("-inf"))
    doubles += (0.1 + 0.2, 1 / 3, 2.0**70)
    for index, number in enumerate(doubles):
        add(key=f"double {index}").value.double_value = number
    for size in range(6):
        add(key=f"bytes {size}").value.bytes_value = bytes(range(250, 250 + size))
    add(key="no value")
    add(key="empty value").value.SetInParent()
    array = add(key="array").value.array_value
    array.values.add().string_value = "<a & b>\u2028"
    array.values.add().int_value = 7
    array.values.add().double_value = float("nan")
    array.values.add().bytes_value = b"\x01\x02"
    array.values.add().array_value.values.add().bool_value = True
    array.values.add()
    kvlist = add(key="map").value.kvlist_value
    kvlist.values.add(key="b").value.string_value = "second"
    kvlist.values.add(key="a").value.double_value = 2.5
    kvlist.values.add(key="b").value.string_value = "last b"
    kvlist.values.add(key="n").value.kvlist_value.values.add(key="x").value.int_value = 1
    add(key="strindex").value.string_value_strindex = 3


@needs_extension
def test_every_field_and_value_kind():
    batch = assert_same(_full_request().SerializeToString())
    assert batch.accepted_spans == 1


@needs_extension
def test_empty_and_trivial_bodies():
    assert_same(b"")
    assert_same(ld(1, b""))
    assert_same(ld(1, ld(2, b"")))
    assert_same(request_bytes(b""))  # a span without ids is rejected


@needs_extension
def test_rejected_spans_are_counted_one_by_one():
    spans = [
        span_bytes(ld(5, b"ok")),
        span_bytes(ld(2, SPAN), ids=False),  # no trace id
        span_bytes(ld(1, bytes(16)), ld(2, SPAN), ids=False),  # zero trace id
        span_bytes(ld(1, TRACE), ids=False),  # no span id
        span_bytes(ld(1, TRACE), ld(2, bytes(8)), ids=False),  # zero span id
        span_bytes(ld(1, bytes(16)), ld(2, bytes(8)), ids=False),
        span_bytes(ld(5, b"ok too"), ld(11, ld(2, b"e")), ld(13, ld(1, TRACE))),
    ]
    batch = assert_same(request_bytes(*spans))
    assert (batch.accepted_spans, batch.rejected_spans) == (2, 5)
    assert_same(request_bytes(spans[3], spans[0]))
    assert_same(request_bytes(spans[1]))


@pytest.mark.parametrize(
    "fields",
    [
        (ld(1, b"\x01" * 15), ld(2, SPAN)),
        (ld(1, TRACE), ld(2, b"\x01" * 9)),
        (ld(1, TRACE), ld(2, SPAN), ld(4, b"\x01")),
        (ld(1, TRACE), ld(2, SPAN), ld(13, ld(1, TRACE)), ld(13, ld(1, b"\x01" * 17))),
        (ld(1, TRACE), ld(2, SPAN), ld(13, ld(2, b"\x01" * 4))),
        (ld(13, ld(2, b"\x01" * 4)), ld(1, b"\x01" * 3), ld(2, SPAN)),  # span ids checked first
        (ld(1, bytes(3)), ld(2, b"")),  # wrong length wins over rejection
        (ld(1, b""), ld(2, SPAN), ld(4, bytes(20))),
    ],
)
@needs_extension
def test_id_of_wrong_length_refuses_the_request(fields):
    named = ld(5, 'it\'s "quoted" ✓\n'.encode())
    body = request_bytes(span_bytes(ld(5, b"fine")), span_bytes(named, *fields, ids=False))
    assert isinstance(assert_same(body), InvalidSpans)
    # A malformed body is a DecodeError even when an id is wrong earlier on.
    assert isinstance(assert_same(body + b"\x0a\x05ab"), DecodeError)
    # The first wrong span is the one named.
    second = span_bytes(ld(5, b"second"), ld(1, b"\x01"), ids=False)
    first = span_bytes(named, *fields, ids=False)
    assert isinstance(assert_same(request_bytes(first, second)), InvalidSpans)


@needs_extension
def test_kind_status_and_duration_edges():
    spans = [
        span_bytes(vi(6, kind), ld(15, vi(3, code)), f64(7, start), f64(8, end))
        for kind, code, start, end in [
            (0, 0, 5, 10),
            (5, 2, 10, 5),  # end before start: Duration 0
            (6, 3, 7, 7),
            (-1, -1, 0, 2**63 - 1),
            (2**32 + 2, 2**32 + 1, 2**63 - 1, 2**64 - 1),  # int32 truncation, huge end is fine
            (100, 1000, 1, 0),
        ]
    ]
    assert_same(request_bytes(*spans))


@needs_extension
def test_times_past_int64_reject_the_span_as_in_the_reference():
    for body in (
        request_bytes(span_bytes(f64(7, 2**63))),
        request_bytes(span_bytes(ld(11, f64(1, 2**64 - 1)))),
    ):
        batch = assert_same(body)
        assert (batch.rejected_spans, batch.rows.num_rows) == (1, 0)
    # Spans rejected for their ids are not stored, so their times do not matter.
    assert_same(request_bytes(span_bytes(f64(7, 2**63), ids=False), span_bytes()))


@needs_extension
def test_service_name_and_repeated_keys():
    cases = [
        [kv("service.name", sv("a")), kv("x", sv("1")), kv("service.name", sv("b"))],
        [kv("service.name", vi(3, 42))],
        [kv("service.name", vi(2, 1))],
        [kv("service.name", ld(5, ld(1, sv("a"))))],
        [kv("service.name")],
        [kv("other", sv("x"))],
        [],
    ]
    for attributes in cases:
        resource = b"".join(ld(1, a) for a in attributes)
        assert_same(request_bytes(span_bytes(), resource=resource))
    repeated = [kv(f"k{i % 7}", sv(str(i))) for i in range(40)]  # more than the pairwise limit
    few = [
        kv("a", sv("1")),
        kv("b", sv("2")),
        kv("a", sv("3")),
        kv("c", sv("4")),
        kv("b", vi(3, 5)),
    ]
    for attributes in (repeated, few):
        span = span_bytes(
            *(ld(9, a) for a in attributes),
            ld(11, *(ld(3, a) for a in attributes)),
            ld(13, *(ld(4, a) for a in attributes)),
        )
        assert_same(request_bytes(span, resource=b"".join(ld(1, a) for a in attributes)))


@needs_extension
def test_repeated_and_split_fields_merge_as_protobuf_does():
    span = span_bytes(
        ld(5, b"first name"),
        ld(1, b"\x01" * 16),  # trace id given twice: the last wins
        vi(6, 3),
        ld(15, vi(3, 2), ld(2, b"first message")),
        ld(9, kv("k", sv("v"))),
        ld(11, ld(2, b"event")),
        ld(15, ld(2, b"second message")),  # status in two parts: merged
        ld(5, b"second name"),
        vi(6, 1),
        ld(9, kv("k2", sv("v2"))),
        ld(11, ld(2, b"e1"), ld(2, b"e2"), f64(1, 9), f64(1, 4)),
        ld(3, b"state1"),
        ld(3, b"state2"),
        ld(4, b"\x02" * 8),
        ld(4, b""),
    )
    values = [
        kv("two parts", sv("a"), vi(3, 5)),  # string then int: int
        kv("merged array", ld(5, ld(1, sv("a"))), ld(5, ld(1, vi(3, 1)))),
        kv("replaced array", ld(5, ld(1, sv("a"))), sv("s"), ld(5, ld(1, vi(2, 1)))),
        kv("map then string", ld(6, ld(1, kv("k", sv("v")))), sv("plain")),
        kv("string then map", sv("plain"), ld(6, ld(1, kv("k", sv("v"))))),
        kv("one message, many", sv("x") + vi(2, 1) + f64(4, 0x3FF0000000000000)),
        ld(1, b"ignored key") + kv("key twice", sv("v")),
    ]
    span_with_values = span_bytes(*(ld(9, v) for v in values))
    scope = ld(1, b"old") + ld(2, b"v1") + ld(1, b"new")
    # Resource and scope in several parts, and after the spans on the wire.
    resource_part = ld(1, kv("service.name", sv("svc"))), ld(1, kv("r", sv("1")))
    scope_spans = ld(2, span) + ld(1, scope) + ld(2, span_with_values) + ld(1, ld(2, b"v2"))
    resource_spans = ld(2, scope_spans) + ld(1, *resource_part) + ld(1, ld(1, kv("r", sv("2"))))
    body = ld(1, resource_spans) + ld(1, ld(2, ld(2, span)))
    assert_same(body)


def _array_bytes(*items: bytes) -> bytes:
    return ld(5, *(ld(1, item) for item in items))


def _map_bytes(*members: bytes) -> bytes:
    return ld(6, *(ld(1, member) for member in members))


@needs_extension
def test_array_and_map_values_in_every_place_and_order():
    """Array and map texts are made apart from the parse; they must land where they belong."""
    array = _array_bytes(sv("a"), vi(3, 1))
    mapping = _map_bytes(kv("k", sv("v")), kv("n", _array_bytes(sv("deep"))))
    resource = ld(1, kv("service.name", _array_bytes(sv("svc")))) + ld(1, kv("r.map", mapping))
    attributes = [
        kv("first", array),
        kv("plain", sv("x")),
        kv("first", mapping),  # repeated key: first position, last value
        kv("second", mapping, _array_bytes(sv("merged"))),
    ]
    span = span_bytes(
        *(ld(9, a) for a in attributes),
        ld(11, *(ld(3, a) for a in attributes)),
        ld(13, ld(4, kv("link.array", _array_bytes(vi(2, 1))))),
    )
    rejected = span_bytes(ld(9, kv("gone", array)), ids=False)
    bad_id = ld(1, b"\x01" * 3) + ld(2, SPAN) + ld(9, kv("gone", mapping))
    assert_same(request_bytes(span, rejected, span, resource=resource))
    assert_same(request_bytes(rejected, span, resource=resource))
    assert_same(request_bytes(span, bad_id, resource=resource))
    assert_same(request_bytes(span, resource=resource) + b"\x0f")  # malformed after values
    many = [kv(f"k{i}", _array_bytes(sv(str(i)))) for i in range(300)]
    assert_same(request_bytes(span_bytes(*(ld(9, a) for a in many))))


@needs_extension
def test_concurrent_decodes_give_the_sequential_results():
    """The parse runs without the GIL; threads decoding at once must not disturb each other."""
    bodies = [realistic_request(spans=200, seed=seed) for seed in range(4)]
    bodies.append(_full_request().SerializeToString())
    expected = [decode_protobuf_batch(body).rows for body in bodies]
    failures: list[str] = []

    def work(offset: int) -> None:
        for round_ in range(20):
            index = (offset + round_) % len(bodies)
            if not decode_protobuf_batch(bodies[index]).rows.equals(expected[index]):
                failures.append(f"body {index} in round {round_}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


@needs_extension
def test_other_threads_run_while_a_body_is_decoded():
    """With a long switch interval, another thread only runs if the decoder lets go of the GIL."""
    body = b"".join(realistic_request(spans=1000, seed=seed) for seed in range(8))
    extension = fast_decode._fastotlp  # the parse alone: Arrow may let go of the GIL itself
    stop = threading.Event()
    steps = [0]

    def count() -> None:
        while not stop.is_set():
            steps[0] += 1
            time.sleep(0)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    counter = threading.Thread(target=count)
    try:
        counter.start()
        progressed = False
        for _ in range(5):
            before = steps[0]
            extension.decode(body, fast_decode._format_any_value, DecodeError, InvalidSpans)
            if steps[0] != before:
                progressed = True
                break
    finally:
        stop.set()
        sys.setswitchinterval(previous)
        counter.join()
    assert progressed


@needs_extension
def test_unknown_fields_and_unexpected_wire_types_are_skipped():
    unknown = vi(99, 1) + f64(98, 2) + ld(97, b"\xff\xfe") + f32(96, 3) + group(95, vi(1, 1))
    unknown += group(94, group(2, ld(3, b"\xff")), vi(5, 1)) + tag(2**29 - 1, 0) + b"\x00"
    wrong_types = vi(1, 5) + f32(5, 1) + ld(6, b"x") + vi(7, 1) + ld(8, b"12345678") + vi(9, 1)
    wrong_types += group(15, vi(1, 1)) + group(9, vi(1, 1)) + vi(11, 3) + ld(16, b"")
    attr = kv("k", sv("v") + unknown + vi(1, 3) + ld(4, b"12345678") + ld(2, b"")) + unknown
    span = span_bytes(unknown, wrong_types, ld(9, attr), ld(11, unknown), ld(13, unknown))
    span += ld(15, unknown + vi(1, 1) + ld(3, b"x"))
    body = ld(1, unknown + ld(2, unknown + ld(2, span) + ld(1, unknown)) + ld(1, unknown))
    body += unknown + group(1, vi(1, 1))  # a known message field sent as a group
    assert_same(body)


MALFORMED = [
    b"\x00",  # field number 0
    b"\x08",  # varint missing
    b"\x0e",  # wire type 6
    b"\x0f",  # wire type 7
    b"\x0c",  # end group without a start
    b"\x13\x08\x01",  # group never ended
    b"\x13\x1c",  # group ended with another number
    b"\x0a\x05abc",  # length past the end
    b"\x0a\xff\xff\xff\xff\x0f",  # huge length
    b"\x11abc",  # fixed64 cut short
    b"\x15a",  # fixed32 cut short
    b"\x88\x80\x80\x80\x80\x00\x01",  # tag longer than five bytes
    b"\x88\x80\x80\x80\x70\x01",  # tag beyond 32 bits
    b"\x10" + b"\xff" * 10 + b"\x01",  # varint longer than ten bytes
    b"\x0a\x01\x0c",  # end group inside a message
    b"\x0a\x01\x13\x14",  # group crossing the end of a message
    b"\x80",  # tag cut short
]


@pytest.mark.parametrize("body", MALFORMED)
@needs_extension
def test_malformed_bodies_raise_decode_error(body):
    assert isinstance(assert_same(body), DecodeError)
    # The same bytes deep inside a span (not always damage there: both must agree).
    assert_same(request_bytes(span_bytes(ld(9, body))))
    assert_same(request_bytes(span_bytes(ld(11, body))))
    assert isinstance(assert_same(request_bytes(span_bytes()) + body), DecodeError)


BAD_UTF8 = [b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"a\xe2\x82", b"\x80"]


@pytest.mark.parametrize("bad", BAD_UTF8)
@needs_extension
def test_invalid_utf8_in_any_string_field_is_a_decode_error(bad):
    ok_attr = kv("k", sv("v"))
    places = [
        request_bytes(span_bytes(ld(5, bad))),
        request_bytes(span_bytes(ld(3, bad))),
        request_bytes(span_bytes(ld(9, kv("k", sv(bad))))),
        request_bytes(span_bytes(ld(9, ld(1, bad)))),
        request_bytes(span_bytes(ld(9, kv("k", ld(5, ld(1, ld(5, ld(1, sv(bad))))))))),
        request_bytes(span_bytes(ld(9, kv("k", ld(6, ld(1, ld(1, bad))))))),
        request_bytes(span_bytes(ld(11, ld(2, bad)))),
        request_bytes(span_bytes(ld(11, ld(3, kv("k", sv(bad)))))),
        request_bytes(span_bytes(ld(13, ld(3, bad)))),
        request_bytes(span_bytes(ld(13, ld(4, ld(1, bad))))),
        request_bytes(span_bytes(ld(15, ld(2, bad)))),
        request_bytes(span_bytes(), scope=ld(1, bad)),
        request_bytes(span_bytes(), scope=ld(2, bad)),
        request_bytes(span_bytes(), scope=ld(3, kv("k", sv(bad)))),
        request_bytes(span_bytes(), resource=ld(1, kv("service.name", sv(bad)))),
        request_bytes(span_bytes(), resource=ld(3, ld(3, bad))),
        ld(1, ld(3, bad)),  # ResourceSpans.schema_url
        ld(1, ld(2, ld(3, bad))),  # ScopeSpans.schema_url
        # Overwritten later, still refused.
        request_bytes(span_bytes(ld(5, bad), ld(5, b"fine"), ld(9, ok_attr))),
    ]
    for body in places:
        assert isinstance(assert_same(body), DecodeError), body
    # Bytes fields and unknown fields may hold anything.
    assert_same(request_bytes(span_bytes(ld(9, kv("k", ld(7, bad))), ld(77, bad))))


@needs_extension
def test_nesting_limit_matches_protobuf():
    def nested(depth: int, inner: bytes) -> bytes:
        value = inner
        for _ in range(depth):
            value = ld(5, ld(1, value))
        return value

    for depth in (46, 47, 48):
        for inner in (sv("x"), ld(5, b""), tag(9, 3) + tag(9, 4), group(9, group(9))):
            assert_same(request_bytes(span_bytes(ld(9, kv("deep", nested(depth, inner))))))
    for depth in (98, 99, 100, 101):
        assert_same(b"\x13" * depth + b"\x14" * depth)


@needs_extension
def test_doubles_in_bulk_match_format_double():
    rng = random.Random(7)
    numbers = [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(3000)]
    numbers += [2.0**e for e in range(-1074, 1024, 3)]
    numbers += [rng.random() * 10 ** rng.randrange(-25, 25) for _ in range(2000)]
    numbers += [float(rng.randrange(10 ** rng.randrange(1, 23))) for _ in range(1000)]
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=TRACE, span_id=SPAN)
    for index, number in enumerate(numbers):
        span.attributes.add(key=str(index)).value.double_value = number
    batch = assert_same(request.SerializeToString())
    stored = batch.rows.column("SpanAttributes")[0].as_py()
    assert [text for _, text in stored] == [format_double(n) for n in numbers]


@needs_extension
def test_short_decimal_doubles_and_their_neighbours_match_format_double():
    """Amounts such as 1234.25 take a shortcut in the extension; their neighbours do not."""
    rng = random.Random(11)
    numbers = [
        rng.randrange(1, 2 ** rng.randrange(1, 54)) / 10 ** rng.randrange(19) for _ in range(3000)
    ]
    numbers += [rng.randrange(1, 10**6) / 4 for _ in range(500)]
    numbers += [10.0**e for e in range(-25, 25)] + [2.0**50 - 1, 2.0**50, 2.0**50 + 2]
    numbers += [math.nextafter(n, direction) for n in numbers[:2000] for direction in (0, math.inf)]
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=TRACE, span_id=SPAN)
    for index, number in enumerate(numbers):
        span.attributes.add(key=str(index)).value.double_value = number
    batch = assert_same(request.SerializeToString())
    stored = batch.rows.column("SpanAttributes")[0].as_py()
    assert [text for _, text in stored] == [format_double(n) for n in numbers]


# ---- (b) the realistic request ----------------------------------------------------------------


def realistic_request(spans: int = 1000, seed: int = 1) -> bytes:
    """1000 spans with ids, 10 attributes (a third ints), an event every 10th, a link every 5th."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (("service.name", "checkout"), ("host.name", "web-1"), ("env", "prod")):
        resource_spans.resource.attributes.add(key=key).value.string_value = value
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "io.opentelemetry.http"
    scope_spans.scope.version = "1.2.3"
    for index in range(spans):
        start = 1_700_000_000_000_000_000 + index * 1000
        span = scope_spans.spans.add(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            parent_span_id=rng.randbytes(8),
            name=f"GET /api/orders/{index % 17}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=start + rng.randrange(10**7),
        )
        for number in range(10):
            attribute = span.attributes.add(key=f"attr.key.{number}")
            if number % 3 == 0:
                attribute.value.int_value = rng.randrange(-(10**9), 10**9)
            else:
                attribute.value.string_value = f"value-{rng.randrange(10**6)}"
        if index % 10 == 0:
            event = span.events.add(name="exception", time_unix_nano=start + 5)
            event.attributes.add(key="exception.message").value.string_value = "boom"
        if index % 5 == 0:
            span.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
        span.status.code = 1
    return request.SerializeToString()


@needs_extension
def test_realistic_request():
    batch = assert_same(realistic_request())
    assert batch.accepted_spans == 1000


def test_fallback_without_extension_is_the_reference(monkeypatch):
    body = realistic_request(spans=50)
    monkeypatch.setattr(fast_decode, "_fastotlp", None)
    assert decode_protobuf_batch(body).rows.equals(reference(body).rows)
    with pytest.raises(DecodeError):
        decode_protobuf_batch(b"\x0f")


# ---- (c) generated requests -------------------------------------------------------------------


def _ids(size: int):
    return st.one_of(
        st.binary(min_size=size, max_size=size),
        st.just(b""),
        st.just(bytes(size)),
        st.binary(max_size=size + 3).filter(lambda _: True),
    )


_texts = st.text(max_size=6)
_doubles = st.floats(allow_nan=True, allow_infinity=True)
_leaf_values = st.one_of(
    st.builds(lambda v: AnyValue(string_value=v), _texts),
    st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
    st.builds(lambda v: AnyValue(int_value=v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: AnyValue(double_value=v), _doubles),
    st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=7)),
    st.builds(lambda v: AnyValue(string_value_strindex=v), st.integers(-(2**31), 2**31 - 1)),
    st.just(AnyValue()),
)


def _array(items):
    value = AnyValue()
    value.array_value.values.extend(items)
    return value


def _kvlist(pairs):
    value = AnyValue()
    value.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in pairs)
    return value


_values = st.recursive(
    _leaf_values,
    lambda inner: st.one_of(
        st.builds(_array, st.lists(inner, max_size=3)),
        st.builds(_kvlist, st.lists(st.tuples(st.sampled_from("abc"), inner), max_size=3)),
    ),
    max_leaves=6,
)
_keys = st.sampled_from(["a", "b", "service.name", "ü"]) | _texts
_attributes = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), _keys, _values), max_size=4)
_times = st.integers(0, 2**63 - 1) | st.integers(0, 2**64 - 1)
_enums = st.integers(-3, 8) | st.integers(-(2**31), 2**31 - 1)


@st.composite
def _spans(draw):
    span = Span(
        trace_id=draw(_ids(16)),
        span_id=draw(_ids(8)),
        parent_span_id=draw(st.just(b"") | _ids(8)),
        trace_state=draw(_texts),
        name=draw(_texts),
        kind=draw(_enums),
        start_time_unix_nano=draw(_times),
        end_time_unix_nano=draw(_times),
    )
    span.attributes.extend(draw(_attributes))
    for _ in range(draw(st.integers(0, 2))):
        event = span.events.add(time_unix_nano=draw(_times), name=draw(_texts))
        event.attributes.extend(draw(_attributes))
    for _ in range(draw(st.integers(0, 2))):
        link = span.links.add(trace_id=draw(st.just(b"") | _ids(16)), span_id=draw(_ids(8)))
        link.trace_state = draw(_texts)
        link.attributes.extend(draw(_attributes))
    if draw(st.booleans()):
        span.status.code = draw(_enums)
        span.status.message = draw(_texts)
    return span


@st.composite
def requests(draw) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(draw(_attributes))
        for _ in range(draw(st.integers(0, 2))):
            scope_spans = resource_spans.scope_spans.add()
            if draw(st.booleans()):
                scope_spans.scope.name = draw(_texts)
                scope_spans.scope.version = draw(_texts)
            scope_spans.spans.extend(draw(st.lists(_spans(), max_size=3)))
    return request


_fast = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_extension
@_fast
@given(requests())
def test_generated_requests(request):
    assert_same(request.SerializeToString())


@needs_extension
@_fast
@given(st.lists(_doubles, min_size=1, max_size=20))
def test_generated_doubles(numbers):
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=TRACE, span_id=SPAN)
    for index, number in enumerate(numbers):
        span.attributes.add(key=str(index)).value.double_value = number
    assert_same(request.SerializeToString())


# ---- (d) fuzzing with damaged bytes -----------------------------------------------------------


@needs_extension
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes(body):
    assert_same(body)


_seed_body = _full_request().SerializeToString()


@needs_extension
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_bodies(data):
    body = bytearray(data.draw(st.sampled_from([_seed_body, realistic_request(spans=3)])))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["flip", "byte", "cut", "drop", "insert"]))
        if action == "flip":
            body[position] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "byte":
            body[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del body[position:]
        elif action == "drop":
            del body[position]
        else:
            body[position:position] = data.draw(st.binary(min_size=1, max_size=4))
        if not body:
            break
    assert_same(bytes(body))


@needs_extension
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.data())
def test_mutated_generated_requests(request, data):
    body = bytearray(request.SerializeToString())
    if body:
        for _ in range(data.draw(st.integers(1, 3))):
            body[data.draw(st.integers(0, len(body) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    assert_same(bytes(body))


@needs_extension
def test_every_single_bit_flip_of_a_small_body():
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=TRACE, span_id=SPAN)
    span.name = "n"
    span.attributes.add(key="k").value.array_value.values.add().string_value = "é"
    span.events.add(name="e").attributes.add(key="d").value.double_value = 0.25
    body = request.SerializeToString()
    for position in range(len(body)):
        for bit in range(8):
            damaged = bytearray(body)
            damaged[position] ^= 1 << bit
            assert_same(bytes(damaged))
