"""The JSON API on its own, for a process that holds the embedded store without a receiver.

``seamwatch up`` and ``seamwatch collector`` serve the API on the OTLP/HTTP port. ``seamwatch
detectors`` and ``seamwatch dashboard`` run alone have no receiver, yet hold the store as long
as they run, so they serve the same routes (``seamwatch.api.api_routes``) on a free loopback
port and publish the address in the data directory, where the CLI finds it and relays its
questions there.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware

from collector.http_protocol import bounded_head_protocol
from seamwatch.api import (
    ApiGuard,
    api_not_found,
    api_routes,
    method_not_allowed,
    publish_endpoint,
    withdraw_endpoint,
)
from seamwatch.settings import (
    DEFAULT_BODY_TIMEOUT_SECONDS,
    DEFAULT_HEADER_TIMEOUT_SECONDS,
    Settings,
)
from storage import Store

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_START_TIMEOUT_SECONDS = 15.0
_STOP_TIMEOUT_SECONDS = 15.0


class ApiServerError(RuntimeError):
    """The API could not start; the message says why."""


class ApiServer:
    """Serves the API over ``store`` on ``LOOPBACK`` and a port the system picks."""

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        token: str | None = None,
        *,
        body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
        header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS,
    ) -> None:
        """The limits are those of the receiver's port, which serves the same API: a request
        head must arrive within ``header_timeout_seconds``, each part of a body within
        ``body_timeout_seconds``."""
        self._data_dir = Path(data_dir)
        guard = Middleware(
            ApiGuard, token=token, loopback_only=True, body_timeout_seconds=body_timeout_seconds
        )
        app = Starlette(
            routes=api_routes(store),
            middleware=[guard],
            exception_handlers={404: api_not_found, 405: method_not_allowed},
        )
        config = uvicorn.Config(
            app,
            host=LOOPBACK,
            port=0,
            log_level="warning",
            lifespan="off",
            access_log=False,
            http=bounded_head_protocol(header_timeout_seconds),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="seamwatch-api", daemon=True)

    @property
    def endpoint(self) -> str:
        """The API's base URL (the routes are under ``/api/v1``)."""
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://{LOOPBACK}:{port}"

    def start(self) -> None:
        """Listen, then publish the address for the CLI."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ApiServerError(f"The JSON API could not start on {LOOPBACK}.")
            time.sleep(0.02)
        publish_endpoint(self._data_dir, self.endpoint)
        logger.info("JSON API for the CLI on %s/api/v1", self.endpoint)

    def stop(self) -> None:
        """Withdraw the address, then finish the requests in flight."""
        withdraw_endpoint(self._data_dir)
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(_STOP_TIMEOUT_SECONDS)


def serve_api(store: Store, settings: Settings) -> ApiServer | None:
    """Serve the API while this process holds the embedded store; None on a ClickHouse
    server, which every process opens itself."""
    if settings.uses_server:
        return None
    token = settings.auth_token.get_secret_value() if settings.auth_token else None
    api = ApiServer(
        store,
        settings.data_dir,
        token,
        body_timeout_seconds=settings.body_timeout_seconds,
        header_timeout_seconds=settings.header_timeout_seconds,
    )
    api.start()
    return api
