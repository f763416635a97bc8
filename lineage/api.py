"""Read-only JSON routes of lineage, flow health, the flow map, reconciliation and KPIs.

Registered in seamwatch.api_routes; docs/api.md documents every route and its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lineage.flows import flow_health, flow_map
from lineage.kpis import kpis
from lineage.lookup import LineageQuery, LineageQueryError, lineage
from lineage.reconcile import (
    DEFAULT_TARGET,
    KINDS,
    ReconcileError,
    Window,
    reconcile,
    recorded_exceptions,
)
from seamwatch.api import API_PREFIX, bad_request, query_problem, store_failed
from seamwatch.times import supported_time_or_ago, utc_text
from seamwatch.user_text import TextProblem, check_length, is_whole_number, quoted
from storage import Store, StoreError

DEFAULT_HEALTH_WINDOW = timedelta(hours=1)
MAX_EXCEPTIONS = 5000


class _BadQuery(ValueError):
    """A query parameter cannot be used; answered with 400."""


def routes(store: Store) -> list[BaseRoute]:
    """The routes of this feature over ``store``."""

    def get(path: str, handler: Callable[[Store, Request], Any]) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                document = await asyncio.to_thread(handler, store, request)
            except (_BadQuery, LineageQueryError, ReconcileError) as exc:
                return bad_request(str(exc))
            except StoreError as exc:  # no traceback: a 503 while the store is down, else 400/500
                return store_failed(exc)
            return JSONResponse(document)

        return Route(f"{API_PREFIX}{path}", endpoint, methods=["GET"])

    return [
        get("/lineage", _lineage),
        get("/flows", _flows),
        get("/flow-map", _flow_map),
        get("/reconciliation", _reconciliation),
        get("/exceptions", _exceptions),
        get("/kpis", _kpis),
    ]


def _lineage(store: Store, request: Request) -> dict[str, Any]:
    params = request.query_params
    _only(params, {"key", "correlation_id", "trace_id"})
    query = LineageQuery(
        key=params.get("key"),
        correlation_id=params.get("correlation_id"),
        trace_id=params.get("trace_id"),
    )
    return lineage(store, query)


def _flows(store: Store, request: Request) -> dict[str, Any]:
    _only(request.query_params, {"since", "until"})
    start, end = _health_window(request)
    frame = flow_health(store, start, end)
    return {"since": utc_text(start), "until": utc_text(end), "flows": _records(frame)}


def _flow_map(store: Store, request: Request) -> dict[str, Any]:
    _only(request.query_params, {"since", "until", "flow"})
    start, end = _health_window(request)
    frame = flow_map(store, start, end, _name(request.query_params.get("flow"), "flow"))
    return {"since": utc_text(start), "until": utc_text(end), "edges": _records(frame)}


def _reconciliation(store: Store, request: Request) -> dict[str, Any]:
    params = request.query_params
    _only(params, {"since", "until", "target"})
    return reconcile(
        store,
        _time(params.get("since"), "since"),
        _time(params.get("until"), "until"),
        _name(params.get("target", DEFAULT_TARGET), "target"),
    )


def _exceptions(store: Store, request: Request) -> dict[str, Any]:
    params = request.query_params
    _only(params, {"kind", "limit"})
    kind = params.get("kind")
    if kind is not None and kind not in KINDS:
        raise _BadQuery(f"kind {quoted(kind)} is not one of {', '.join(KINDS)}.")
    limit = _integer(params.get("limit", "1000"), "limit", 1, MAX_EXCEPTIONS)
    frame = recorded_exceptions(store, kind, limit)
    return {"exceptions": _records(frame)}


def _kpis(store: Store, request: Request) -> dict[str, Any]:
    params = request.query_params
    _only(params, {"since", "until", "target"})
    return kpis(
        store,
        _time(params.get("since"), "since"),
        _time(params.get("until"), "until"),
        _name(params.get("target", DEFAULT_TARGET), "target"),
    )


def _name(value: str | None, field: str) -> str | None:
    """A flow or target name, at most as long as any key (its echo in the answer included)."""
    if value is None:
        return None
    try:
        return check_length(field, value)
    except TextProblem as exc:
        raise _BadQuery(f"{exc}.") from None


def _only(params: Any, allowed: set[str]) -> None:
    problem = query_problem(params, allowed)
    if problem:
        raise _BadQuery(problem)


def _time(text: str | None, name: str) -> datetime | None:
    """A time parameter: ISO-8601, or a duration before now (``15m``) as the CLI takes it."""
    if text is None:
        return None
    try:
        return supported_time_or_ago(text, name)
    except ValueError as exc:
        raise _BadQuery(str(exc)) from None


def _health_window(request: Request) -> tuple[datetime, datetime]:
    params = request.query_params
    try:
        window = Window.ending(
            _time(params.get("since"), "since"), _time(params.get("until"), "until")
        )
    except ReconcileError as exc:
        raise _BadQuery(str(exc)) from None
    if "since" not in params:
        return window.until - DEFAULT_HEALTH_WINDOW, window.until
    return window.since, window.until


def _integer(text: str, name: str, low: int, high: int) -> int:
    """A whole-number parameter from ``low`` to ``high``; one message for any other text
    (``-1`` is a whole number, but not one of those), as the delivery log's ``limit``."""
    if not (is_whole_number(text) and low <= int(text) <= high):
        raise _BadQuery(f"{name} {quoted(text)} is not a whole number from {low} to {high}.")
    return int(text)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready records: times as ISO-8601 UTC, missing values as null."""
    records = []
    for row in frame.to_dict("records"):
        records.append({name: _plain(value) for name, value in row.items()})
    return records


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime):
        return utc_text(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and pd.isna(value):
        return None
    if value is pd.NaT or value is None:
        return None
    return value
