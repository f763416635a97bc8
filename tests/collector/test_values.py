"""Attribute values in the one string form the ClickHouse exporter stores."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from collector.spans import any_value_to_string, format_double


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (1e20, "100000000000000000000"),
        (123456789.125, "123456789.125"),
        (0.000001, "0.000001"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Inf"),
    ],
)
def test_doubles_in_shortest_form(value, text):
    assert format_double(value) == text


def test_integers_keep_full_64_bit_precision():
    assert any_value_to_string(AnyValue(int_value=-(2**63))) == "-9223372036854775808"
    assert any_value_to_string(AnyValue(int_value=2**63 - 1)) == "9223372036854775807"


def test_nested_values_are_compact_json_with_sorted_keys():
    inner = KeyValueList(
        values=[
            KeyValue(key="z", value=AnyValue(double_value=2.0)),
            KeyValue(key="a", value=AnyValue(string_value="<&>")),
            KeyValue(key="b", value=AnyValue(bool_value=False)),
        ]
    )
    array = ArrayValue(
        values=[AnyValue(int_value=1), AnyValue(kvlist_value=inner), AnyValue(bytes_value=b"\x01")]
    )
    assert (
        any_value_to_string(AnyValue(array_value=array))
        == '[1,{"a":"\\u003c\\u0026\\u003e","b":false,"z":2},"AQ=="]'
    )


def test_empty_value_is_empty_string():
    assert any_value_to_string(AnyValue()) == ""
    assert any_value_to_string(AnyValue(bool_value=True)) == "true"


def test_times_past_the_datetime64_range_reject_the_span_not_the_request():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from collector.fast_decode import decode_protobuf_batch

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, start_time_unix_nano=2**63, name="late")
    late_event = spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="late event")
    late_event.events.add(time_unix_nano=2**64 - 1)
    spans.add(trace_id=b"\x01" * 16, span_id=b"\x03" * 8, start_time_unix_nano=5, name="ok")

    batch = decode_protobuf_batch(request.SerializeToString())
    assert batch.rejected_spans == 2
    assert "2262" in batch.rejection_reason
    assert batch.rows.column("SpanName").to_pylist() == ["ok"]
