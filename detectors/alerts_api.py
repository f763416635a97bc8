"""The alert routes of the JSON API (``/api/v1/alerts`` and ``/api/v1/silences``).

Reads are ``GET``; acknowledging and silencing are ``POST`` with a JSON body, so that the CLI
can change alerts while ``seamwatch up`` holds the embedded store. Tiers come from the severity
file of the serving process (``SEAMWATCH_SEVERITY_FILE`` or the built-in one).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from detectors.alert_actions import (
    STATES,
    AlertActionError,
    acknowledge,
    active_silences,
    add_silence,
    cancel_silence,
    list_alerts,
)
from detectors.severity import SeverityFileError, load_severity
from seamwatch.api import API_PREFIX, bad_request
from storage import Store, StoreError


def routes(store: Store) -> list[BaseRoute]:
    """The alert routes over ``store``."""

    async def alerts(request: Request) -> Response:
        state = request.query_params.get("state", "open")
        if state not in STATES:
            return bad_request(f"state must be one of {', '.join(STATES)}, got {state!r}")
        return await _answer(lambda: {"alerts": list_alerts(store, load_severity(), state)})

    async def silences(request: Request) -> Response:
        return await _answer(lambda: {"silences": active_silences(store)})

    async def ack(request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, Response):
            return body
        alert_id = request.path_params["alert_id"]
        by, note = str(body.get("by") or "someone"), str(body.get("note") or "")
        return await _answer(lambda: acknowledge(store, alert_id, by, note))

    async def silence(request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, Response):
            return body
        try:
            seconds = float(body.get("seconds", 0))
        except (TypeError, ValueError):
            return bad_request(f"seconds must be a number, got {body.get('seconds')!r}")
        fields = [str(body.get(name) or "*") for name in ("flow", "target", "kind")]
        reason, by = str(body.get("reason") or ""), str(body.get("by") or "")
        return await _answer(
            lambda: add_silence(store, timedelta(seconds=seconds), *fields, reason, by)
        )

    async def unsilence(request: Request) -> Response:
        silence_id = request.path_params["silence_id"]

        def cancel() -> dict[str, str]:
            cancel_silence(store, silence_id)
            return {"silence_id": silence_id}

        return await _answer(cancel)

    return [
        Route(f"{API_PREFIX}/alerts", alerts, methods=["GET"]),
        Route(f"{API_PREFIX}/alerts/{{alert_id}}/ack", ack, methods=["POST"]),
        Route(f"{API_PREFIX}/silences", silences, methods=["GET"]),
        Route(f"{API_PREFIX}/silences", silence, methods=["POST"]),
        Route(f"{API_PREFIX}/silences/{{silence_id}}/cancel", unsilence, methods=["POST"]),
    ]


async def _body(request: Request) -> dict[str, Any] | Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        return bad_request(f"the body must be a JSON object: {exc}")
    if not isinstance(body, dict):
        return bad_request("the body must be a JSON object")
    return body


async def _answer(work: Any) -> Response:
    try:
        return JSONResponse(await run_in_threadpool(work))
    except (AlertActionError, SeverityFileError) as exc:
        return bad_request(str(exc))
    except StoreError as exc:
        return JSONResponse({"error": f"store error: {exc}"}, status_code=503)
