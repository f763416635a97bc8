"""OTLP/JSON trace requests decoded into the protobuf message.

OTLP/JSON differs from the generic protobuf JSON mapping in ways that ``json_format`` alone gets
wrong: trace and span ids are hex strings (the generic mapping would read them as base64 and
quietly yield ids of the wrong length), and an unknown enum name would be dropped silently
instead of refused. This module rewrites ids to the generic form and checks enum names first,
then lets ``json_format`` do the rest: lowerCamelCase or snake_case keys, 64-bit integers as
strings or numbers, enums as names or numbers, unknown fields ignored. What it refuses is
named by its JSON path and the type the field takes (``collector.otlp_json_errors``). Two
kinds of value ``json_format`` would store as something else than was sent are refused
first: a ``bytesValue`` that is not base64, and a ``doubleValue`` string that is not a finite
number in JSON's syntax or one of "NaN", "Infinity", "-Infinity".

A body of OTLP metrics or logs (an exporter of another signal pointed at ``/v1/traces``) is
all unknown fields, so it decodes as an empty request; ``JsonExport.other_signal`` says which
signal it held, so that the client and the log can be told rather than nothing stored silently.

See https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.otlp_json_errors import DOUBLE_EXPECTED, TOO_DEEP, as_json, explain_refusal


class InvalidRequest(ValueError):
    """The request body cannot be decoded; the message names the field and the value."""


_TRACE_ID_BYTES = 16
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_SPAN_ID_BYTES = 8

_SPAN_KIND_NAMES = frozenset(trace_pb2.Span.SpanKind.keys())
_STATUS_CODE_NAMES = frozenset(trace_pb2.Status.StatusCode.keys())
# proto3 JSON names the doubles a JSON number cannot hold; nothing else spells them.
_SPECIAL_DOUBLES = frozenset({"NaN", "Infinity", "-Infinity"})
# A number in JSON's own syntax: what proto3 JSON allows inside a string for a double.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# A string given for a double; only then are the doubles walked, as with bytesValue.
# a doubleValue json_format would not judge as sent: a string, or true/false (read as 1 or 0)
_QUOTED_DOUBLE = re.compile(r'"double(?:Value|_value)"\s*:\s*(?:"|true|false)')
# The top-level key of each other signal's export request, in both spellings OTLP/JSON allows.
OTHER_SIGNAL_KEYS = {
    "metrics": ("resourceMetrics", "resource_metrics"),
    "logs": ("resourceLogs", "resource_logs"),
}


@dataclass(frozen=True)
class JsonExport:
    """A decoded OTLP/JSON trace request, and the signal its body holds instead of spans, if
    any: ``"metrics"`` or ``"logs"`` (a key of ``OTHER_SIGNAL_KEYS``), else None."""

    request: ExportTraceServiceRequest
    other_signal: str | None = None


def decode_json_export(body: bytes) -> JsonExport:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest``; raise InvalidRequest if malformed.

    A string holding bytes that are not valid UTF-8 is refused, naming its field, as the
    protobuf encoding refuses it: replacing them would store text the client never sent.
    """
    try:
        # undecodable bytes become lone surrogates, which json_format refuses in a string
        return _decode(body.decode("utf-8", errors="surrogateescape"))
    except RecursionError:
        raise InvalidRequest(TOO_DEEP) from None


def _other_signal(document: dict[str, Any]) -> str | None:
    """The other signal a body without ``resourceSpans`` holds, if it holds one."""
    if "resourceSpans" in document or "resource_spans" in document:
        return None
    for signal, keys in OTHER_SIGNAL_KEYS.items():
        if any(key in document for key in keys):
            return signal
    return None


def _decode(text: str) -> JsonExport:
    try:
        document = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"Body is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(document, dict):
        raise InvalidRequest("Body must be a JSON object with a 'resourceSpans' array.")
    for path, span in _spans(document):
        _rewrite_span(path, span)
    if "bytesValue" in text or "bytes_value" in text:  # rare: only then walk every value
        _check_values(document, "$", ("bytesValue", "bytes_value"), _bytes_problem)
    if _QUOTED_DOUBLE.search(text):
        _check_values(document, "$", ("doubleValue", "double_value"), _double_problem)
    try:
        request = json_format.ParseDict(
            document, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except json_format.ParseError as exc:
        message = explain_refusal(document, ExportTraceServiceRequest.DESCRIPTOR, exc)
        raise InvalidRequest(message) from exc
    return JsonExport(request, _other_signal(document))


def _get(mapping: dict[str, Any], camel: str, snake: str) -> tuple[str | None, Any]:
    """The key present (camelCase preferred) and its value, or (None, None)."""
    if camel in mapping:
        return camel, mapping[camel]
    if snake in mapping:
        return snake, mapping[snake]
    return None, None


def _items(mapping: Any, camel: str, snake: str, path: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(mapping, dict):
        return
    key, value = _get(mapping, camel, snake)
    if value is None:
        return
    if not isinstance(value, list):
        raise InvalidRequest(f"{path}.{key} must be an array, not {as_json(value)}.")
    for index, item in enumerate(value):
        yield f"{path}.{key}[{index}]", item


def _spans(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for rs_path, resource_spans in _items(document, "resourceSpans", "resource_spans", "$"):
        for ss_path, scope_spans in _items(resource_spans, "scopeSpans", "scope_spans", rs_path):
            for path, span in _items(scope_spans, "spans", "spans", ss_path):
                if not isinstance(span, dict):
                    raise InvalidRequest(f"{path} must be an object.")
                yield path, span


def _check_values(
    node: Any, path: str, keys: tuple[str, str], problem: Callable[[Any], str | None]
) -> None:
    """Refuse a value under one of ``keys`` that json_format would store as something else
    than was sent; ``problem`` says what is wrong with a value, or None."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _check_values(item, f"{path}[{index}]", keys, problem)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in keys:
            found = problem(value)
            if found is not None:
                raise InvalidRequest(f"{path}.{key}: {as_json(value)} {found}")
        else:
            _check_values(value, f"{path}.{key}", keys, problem)


def _bytes_problem(value: Any) -> str | None:
    """json_format would store a bytesValue that is not base64 as empty bytes."""
    return None if _is_base64(value) else "is not base64; OTLP/JSON bytes are base64 text."


def _double_problem(value: Any) -> str | None:
    """What is wrong with a doubleValue given as a string, which json_format reads with
    Python's float(): that also takes "inf", "1_0" or " 1.5 ", and makes "1e400" infinity.

    Policy, as for a JSON number (json_format refuses 1e400, which JSON reading made
    infinity): a double is finite unless it is named by one of proto3 JSON's special strings,
    "NaN", "Infinity" or "-Infinity"; a string otherwise holds a number in JSON's syntax.
    """
    if isinstance(value, bool):
        return f"is not {DOUBLE_EXPECTED}."  # json_format would store true as 1.0
    if not isinstance(value, str) or value in _SPECIAL_DOUBLES:
        return None  # json_format judges other non-strings itself
    if _JSON_NUMBER.fullmatch(value) is None:
        return f"is not {DOUBLE_EXPECTED}."
    if not math.isfinite(float(value)):
        return f"is out of range for a double; it must be {DOUBLE_EXPECTED}."
    return None


def _is_base64(value: Any) -> bool:
    """Standard or URL-safe base64, with or without padding, as the proto3 JSON mapping allows."""
    if not isinstance(value, str):
        return False
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _rewrite_span(path: str, span: dict[str, Any]) -> None:
    _rewrite_id(span, "traceId", "trace_id", _TRACE_ID_BYTES, path)
    _rewrite_id(span, "spanId", "span_id", _SPAN_ID_BYTES, path)
    _rewrite_id(span, "parentSpanId", "parent_span_id", _SPAN_ID_BYTES, path)
    _check_enum(span, "kind", "kind", _SPAN_KIND_NAMES, path)
    status = span.get("status")
    if isinstance(status, dict):
        _check_enum(status, "code", "code", _STATUS_CODE_NAMES, f"{path}.status")
    elif status is not None:
        raise InvalidRequest(
            f'{path}.status must be an object like {{"code": 2}}, not {as_json(status)}.'
        )
    for link_path, link in _items(span, "links", "links", path):
        if not isinstance(link, dict):
            raise InvalidRequest(f"{link_path} must be an object.")
        _rewrite_id(link, "traceId", "trace_id", _TRACE_ID_BYTES, link_path)
        _rewrite_id(link, "spanId", "span_id", _SPAN_ID_BYTES, link_path)


def _rewrite_id(owner: dict[str, Any], camel: str, snake: str, size: int, path: str) -> None:
    """Replace a hex id by the base64 form ``json_format`` expects for ``bytes`` fields."""
    key, value = _get(owner, camel, snake)
    if key is None or value is None or value == "":
        return
    if not isinstance(value, str):
        raise InvalidRequest(f"{path}.{key} must be a hex string, not {as_json(value)}.")
    digits = size * 2
    if not all(char in _HEX_DIGITS for char in value):
        raise InvalidRequest(
            f"{path}.{key} = {as_json(value)} is not hex; OTLP/JSON ids are {digits} hex digits."
        )
    # an id cut short by a digit is hex all the same: say how long it is, not that it is not hex
    if len(value) != digits:
        raise InvalidRequest(
            f"{path}.{key} = {as_json(value)} has {len(value)} hex digits; it must have {digits}."
        )
    owner[key] = base64.b64encode(binascii.unhexlify(value)).decode("ascii")


def _check_enum(
    owner: dict[str, Any], camel: str, snake: str, names: frozenset[str], path: str
) -> None:
    key, value = _get(owner, camel, snake)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return
    if not isinstance(value, str) or value not in names:
        allowed = ", ".join(sorted(names))
        raise InvalidRequest(
            f"{path}.{key} = {as_json(value)} is not one of {allowed} or a number."
        )
