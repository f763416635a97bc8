"""The JSON API of a running Seamwatch process, under ``/api/v1``: reads of lineage,
reconciliation, KPIs and alerts, and the changes people make to alerts (acknowledge, silence,
cancel a silence).

It is served on the OTLP/HTTP port beside ``/v1/traces``, so one address answers both, and by
``seamwatch detectors`` on a loopback port of its own (``seamwatch.api_server``). Each feature
contributes its routes through ``API_ROUTE_FACTORIES``: a function that takes the store and
returns Starlette routes. The CLI uses the same API when the embedded store is held by a
running process (chDB lets only one process open it); that process publishes its address in
the data directory.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seamwatch.api_body import BodyRefused, BoundedBody, api_body_limits
from seamwatch.settings import DEFAULT_BODY_TIMEOUT_SECONDS
from seamwatch.user_text import quoted, quoted_as_written
from storage import BadValue, Store, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
ENDPOINT_FILE_NAME = "api-endpoint"
# A healthy process answers the CLI's questions in well under a second; one that is stopped
# (SIGSTOP) or stuck still accepts the connection, so only a read timeout notices it.
ANSWER_TIMEOUT_SECONDS = 10.0

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
    # a set: a path served by two routes (GET and POST /silences) is listed once
    paths = sorted(
        {route.path for route in request.app.routes if route.path.startswith(API_PREFIX + "/")}
    )
    return JSONResponse({"endpoints": paths})


def bearer_matches(authorization: str | None, token: str | None) -> bool:
    """Whether an Authorization value carries ``token`` (always, when no token is set)."""
    if not token:
        return True
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    given = f"Bearer {credentials.strip()}".encode() if scheme.lower() == "bearer" else b""
    return hmac.compare_digest(given, f"Bearer {token}".encode())


BEARER_REFUSAL = "Missing or wrong bearer token; send 'Authorization: Bearer <token>'."


# methods that change something; a browser sends these cross-site without asking first when
# their body is form data or text
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = frozenset({"localhost", "::1"})


class ApiGuard:
    """Guards the JSON API (``/api/``): the configured bearer token when one is set, and
    requests that a web page could have made.

    A page the operator has open may send a POST to a loopback address: it is refused when it
    names another origin (``Origin``), and a change must come as ``application/json``, which
    a page cannot send to another origin without the browser asking first. With
    ``loopback_only`` (the API listens on a loopback address), a request must also address
    the API by a loopback name or address, so a page whose domain is made to resolve to
    127.0.0.1 (DNS rebinding) cannot read or change the alerts either.

    A request body is limited in size and in the time it takes to arrive
    (``seamwatch.api_body``), on every route under ``/api/``.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        loopback_only: bool = False,
        body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
    ) -> None:
        self._app = app
        self._token = token
        self._loopback_only = loopback_only
        self._body_limits = api_body_limits(body_timeout_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self._app(scope, receive, send)
            return
        response = self._refusal(scope)
        if response is None:
            response = await self._within_body_limits(scope, receive, send)
        if response is not None:
            await response(scope, receive, send)

    async def _within_body_limits(
        self, scope: Scope, receive: Receive, send: Send
    ) -> Response | None:
        """Run the API with its body limits (``seamwatch.api_body``); the refusal to send
        when the body broke one."""
        body = BoundedBody(receive, self._body_limits)
        answered = False

        async def sending(message: Message) -> None:
            nonlocal answered
            answered = True
            await send(message)

        try:
            await self._app(scope, body.receive, sending)
        except BodyRefused as refused:
            if answered:  # the routes read their body before answering: not seen in practice
                raise
            return refused.response
        return None

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self._loopback_only and not is_loopback_host(host):
            message = (
                f"This API listens on a loopback address and answers requests addressed to "
                f"one (127.0.0.1, ::1 or localhost), not to {quoted(host)}."
            )
            return JSONResponse({"error": message}, 403)
        if scope["method"] in _CHANGES:
            refusal = _cross_site_refusal(scope, headers, host)
            if refusal is not None:
                return refusal
        if not bearer_matches(headers.get("authorization"), self._token):
            return JSONResponse(
                {"error": BEARER_REFUSAL}, 401, headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            self._body_limits.check_declared(headers)
        except BodyRefused as refused:
            return refused.response
        routes = getattr(scope.get("app"), "routes", ())  # to name the parameter of a path
        problem = path_encoding_problem(scope.get("raw_path"), routes)
        problem = problem or query_encoding_problem(scope.get("query_string", b""))
        return bad_request(problem) if problem else None


def _cross_site_refusal(scope: Scope, headers: Headers, host: str) -> Response | None:
    """403 for a change sent from a page of another origin, 415 for a body not sent as JSON
    (a request without a body has nothing to label)."""
    origin = headers.get("origin")
    if origin is not None and origin.rstrip("/").lower() != f"{scope['scheme']}://{host}".lower():
        message = (
            f"Changes from a web page of another origin ({quoted(origin)}) are refused; "
            "acknowledge and silence alerts with 'seamwatch alerts ack' and 'seamwatch alerts "
            "silence', or from a script, which sends no Origin header."
        )
        return JSONResponse({"error": message}, 403)
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if media_type not in ("application/json", "") or (not media_type and has_body):
        given = f"Content-Type {quoted(media_type)}" if media_type else "no Content-Type"
        message = f"Send the body as JSON with Content-Type: application/json (got {given})."
        return JSONResponse({"error": message}, 415)
    return None


def query_encoding_problem(query_string: bytes) -> str | None:
    """What is not UTF-8 text in a raw query string (``key=%ff``), naming the parameter, or
    None. Starlette would read such bytes as U+FFFD and look up a key no one gave."""
    for field in query_string.split(b"&"):
        raw_name, _, raw_value = field.partition(b"=")
        name, name_is_text = _percent_decoded(raw_name)
        if not name_is_text:
            return (
                f"A query parameter name ({quoted_as_written(name)}) is not UTF-8 text; "
                "percent-encode names and values as UTF-8."
            )
        value, value_is_text = _percent_decoded(raw_value)
        if not value_is_text:
            return (
                f"Query parameter {quoted(name)} is not UTF-8 text "
                f"(got {quoted_as_written(value)}); percent-encode its value as UTF-8."
            )
    return None


def path_encoding_problem(raw_path: bytes | None, routes: Iterable[BaseRoute]) -> str | None:
    """What is not UTF-8 text in a raw URL path (``/alerts/%ff/ack``), naming the path
    parameter of ``routes`` it stands in, or None. Servers read such bytes as U+FFFD, so an
    id no one gave would be looked up and reported unknown."""
    segments = [_percent_decoded(raw, in_query=False) for raw in (raw_path or b"").split(b"/")]
    at = next((index for index, (_, is_text) in enumerate(segments) if not is_text), None)
    if at is None:
        return None
    shown = [text for text, _ in segments]
    name = _path_parameter(routes, "/".join(shown), sum(len(text) + 1 for text in shown[:at]))
    if name is None:
        return (
            f"A path segment ({quoted_as_written(shown[at])}) is not UTF-8 text; "
            "percent-encode the path as UTF-8."
        )
    return (
        f"Path segment {{{name}}} is not UTF-8 text (got {quoted_as_written(shown[at])}); "
        "percent-encode it as UTF-8."
    )


def _path_parameter(routes: Iterable[BaseRoute], path: str, offset: int) -> str | None:
    """The name of the parameter of the first of ``routes`` matching ``path`` that holds the
    character at ``offset``, or None."""
    for route in routes:
        match = route.path_regex.match(path) if isinstance(route, Route) else None
        for name in match.groupdict() if match else ():
            if match.start(name) <= offset < match.end(name):
                return name
    return None


def _percent_decoded(raw: bytes, *, in_query: bool = True) -> tuple[str, bool]:
    """``raw`` percent-decoded, and whether it is UTF-8; bytes that are not are shown as
    ``\\xff``. A ``+`` is a space in a query only."""
    decoded = unquote_to_bytes(raw.replace(b"+", b" ") if in_query else raw)
    try:
        return decoded.decode(), True
    except UnicodeDecodeError:
        return decoded.decode(errors="backslashreplace"), False


def is_loopback_host(host: str) -> bool:
    """Whether a Host header value (``name``, ``name:port``, ``[v6]:port``) names loopback."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """A JSON 405 naming every method the path takes (Starlette's own answer is plain text
    and names the first route of the path only)."""
    methods = ", ".join(_allowed_methods(request))
    message = f"{request.method} is not allowed on {request.url.path}; use {methods}."
    return JSONResponse({"error": message}, 405, headers={"Allow": methods})


async def api_not_found(request: Request, exc: Exception) -> Response:
    """A JSON 404 for a path the API does not have, pointing to the index of its routes."""
    message = f"No such path: {request.url.path}. GET {API_PREFIX} lists the API's routes."
    return JSONResponse({"error": message}, 404)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the routes of the request's path take (several routes may share a path)."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] == Match.PARTIAL:
            methods |= route.methods or set()
    return sorted(methods - {"HEAD"})


def query_problem(params: Any, allowed: set[str]) -> str | None:
    """What is wrong with a request's query parameters, or None: a name the route does not
    take, or one given twice (``state=open&state=all`` would otherwise mean the last one)."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "no query parameters"
        return f"Unknown query parameter {quoted(unknown[0])}; this route takes {takes}."
    repeated = sorted(name for name in set(params) if len(params.getlist(name)) > 1)
    if repeated:
        return f"Query parameter {quoted(repeated[0])} is given more than once; give it once."
    return None


def bad_request(message: str) -> JSONResponse:
    """A 400 answer naming what is wrong with the query."""
    return JSONResponse({"error": message}, status_code=400)


def store_failed(exc: StoreError) -> JSONResponse:
    """The answer for a request the store could not serve: 503 (try again later) only while
    the store is down; 400 when a value of the request cannot be read, 500 for any other
    refusal, which the same request would meet again."""
    if isinstance(exc, BadValue):
        return bad_request(f"{exc}.")
    status = 503 if isinstance(exc, StoreUnavailable) else 500
    return JSONResponse({"error": f"store error: {exc}"}, status_code=status)


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
    endpoint: str,
    path: str,
    params: dict[str, Any] | None = None,
    token: str | None = None,
    *,
    holder: str = "unknown",
    timeout_seconds: float = ANSWER_TIMEOUT_SECONDS,
) -> Any:
    """GET ``API_PREFIX + path`` from a running process and return the decoded JSON.

    ``holder`` is the pid of that process, named in the error when it does not answer."""
    query = {key: value for key, value in (params or {}).items() if value is not None}
    return _call(endpoint, "GET", path, token, holder, timeout_seconds, params=query)


def post_json(
    endpoint: str,
    path: str,
    body: dict[str, Any],
    token: str | None = None,
    *,
    holder: str = "unknown",
    timeout_seconds: float = ANSWER_TIMEOUT_SECONDS,
) -> Any:
    """POST ``body`` as JSON to ``API_PREFIX + path`` of a running process; return its JSON."""
    return _call(endpoint, "POST", path, token, holder, timeout_seconds, json=body)


def _call(
    endpoint: str,
    method: str,
    path: str,
    token: str | None,
    holder: str,
    timeout_seconds: float,
    **request: Any,
) -> Any:
    url = f"{endpoint}{API_PREFIX}{path}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url, headers=headers, timeout=timeout_seconds, **request)
    except httpx.TimeoutException as exc:
        raise ApiError(_no_answer(endpoint, holder, timeout_seconds, method)) from exc
    except httpx.HTTPError as exc:
        raise ApiError(_unreachable(endpoint, holder, exc)) from exc
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


def _no_answer(endpoint: str, holder: str, timeout_seconds: float, method: str) -> str:
    # a stopped process takes the request in once it runs again: repeating a change blindly
    # would then make it twice (two silences where one was meant)
    repeat = (
        "then check whether the change was made before trying again"
        if method == "POST"
        else "then try again"
    )
    return (
        f"The Seamwatch process that holds the store (pid {holder}, API at {endpoint}) did not "
        f"answer within {timeout_seconds:g} s. Check that it is running and not stopped or "
        f"overloaded (ps -o pid,stat,args -p {holder}), or restart it, {repeat}."
    )


def _unreachable(endpoint: str, holder: str, exc: httpx.HTTPError) -> str:
    return (
        f"The Seamwatch process that holds the store (pid {holder}) cannot be reached at "
        f"{endpoint}: {exc}. If it is starting or stopping, try again in a moment; "
        "otherwise restart it."
    )
