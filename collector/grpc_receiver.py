"""The OTLP/gRPC trace receiver: ``TraceService/Export`` on the same ingest path as HTTP.

Refusals use the status codes the OTLP specification gives for gRPC: INVALID_ARGUMENT for a
malformed request, UNAUTHENTICATED without the bearer token, and UNAVAILABLE or
RESOURCE_EXHAUSTED with a ``google.rpc.RetryInfo`` detail when the store cannot take the spans
now, so that exporters retry after the delay instead of dropping the batch.
"""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.pipeline import IngestError, IngestPipeline, Refusal, export_response

logger = logging.getLogger(__name__)

_EXPORT_METHOD = "Export"
_SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"
_DEFAULT_MAX_WORKERS = 16

_GRPC_CODES = {
    Refusal.MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.UNSUPPORTED: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.METHOD: grpc.StatusCode.UNIMPLEMENTED,
    Refusal.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Refusal.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    Refusal.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Refusal.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Refusal.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


class GrpcBindError(RuntimeError):
    """The gRPC receiver could not listen on its address."""


def create_grpc_server(
    pipeline: IngestPipeline,
    *,
    host: str,
    port: int,
    max_request_bytes: int,
    max_workers: int = _DEFAULT_MAX_WORKERS,
) -> tuple[grpc.Server, int]:
    """A started-to-be gRPC server for TraceService/Export, and the port it is bound to."""

    def export(body: bytes, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        metadata = {key: value for key, value in context.invocation_metadata()}
        try:
            pipeline.authenticate(metadata.get("authorization"))
            batch = pipeline.decode(body, json=False)
            stored = pipeline.submit(batch)
            futures.wait([stored])
            pipeline.outcome(stored, batch, "grpc")
        except IngestError as error:
            _abort(context, error)
        return export_response(batch)

    handler = grpc.method_handlers_generic_handler(
        _SERVICE_NAME,
        {
            _EXPORT_METHOD: grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=None,  # raw bytes: the pipeline decodes them
                response_serializer=ExportTraceServiceResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="seamwatch-grpc"),
        handlers=[handler],
        options=[
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound_port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise GrpcBindError(_bind_message(address)) from exc
    if bound_port == 0:
        raise GrpcBindError(_bind_message(address))
    return server, bound_port


def _bind_message(address: str) -> str:
    return (
        f"The OTLP/gRPC receiver could not listen on {address}: the port is taken by another "
        "process or the host is not an address of this machine. Choose another port with "
        "--otlp-grpc-port / SEAMWATCH_OTLP_GRPC_PORT or check --otlp-grpc-host / "
        "SEAMWATCH_OTLP_GRPC_HOST."
    )


def _abort(context: grpc.ServicerContext, error: IngestError) -> None:
    code = _GRPC_CODES[error.kind]
    if error.retry_after_seconds:
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=error.retry_after_seconds)
        )
        detail = any_pb2.Any()
        detail.Pack(retry)
        status = status_pb2.Status(code=code.value[0], message=error.message, details=[detail])
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(code, error.message)
