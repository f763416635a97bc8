"""The read-only JSON API of a running Seamwatch process, under ``/api/v1``.

It is served on the OTLP/HTTP port beside ``/v1/traces``, so one address answers both. Each
feature contributes its routes through ``API_ROUTE_FACTORIES``: a function that takes the store
and returns Starlette routes. The CLI uses the same API when the embedded store is held by a
running ``seamwatch up`` (chDB lets only one process open it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from storage import Store

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
ENDPOINT_FILE_NAME = "api-endpoint"
_CLIENT_TIMEOUT_SECONDS = 60.0

RouteFactory = Callable[[Store], list[BaseRoute]]

# Features append their factories here at import time of seamwatch.api_routes.
API_ROUTE_FACTORIES: list[RouteFactory] = []


class ApiError(Exception):
    """A request to the running process failed; the message says why."""


class ApiRefused(ApiError):
    """The running process answered and refused the request (bad input, unknown id)."""


def api_routes(store: Store) -> list[BaseRoute]:
    """Every route of the API, over ``store``."""
    import seamwatch.api_routes  # noqa: F401 - registers the features' factories

    routes: list[BaseRoute] = [Route(f"{API_PREFIX}", _index, methods=["GET"])]
    for factory in API_ROUTE_FACTORIES:
        routes.extend(factory(store))
    return routes


async def _index(request: Request) -> Response:
    paths = sorted(
        route.path for route in request.app.routes if route.path.startswith(API_PREFIX + "/")
    )
    return JSONResponse({"endpoints": paths})


def bad_request(message: str) -> JSONResponse:
    """A 400 answer naming what is wrong with the query."""
    return JSONResponse({"error": message}, status_code=400)


def publish_endpoint(data_dir: Path, endpoint: str) -> Path:
    """Tell other processes where this one's API answers (the store's directory is locked)."""
    path = Path(data_dir) / ENDPOINT_FILE_NAME
    path.write_text(endpoint)
    return path


def withdraw_endpoint(data_dir: Path) -> None:
    """Remove the note written by ``publish_endpoint``."""
    (Path(data_dir) / ENDPOINT_FILE_NAME).unlink(missing_ok=True)


def running_endpoint(data_dir: Path) -> str | None:
    """The API base URL of the process holding ``data_dir``, if it published one."""
    path = Path(data_dir) / ENDPOINT_FILE_NAME
    return path.read_text().strip() if path.exists() else None


def get_json(
    endpoint: str, path: str, params: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    """GET ``API_PREFIX + path`` from a running process and return the decoded JSON."""
    query = {key: value for key, value in (params or {}).items() if value is not None}
    return _call(endpoint, "GET", path, token, params=query)


def post_json(endpoint: str, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    """POST ``body`` as JSON to ``API_PREFIX + path`` of a running process; return its JSON."""
    return _call(endpoint, "POST", path, token, json=body)


def _call(endpoint: str, method: str, path: str, token: str | None, **request: Any) -> Any:
    url = f"{endpoint}{API_PREFIX}{path}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(
            method, url, headers=headers, timeout=_CLIENT_TIMEOUT_SECONDS, **request
        )
    except httpx.HTTPError as exc:
        raise ApiError(f"The running Seamwatch at {endpoint} did not answer: {exc}") from exc
    try:
        document = response.json()
    except json.JSONDecodeError as exc:
        raise ApiError(f"{url} answered {response.status_code} without JSON.") from exc
    if response.status_code != 200:
        message = document.get("error") if isinstance(document, dict) else None
        if response.status_code == 401:
            message = (
                f"The running Seamwatch at {endpoint} asks for its API token: set "
                "SEAMWATCH_AUTH_TOKEN to the token it was started with."
            )
        raise ApiRefused(message or f"{url} answered {response.status_code}")
    return document
