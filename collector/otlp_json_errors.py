"""Where an OTLP/JSON request goes wrong, in the words of its JSON.

``json_format`` refuses a field with a chain of its own messages ("Failed to parse
resourceSpans field: Failed to parse scopeSpans field: ... invalid literal for int() ...")
that names neither the index of the span nor the type expected. Once it has refused a
document, :func:`explain_refusal` narrows the refusal down to one field by asking
``json_format`` about ever smaller parts of the document, so that what it accepts stays
exactly what is accepted, and names that field by its JSON path and the type it takes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

# (least, greatest) of each integer type, by the C++ type protobuf gives a field
_INTEGER_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
DOUBLE_EXPECTED = 'a number (or "NaN", "Infinity", "-Infinity")'
_EXPECTED = {
    FieldDescriptor.CPPTYPE_STRING: "a string",
    FieldDescriptor.CPPTYPE_BOOL: "true or false (without quotes)",
    FieldDescriptor.CPPTYPE_DOUBLE: DOUBLE_EXPECTED,
    FieldDescriptor.CPPTYPE_FLOAT: DOUBLE_EXPECTED,
}
TOO_DEEP = "Body is nested too deeply to be an OTLP trace request."
# deeper than json_format goes (it stops at 100 levels): the refusal is then its depth limit
_DEEPEST = 128
# the prefixes json_format chains onto a refusal, one per enclosing field
_CHAIN = re.compile(r"^(Failed to parse \w+ field: )+")
# what bytes that are not UTF-8 become when the body is decoded with surrogateescape
_UNDECODED = re.compile(r"[\udc80-\udcff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def as_json(value: Any) -> str:
    """A value as the client wrote it (JSON), shortened for an error message.

    What is not valid Unicode is shown with escapes, so that the message itself can be sent
    as UTF-8: bytes that are not UTF-8 as the client sent them (``\\xff``), not as the lone
    surrogates they were decoded to, and an unpaired surrogate escape as ``\\ud800``."""
    text = json.dumps(value, ensure_ascii=False)
    text = _UNDECODED.sub(lambda found: f"\\x{ord(found.group()) - 0xDC00:02x}", text)
    text = _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
    return text if len(text) <= 80 else text[:77] + "..."


def explain_refusal(document: Any, descriptor: Descriptor, refusal: Exception) -> str:
    """What is wrong with ``document``, which json_format refused as a ``descriptor``
    message with ``refusal``: a field's JSON path and what it should hold."""
    try:
        found = _in_message(document, descriptor, "$")
    except RecursionError:
        found = None
    if found is not None:
        return found
    if "too deep" in str(refusal):  # json_format's own limit, below Python's
        return TOO_DEEP
    return f"Body is not an OTLP trace request: {_plain(refusal)}"


def _in_message(node: dict[str, Any], descriptor: Descriptor, path: str) -> str | None:
    """The problem of a message ``node`` at ``path`` that json_format refuses, or None when
    no single field of it explains the refusal."""
    if path.count(".") + path.count("[") > _DEEPEST:
        return None
    fields = {field.json_name: field for field in descriptor.fields}
    fields.update((field.name, field) for field in descriptor.fields)
    for key, value in node.items():
        field = fields.get(key)
        if field is None or _accepts(descriptor, {key: value}):
            continue
        return _in_field(field, value, f"{path}.{key}")
    return _oneof_clash(node, descriptor, fields, path)


def _in_field(field: FieldDescriptor, value: Any, path: str) -> str | None:
    """The problem of the value of ``field`` at ``path``, one item of an array at a time."""
    if not field.is_repeated:
        return _in_value(field, value, path)
    if not isinstance(value, list):
        return f"{path} must be an array, not {as_json(value)}."
    for index, item in enumerate(value):
        problem = _in_value(field, item, f"{path}[{index}]", alone=[item])
        if problem is not None:
            return problem
    return None


def _in_value(field: FieldDescriptor, value: Any, path: str, alone: Any = None) -> str | None:
    """The problem of one value of ``field``; None when json_format takes it on its own
    (``alone`` is the value as its field holds it, when that is not the value itself)."""
    if field.message_type is not None:
        if not isinstance(value, dict):
            return f"{path} must be an object, not {as_json(value)}."
        if _accepts(field.message_type, value):
            return None
        return _in_message(value, field.message_type, path)
    owner = field.containing_type
    if _accepts(owner, {field.json_name: value if alone is None else alone}):
        return None
    return f"{path}: {as_json(value)} {_scalar_problem(field, value)}"


def _scalar_problem(field: FieldDescriptor, value: Any) -> str:
    """Why a scalar ``field`` refuses ``value``, and what it takes."""
    if field.enum_type is not None:
        names = ", ".join(field.enum_type.values_by_name)
        return f"is not one of {names} or a number."
    bounds = _INTEGER_RANGES.get(field.cpp_type)
    if bounds is not None:
        return _integer_problem(field, value, bounds)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return "is not base64 text."
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING and isinstance(value, str):
        if _UNDECODED.search(value):
            return "is not valid UTF-8; OTLP/JSON strings are UTF-8 text."
        return "holds an unpaired surrogate escape; it is not Unicode text."
    return f"is not {_EXPECTED.get(field.cpp_type, 'a value of this field')}."


def _integer_problem(field: FieldDescriptor, value: Any, bounds: tuple[int, int]) -> str:
    number = _whole_number(value)
    if number is not None and not bounds[0] <= number <= bounds[1]:
        return f"is out of range; it must be from {bounds[0]} to {bounds[1]}."
    if field.name.endswith("time_unix_nano"):
        return "is not an integer (nanoseconds since the epoch, as a number or a decimal string)."
    return "is not an integer (a number or a decimal string)."


def _whole_number(value: Any) -> int | None:
    """``value`` as a whole number when it is one, however written, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if not isinstance(value, str):
        return None
    try:
        return int(value)
    except ValueError:  # not decimal digits, or more of them than int() reads
        return None


def _oneof_clash(
    node: dict[str, Any], descriptor: Descriptor, fields: dict[str, FieldDescriptor], path: str
) -> str | None:
    """The problem of a message that sets two fields of one oneof (an AnyValue with both a
    stringValue and an intValue), which json_format refuses though each field is fine."""
    for oneof in descriptor.oneofs:
        given = [key for key in node if key in fields and fields[key].containing_oneof is oneof]
        if len(given) > 1:
            return f"{path} sets {', '.join(given)}; it takes only one of them."
    return None


def _accepts(descriptor: Descriptor, node: Any) -> bool:
    """Whether json_format takes ``node`` as a ``descriptor`` message, as the decoder asks."""
    if not isinstance(node, dict):
        return False
    try:
        json_format.ParseDict(
            node, message_factory.GetMessageClass(descriptor)(), ignore_unknown_fields=True
        )
    except json_format.ParseError:
        return False
    return True


def _plain(refusal: Exception) -> str:
    """json_format's message without its chain of enclosing fields and trailing dots."""
    return _CHAIN.sub("", str(refusal)).rstrip(".") + "."
