"""The collector role: the OTLP/HTTP receiver and its span writer, started and stopped together."""

from __future__ import annotations

import logging
import threading

import uvicorn

from collector.http_receiver import create_app
from collector.writer import SpanWriter
from seamwatch.settings import Settings
from storage import Store

logger = logging.getLogger(__name__)

_START_TIMEOUT_SECONDS = 15.0


class ReceiverStartError(RuntimeError):
    """The receiver could not listen (port taken, address not available)."""


class Collector:
    """Receives OTLP over HTTP and writes the spans to ``store``, in background threads."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.writer = SpanWriter(
            store,
            batch_max_spans=settings.batch_max_spans,
            flush_interval_millis=settings.batch_flush_interval_millis,
            max_queue_spans=settings.max_queue_spans,
            retry_after_seconds=settings.retry_after_seconds,
        )
        self.app = create_app(self.writer, max_request_bytes=settings.max_request_bytes)
        config = uvicorn.Config(
            self.app,
            host=settings.otlp_http_host,
            port=settings.otlp_http_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="seamwatch-otlp-http", daemon=True
        )
        self._host = settings.otlp_http_host

    @property
    def port(self) -> int:
        """The port the receiver listens on (useful when the setting was 0)."""
        sockets = self._server.servers[0].sockets
        return sockets[0].getsockname()[1]

    @property
    def endpoint(self) -> str:
        """Base URL of the OTLP/HTTP receiver; traces go to ``endpoint + '/v1/traces'``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Start listening; raise ReceiverStartError if the address cannot be bound."""
        self._thread.start()
        waited = 0.0
        while not self._server.started:
            if not self._thread.is_alive():
                self.writer.shutdown()
                raise ReceiverStartError(
                    f"The OTLP/HTTP receiver could not listen on {self._host}:"
                    f"{self._server.config.port}; is another process using the port? "
                    "Choose another with --otlp-http-port or SEAMWATCH_OTLP_HTTP_PORT."
                )
            threading.Event().wait(0.05)
            waited += 0.05
            if waited > _START_TIMEOUT_SECONDS:
                raise ReceiverStartError("The OTLP/HTTP receiver did not start in time.")
        logger.info("OTLP/HTTP receiver listening on %s/v1/traces", self.endpoint)

    def stop(self) -> None:
        """Stop taking requests, finish those in flight, then store everything queued."""
        self._server.should_exit = True
        self._thread.join(_START_TIMEOUT_SECONDS)
        self.writer.shutdown()
        logger.info("Collector stopped after storing %d spans", self.writer.stats.inserted_spans)
