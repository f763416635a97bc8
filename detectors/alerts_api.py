"""The alert routes of the JSON API (``/api/v1/alerts`` and ``/api/v1/silences``).

Reads are ``GET``; acknowledging and silencing are ``POST`` with a JSON body, so that the CLI
can change alerts while ``seamwatch up`` holds the embedded store. Tiers come from the severity
file in force in the serving process (``SEAMWATCH_SEVERITY_FILE`` or the built-in one; after a
change that does not validate, its last good version). As on every
route, an unknown query parameter or body field is refused with 400, and times are UTC with
a ``Z`` (docs/api.md). A change the alert's or silence's state does not allow (acknowledging a
resolved alert or one someone else holds, ending a silence that has ended) gets 409.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from detectors.alert_actions import (
    LONGEST_SILENCE,
    STATES,
    AlertActionError,
    Conflict,
    UnknownId,
    acknowledge,
    active_silences,
    add_silence,
    api_times,
    cancel_silence,
    list_alerts,
)
from detectors.severity import Severity, SeverityFileError, severity_in_force
from seamwatch.api import API_PREFIX, bad_request, query_problem, store_failed
from seamwatch.user_text import quoted, shortened
from storage import Store, StoreError

ACK_FIELDS = ("by", "note", "take_over")
SILENCE_FIELDS = ("seconds", "flow", "target", "kind", "all", "reason", "by")
PATTERN_FIELDS = ("flow", "target", "kind")


class BadBody(ValueError):
    """A request body or query cannot be used; answered with 400 and this message."""


def alerts_document(
    store: Store, severity: Severity, state: str, refused: str | None = None
) -> dict[str, Any]:
    """The answer of ``GET /alerts``; the CLI prints the same document.

    ``severity`` says which file, and which version of it, ranked the alerts; ``refused`` why
    the file as it is now is not the one in force, if it is not."""
    return {
        "alerts": [api_times(alert) for alert in list_alerts(store, severity, state)],
        "severity": api_times(
            {"file": severity.source, "modified_at": severity.modified_at, "refused": refused}
        ),
    }


def ranked_alerts_document(store: Store, state: str) -> dict[str, Any]:
    """:func:`alerts_document` ranked with the severity in force in this process."""
    source = severity_in_force()
    severity = source.current()
    return alerts_document(store, severity, state, source.refused)


def silences_document(store: Store) -> dict[str, Any]:
    """The answer of ``GET /silences``; the CLI prints the same document."""
    return {"silences": [api_times(silence) for silence in active_silences(store)]}


def routes(store: Store) -> list[BaseRoute]:
    """The alert routes over ``store``."""

    async def alerts(request: Request) -> Response:
        _only(request, {"state"})
        state = request.query_params.get("state", "open")
        if state not in STATES:
            raise BadBody(f"state must be one of {', '.join(STATES)}, got {quoted(state)}")
        return await _answer(lambda: ranked_alerts_document(store, state))

    async def silences(request: Request) -> Response:
        _only(request, set())
        return await _answer(lambda: silences_document(store))

    async def ack(request: Request) -> Response:
        body = await _body(request, ACK_FIELDS)
        alert_id = request.path_params["alert_id"]
        by = _text(body, "by", "someone", required=True)
        note = _text(body, "note", "")
        take_over = _flag(body, "take_over")
        return await _answer(
            lambda: api_times(acknowledge(store, alert_id, by, note, take_over=take_over))
        )

    async def silence(request: Request) -> Response:
        body = await _body(request, SILENCE_FIELDS)
        length = _silence_length(body)
        patterns = [_text(body, name, "*", required=True) for name in PATTERN_FIELDS]
        reason, by = _text(body, "reason", ""), _text(body, "by", "someone", required=True)
        everything = _flag(body, "all")
        return await _answer(
            lambda: add_silence(store, length, *patterns, reason, by, everything=everything)
        )

    async def unsilence(request: Request) -> Response:
        await _body(request, ())
        silence_id = request.path_params["silence_id"]
        return await _answer(lambda: cancel_silence(store, silence_id))

    def route(path: str, endpoint: Any, method: str) -> Route:
        async def refusing(request: Request) -> Response:
            try:
                return await endpoint(request)
            except BadBody as exc:
                return bad_request(str(exc))

        return Route(f"{API_PREFIX}{path}", refusing, methods=[method])

    return [
        route("/alerts", alerts, "GET"),
        route("/alerts/{alert_id}/ack", ack, "POST"),
        route("/silences", silences, "GET"),
        route("/silences", silence, "POST"),
        route("/silences/{silence_id}/cancel", unsilence, "POST"),
    ]


def _silence_length(body: dict[str, Any]) -> timedelta:
    """The body's ``seconds``: a finite number above 0 and at most a year."""
    longest = int(LONGEST_SILENCE.total_seconds())
    allowed = f"a number of seconds above 0 and at most {longest} ({LONGEST_SILENCE.days} days)"
    if "seconds" not in body:
        raise BadBody(f"seconds is missing: how long the silence lasts, {allowed}")
    value = body["seconds"]
    # bool is an int to Python, but true is no length of time
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or not 0 < value <= longest:
        raise BadBody(f"seconds must be {allowed}, got {_json_quoted(value)}")
    return timedelta(seconds=value)


def _text(body: dict[str, Any], name: str, absent: str, *, required: bool = False) -> str:
    """Field ``name`` of ``body``: ``absent`` when left out; else a string, non-empty if
    ``required`` (an empty pattern must not turn into "match everything")."""
    if name not in body:
        return absent
    value = body[name]
    if not isinstance(value, str) or (required and not value):
        kind = "a non-empty string" if required else "a string"
        hint = f"; leave it out for {absent!r}" if required else ""
        raise BadBody(f"{name} must be {kind}{hint}, got {_json_quoted(value)}")
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    """Field ``name`` of ``body``: false when left out, else it must be true or false."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadBody(f"{name} must be true or false, got {_json_quoted(value)}")
    return value


def _json_quoted(value: Any) -> str:
    """A value of the body as JSON writes it, cut short as errors quote values."""
    text = json.dumps(value)
    return shortened(text, keep_end=text[-1] if text[-1] in '"]}' else "")


def _only(request: Request, allowed: set[str]) -> None:
    problem = query_problem(request.query_params, allowed)
    if problem:
        raise BadBody(problem)


async def _body(request: Request, fields: Iterable[str]) -> dict[str, Any]:
    _only(request, set())
    _check_body_encoding(request)
    try:
        body = json.loads(await request.body() or b"{}", object_pairs_hook=_unique_fields)
    except UnicodeDecodeError:
        raise BadBody("the body is not UTF-8 text; send JSON encoded as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadBody(f"the body must be a JSON object: {exc}") from None
    except RecursionError:
        raise BadBody("the body is nested too deeply; send a flat JSON object") from None
    if not isinstance(body, dict):
        raise BadBody("the body must be a JSON object")
    if _holds_lone_surrogate(body):
        raise BadBody(
            "the body holds a \\u escape of a lone surrogate, which is not text; "
            "send each character whole (as UTF-8, or as a surrogate pair)"
        )
    known = tuple(fields)
    unknown = sorted(set(body) - set(known))
    if unknown:
        takes = ", ".join(known) or "no fields"
        raise BadBody(f"Unknown field {quoted(unknown[0])} in the body; this route takes {takes}.")
    return body


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose every field is given once: with ``{"by": "a", "by": "b"}`` the last
    would win unseen, and a script sending both meant one of them."""
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            raise BadBody(f"the body gives field {quoted(name)} more than once; give it once")
        fields[name] = value
    return fields


def _check_body_encoding(request: Request) -> None:
    """Refuse a compressed body or a declared charset other than UTF-8: either would be read
    as UTF-8 JSON and fail, or be stored as other text than was sent."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BadBody(f"Content-Encoding {quoted(encoding)} is not taken; send the body as is")
    _, _, parameters = request.headers.get("content-type", "").partition(";")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise BadBody(f"the body must be UTF-8 JSON, got charset {quoted(charset)}")


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds, in a key or a string, a lone surrogate."""
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, dict):
        return any(_holds_lone_surrogate(k) or _holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_lone_surrogate(item) for item in value)
    return False


async def _answer(work: Any) -> Response:
    try:
        return JSONResponse(await run_in_threadpool(work))
    except UnknownId as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    except Conflict as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    except (AlertActionError, SeverityFileError) as exc:
        return bad_request(str(exc))
    except StoreError as exc:
        return store_failed(exc)
