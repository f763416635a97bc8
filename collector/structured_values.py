"""Array and map attribute values, stored as compact JSON, read back as a tree and written again.

The store holds an array or map attribute value as the compact JSON ``collector.spans`` writes
(Go's encoding/json form). Redaction needs the structure back, to change one element or one
member and still store valid JSON of the same form. ``parse_structured`` only accepts text that
is exactly that form, so a plain string holding other JSON (spaces, another key order) is left
to be treated as text. Numbers keep their written digits: a double or a 64-bit integer is never
rounded on the way through.
"""

from __future__ import annotations

import json
from typing import TypeAlias

from collector.spans import json_string


class JsonNumber(str):
    """A JSON number, kept as the digits it was written with."""


class JsonObject(list):
    """A JSON object's members as ``(key, value)`` pairs, in their written order."""


Node: TypeAlias = "str | JsonNumber | bool | None | list | JsonObject"

_DECODER = json.JSONDecoder(
    object_pairs_hook=JsonObject,
    parse_int=JsonNumber,
    parse_float=JsonNumber,
    parse_constant=JsonNumber,
)


def parse_structured(text: str) -> list | JsonObject | None:
    """The array or object ``text`` holds if it is compact JSON as stored, else None."""
    if not text.startswith(("[", "{")):
        return None
    try:
        tree = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return None
    try:
        return tree if dump(tree) == text else None
    except RecursionError:
        return None


def dump(node: Node) -> str:
    """``node`` as compact JSON, written as ``collector.spans`` writes structured values."""
    if isinstance(node, JsonNumber):
        return str(node)
    if isinstance(node, str):
        return json_string(node)
    if isinstance(node, JsonObject):
        return "{" + ",".join(json_string(key) + ":" + dump(value) for key, value in node) + "}"
    if isinstance(node, list):
        return "[" + ",".join(dump(item) for item in node) + "]"
    if node is None:
        return "null"
    return "true" if node else "false"


def text_form(node: Node) -> str:
    """The string an attribute holding ``node`` at the top level would be stored as."""
    if isinstance(node, str):
        return str(node)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return dump(node)
