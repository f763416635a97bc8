"""OTLP/gRPC: the real SDK exporter, refusals with the codes the specification gives."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from collector.service import Collector
from tests.collector.test_store_outage import FlakyStore


def grpc_target(collector: Collector) -> str:
    return f"127.0.0.1:{collector.grpc_port}"


def test_sdk_grpc_exporter_spans_are_stored(running_collector, store):
    exporter = OTLPSpanExporter(endpoint=grpc_target(running_collector), insecure=True)
    provider = TracerProvider(resource=Resource.create({"service.name": "billing"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    span = tracer.start_span("post invoice", kind=SpanKind.CLIENT, start_time=1_000_000_000)
    span.set_attribute("business.key", "INV-7")
    span.end(end_time=1_250_000_000)
    provider.shutdown()

    rows = store.query_rows(
        f"SELECT ServiceName, SpanName, SpanKind, Duration, SpanAttributes['business.key'], "
        f"TraceId FROM {store.table('otel_traces')}"
    )
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert rows == [("billing", "post invoice", "Client", 250_000_000, "INV-7", trace_id)]


def export(target: str, request: bytes, metadata: tuple = ()) -> tuple:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
        )
        return call.with_call(request, metadata=metadata, timeout=10)


def test_malformed_request_is_invalid_argument(running_collector, store):
    with pytest.raises(grpc.RpcError) as raised:
        export(grpc_target(running_collector), b"\x0a\xff\xff")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_partial_success_counts_rejected_spans(running_collector, store):
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = spans.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="good")
    spans.add(trace_id=bytes(16), span_id=bytes(range(1, 9)), name="zero trace")
    response, _ = export(grpc_target(running_collector), request.SerializeToString())
    assert response.partial_success.rejected_spans == 1
    assert store.query_rows(f"SELECT SpanName FROM {store.table('otel_traces')}") == [(good.name,)]


def test_store_outage_is_unavailable_with_retry_info(store, collector_settings):
    collector_settings.retry_after_seconds = 7
    service = Collector(FlakyStore(store), collector_settings)
    service.start()
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="x"
    )
    try:
        with pytest.raises(grpc.RpcError) as raised:
            export(grpc_target(service), request.SerializeToString())
    finally:
        service.stop()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    trailing = dict(raised.value.trailing_metadata())
    status = status_pb2.Status.FromString(trailing["grpc-status-details-bin"])
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 7


def test_stub_from_generated_service_works(running_collector):
    with grpc.insecure_channel(grpc_target(running_collector)) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        answer = stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=10)
    assert not answer.HasField("partial_success")
