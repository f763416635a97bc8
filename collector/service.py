"""The collector role: OTLP/HTTP and OTLP/gRPC receivers over one span writer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import uvicorn
from starlette.routing import BaseRoute

from collector.grpc_receiver import GrpcBindError, create_grpc_server
from collector.http_protocol import bounded_head_protocol
from collector.http_receiver import create_app
from collector.late_spans import JudgedUntil
from collector.metrics import CollectorMetrics
from collector.pipeline import IngestPipeline
from collector.redaction import RedactionPolicy
from collector.spool import Spool
from collector.writer import SpanWriter, count_spans
from seamwatch import runtime
from seamwatch.api import is_loopback_host
from seamwatch.settings import Settings
from storage import Store, StoreUnavailable

logger = logging.getLogger(__name__)

SPOOL_DIR_NAME = "spool"
_START_TIMEOUT_SECONDS = 15.0
_GRPC_GRACE_SECONDS = 10.0
# longest wait, before detectors of this process judge minutes, for what was acknowledged to
# be stored: inserts take milliseconds, unless the store is down (then they judge without)
_JUDGING_WAIT_SECONDS = 5.0


class ReceiverStartError(RuntimeError):
    """A receiver could not listen (port taken, address not available)."""


class Collector:
    """Receives OTLP over HTTP and gRPC and writes the spans to ``store``, in background threads."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        extra_routes: Sequence[BaseRoute] = (),
        *,
        store_down: StoreUnavailable | None = None,
    ) -> None:
        """``store_down``: why ``store`` could not be opened yet (a ClickHouse server that does
        not answer); the receivers then start in an outage, see ``SpanWriter``."""
        self.metrics = CollectorMetrics()
        self.writer = SpanWriter(
            store,
            Spool(
                settings.spool_dir or settings.data_dir / SPOOL_DIR_NAME,
                fsync=settings.spool_fsync,
                store=settings.store_identity(),
            ),
            batch_max_spans=settings.batch_max_spans,
            flush_interval_millis=settings.batch_flush_interval_millis,
            max_queue_spans=settings.max_queue_spans,
            retry_after_seconds=settings.retry_after_seconds,
            metrics=self.metrics,
            store_down=store_down,
        )
        token = settings.auth_token.get_secret_value() if settings.auth_token else None
        self.judged_until = JudgedUntil(store)
        self.pipeline = IngestPipeline(
            self.writer,
            self.metrics,
            RedactionPolicy.from_settings(settings),
            token,
            evaluation_delay=settings.evaluation_delay,
            judged_until=self.judged_until,
        )
        self._settings = settings
        self.app = create_app(
            self.pipeline,
            max_request_bytes=settings.max_request_bytes,
            max_concurrent_requests=settings.max_concurrent_requests,
            body_timeout_seconds=settings.body_timeout_seconds,
            extra_routes=extra_routes,
            loopback_only=is_loopback_host(settings.otlp_http_host),
        )
        config = uvicorn.Config(
            self.app,
            host=settings.otlp_http_host,
            port=settings.otlp_http_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            http=bounded_head_protocol(settings.header_timeout_seconds),
        )
        self._http = uvicorn.Server(config)
        self._http_thread = threading.Thread(
            target=self._http.run, name="seamwatch-otlp-http", daemon=True
        )
        self._grpc = None
        self.grpc_port: int | None = None
        self._stopped = False
        self._forget_judging: Callable[[], None] = lambda: None

    @property
    def port(self) -> int:
        """The port the HTTP receiver listens on (useful when the setting was 0)."""
        return self._http.servers[0].sockets[0].getsockname()[1]

    @property
    def endpoint(self) -> str:
        """Base URL of the OTLP/HTTP receiver; traces go to ``endpoint + '/v1/traces'``."""
        return f"http://{_host_for_url(self._settings.otlp_http_host)}:{self.port}"

    @property
    def grpc_endpoint(self) -> str | None:
        """Address of the OTLP/gRPC receiver, or None when it is off."""
        if self.grpc_port is None:
            return None
        return f"http://{_host_for_url(self._settings.otlp_grpc_host)}:{self.grpc_port}"

    def start(self) -> None:
        """Start listening on both protocols; raise ReceiverStartError if one cannot bind."""
        try:
            self._start_grpc()
            self._start_http()
        except ReceiverStartError:
            self.stop()
            raise
        self.pipeline.late_spans.start()
        self._forget_judging = runtime.before_judging(self._before_judging)
        logger.info("OTLP/HTTP receiver listening on %s/v1/traces", self.endpoint)
        if self.grpc_endpoint:
            logger.info("OTLP/gRPC receiver listening on %s", self.grpc_endpoint)

    def wait_until_stored(self, timeout_seconds: float = 30.0) -> bool:
        """Wait until the store holds every span acknowledged so far; False on timeout."""
        return self.writer.wait_until_stored(timeout_seconds)

    def _before_judging(self, until: datetime) -> None:
        """Detectors of this process are about to judge the minutes before ``until``: from
        now on their spans are late, and those acknowledged already are stored first, so
        the detectors read them (a spool moments ahead of the store would hide them)."""
        self.judged_until.note(until)
        if not self.writer.store_acknowledged(_JUDGING_WAIT_SECONDS):
            logger.debug("Spans acknowledged before an evaluation were not all stored in time")

    def stop(self) -> None:
        """Stop taking requests, finish those in flight, then store everything queued.

        With the store down, queued spans stay in the spool for the next start instead.
        """
        if self._stopped:
            return
        self._stopped = True
        self._forget_judging()
        if self._grpc is not None:
            self._grpc.stop(_GRPC_GRACE_SECONDS).wait()
        self._http.should_exit = True
        if self._http_thread.is_alive():
            self._http_thread.join(_START_TIMEOUT_SECONDS)
        self.pipeline.late_spans.stop()  # once no request is in flight: says what is left
        self.writer.shutdown()
        logger.info(
            "Collector stopped after storing %s", count_spans(self.writer.stats.inserted_spans)
        )

    def _start_grpc(self) -> None:
        if self._settings.otlp_grpc_port < 0:
            return
        try:
            self._grpc, self.grpc_port = create_grpc_server(
                self.pipeline,
                host=self._settings.otlp_grpc_host,
                port=self._settings.otlp_grpc_port,
                max_request_bytes=self._settings.max_request_bytes,
            )
        except GrpcBindError as exc:
            raise ReceiverStartError(str(exc)) from exc
        self._grpc.start()

    def _start_http(self) -> None:
        self._http_thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not self._http.started:
            if not self._http_thread.is_alive():
                raise ReceiverStartError(
                    f"The OTLP/HTTP receiver could not listen on {self._settings.otlp_http_host}:"
                    f"{self._settings.otlp_http_port}: the port is taken by another process or "
                    "the host is not an address of this machine. Choose another port with "
                    "--otlp-http-port / SEAMWATCH_OTLP_HTTP_PORT or check --otlp-http-host / "
                    "SEAMWATCH_OTLP_HTTP_HOST."
                )
            if time.monotonic() > deadline:
                raise ReceiverStartError("The OTLP/HTTP receiver did not start in time.")
            time.sleep(0.02)


def _host_for_url(host: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"[{shown}]" if ":" in shown else shown
