"""Spans sent by the real OpenTelemetry Python SDK, read back from the store exactly."""

from __future__ import annotations

import base64

import pytest
from opentelemetry.exporter.otlp.json.http.trace_exporter import (
    OTLPSpanExporter as JsonSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as ProtobufSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, set_span_in_context

START_NS = 1_764_000_000_123_456_789
SPAN_ATTRIBUTES = {
    "integration.flow": "order-to-cash.order-submit",
    "business.key": "SO-10492",
    "business.amount": 12500.5,
    "http.response.status_code": 503,
    "integration.replay": True,
    "tags": ["a", "b"],
    "big": 9_007_199_254_740_993,
}
EXPECTED_SPAN_ATTRIBUTES = {
    "integration.flow": "order-to-cash.order-submit",
    "business.key": "SO-10492",
    "business.amount": "12500.5",
    "http.response.status_code": "503",
    "integration.replay": "true",
    "tags": '["a","b"]',
    "big": "9007199254740993",
}


def emit_order_trace(exporter) -> list[ReadableSpan]:
    """Two spans of an order posting, one linked and failed; returns them as the SDK saw them."""
    recorded = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "erp", "deployment.environment": "test"})
    )
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("seamwatch.tests", "1.2.3")

    producer = tracer.start_span("publish order.accepted", kind=SpanKind.PRODUCER)
    producer.end()
    link = Link(producer.get_span_context(), {"link.kind": "follows"})
    parent = tracer.start_span("POST /sales-orders", kind=SpanKind.SERVER, start_time=START_NS)
    child = tracer.start_span(
        "erp.post SalesOrder",
        context=set_span_in_context(parent),
        kind=SpanKind.CLIENT,
        links=[link],
        attributes=SPAN_ATTRIBUTES,
        start_time=START_NS + 1_000,
    )
    child.add_event("retry", {"attempt": 2}, timestamp=START_NS + 2_000)
    child.set_status(Status(StatusCode.ERROR, "ERP rejected: customer not active"))
    child.end(end_time=START_NS + 5_001_000)
    parent.end(end_time=START_NS + 9_000_000)
    provider.shutdown()
    return list(recorded.get_finished_spans())


@pytest.mark.parametrize(
    "make_exporter",
    [
        pytest.param(lambda url: ProtobufSpanExporter(endpoint=url), id="protobuf"),
        pytest.param(lambda url: JsonSpanExporter(endpoint=url), id="json"),
    ],
)
def test_sdk_spans_are_stored_exactly(running_collector, store, make_exporter):
    spans = emit_order_trace(make_exporter(f"{running_collector.endpoint}/v1/traces"))
    child = next(span for span in spans if span.name == "erp.post SalesOrder")
    parent = next(span for span in spans if span.name == "POST /sales-orders")
    producer = next(span for span in spans if span.kind == SpanKind.PRODUCER)
    trace_id = format(child.context.trace_id, "032x")

    frame = store.query_df(
        f"""
        SELECT SpanName, SpanId, ParentSpanId, SpanKind, ServiceName, ScopeName, ScopeVersion,
               toUnixTimestamp64Nano(Timestamp) AS start_ns, Duration, StatusCode, StatusMessage,
               ResourceAttributes, SpanAttributes, Events.Name AS event_names,
               arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_ns,
               Events.Attributes AS event_attributes, Links.TraceId AS link_traces,
               Links.SpanId AS link_spans, Links.Attributes AS link_attributes
        FROM {store.table("otel_traces")} WHERE TraceId = {{t:String}} ORDER BY start_ns
        """,
        {"t": trace_id},
    )
    assert list(frame["SpanName"]) == ["POST /sales-orders", "erp.post SalesOrder"]
    stored_parent, stored_child = (frame.iloc[i] for i in range(2))

    assert stored_parent["SpanId"] == format(parent.context.span_id, "016x")
    assert stored_parent["ParentSpanId"] == ""
    assert stored_parent["SpanKind"] == "Server"
    assert int(stored_parent["start_ns"]) == START_NS
    assert int(stored_parent["Duration"]) == 9_000_000
    assert stored_parent["StatusCode"] == "Unset"

    assert stored_child["SpanId"] == format(child.context.span_id, "016x")
    assert stored_child["ParentSpanId"] == stored_parent["SpanId"]
    assert stored_child["SpanKind"] == "Client"
    assert stored_child["ServiceName"] == "erp"
    assert (stored_child["ScopeName"], stored_child["ScopeVersion"]) == ("seamwatch.tests", "1.2.3")
    assert int(stored_child["start_ns"]) == START_NS + 1_000
    assert int(stored_child["Duration"]) == 5_000_000
    assert stored_child["StatusCode"] == "Error"
    assert stored_child["StatusMessage"] == "ERP rejected: customer not active"
    assert stored_child["ResourceAttributes"]["service.name"] == "erp"
    assert stored_child["ResourceAttributes"]["deployment.environment"] == "test"
    assert stored_child["SpanAttributes"] == EXPECTED_SPAN_ATTRIBUTES
    assert list(stored_child["event_names"]) == ["retry"]
    assert [int(ns) for ns in stored_child["event_ns"]] == [START_NS + 2_000]
    assert list(stored_child["event_attributes"]) == [{"attempt": "2"}]
    assert list(stored_child["link_traces"]) == [format(producer.context.trace_id, "032x")]
    assert list(stored_child["link_spans"]) == [format(producer.context.span_id, "016x")]
    assert list(stored_child["link_attributes"]) == [{"link.kind": "follows"}]


def test_bytes_values_are_base64(running_collector, store):
    """A bytes attribute arrives through protobuf and is stored as base64."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes(range(1, 17)), bytes(range(1, 9)), "bytes"
    attribute = span.attributes.add()
    attribute.key, attribute.value.bytes_value = "payload", b"\x00\xffSO"

    import httpx

    response = httpx.post(
        f"{running_collector.endpoint}/v1/traces",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    rows = store.query_rows(f"SELECT SpanAttributes['payload'] FROM {store.table('otel_traces')}")
    assert rows == [(base64.b64encode(b"\x00\xffSO").decode(),)]
