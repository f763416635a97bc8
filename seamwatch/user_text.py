"""Text people give: the limits of free-text fields, and how messages quote and show it.

A name (who acknowledges or silences) is one line of at most :data:`NAME_LIMIT` characters;
a reason or note at most :data:`TEXT_LIMIT`; a key or id looked up (a business key, a trace,
alert or silence id) at most :data:`KEY_LIMIT`. Neither may hold a control character: a line
break, tab, NUL or escape would forge lines or colours wherever the text is shown again (a
table, a chat message).

An error quotes a bad value in at most :data:`QUOTE_LIMIT` characters, cut with an ellipsis,
and text stored before these limits is shown with its control characters escaped, on one
line.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

NAME_LIMIT = 100
TEXT_LIMIT = 500
KEY_LIMIT = 1_000
QUOTE_LIMIT = 60

# Unicode categories that move the text rather than write it (controls and line separators),
# and lone surrogates: what bytes that are not UTF-8 become, which no store or message takes.
_CONTROL_CATEGORIES = ("Cc", "Zl", "Zp", "Cs")
# Marks that reverse the direction of the text after them, so a line can read as another.
_DIRECTION_MARKS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_NAMED = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}


class TextProblem(ValueError):
    """A free-text value breaks its field's rules; the message names the field and the limit."""


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` as an error message quotes it (``repr``), cut to ``limit`` characters with an
    ellipsis before its closing quote, e.g. ``'xxxxxxxx…'``; control characters escaped."""
    text = repr(value)
    return shortened(text, limit, keep_end=text[-1] if text[-1] in "'\"" else "")


def quoted_as_written(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` whose bytes that are not UTF-8 are written already (``\\xff``, by
    ``backslashreplace``) quoted as :func:`quoted` quotes, with those escapes shown once: a
    ``repr`` would double their backslash (``'\\\\xff'``). Control characters are escaped.

    >>> print(quoted_as_written(b"INV-\\xff".decode(errors="backslashreplace")))
    'INV-\\xff'
    """
    return shortened(f"'{one_line(text)}'", limit, keep_end="'")


def shortened(text: str, limit: int = QUOTE_LIMIT, keep_end: str = "") -> str:
    """``text`` in at most ``limit`` characters, cut with an ellipsis (then ``keep_end``,
    e.g. a closing quote) when it is longer."""
    if len(text) <= limit:
        return text
    return text[: limit - 1 - len(keep_end)] + "…" + keep_end


def check_text(field: str, value: str, limit: int) -> str:
    """``value`` if it is at most ``limit`` characters and holds no control character;
    otherwise :class:`TextProblem` naming ``field`` (as the user wrote it, e.g. ``--by``)."""
    check_length(field, value, limit)
    position = _first_control(value)
    if position is not None:
        raise TextProblem(
            f"{field} holds {_control_name(value[position])} at character {position + 1}; "
            f"write it on one line, without control characters, in at most {limit:,} "
            f"characters (got {quoted(value)})"
        )
    return value


def check_length(field: str, value: str, limit: int = KEY_LIMIT) -> str:
    """``value`` if it is at most ``limit`` characters; otherwise :class:`TextProblem` naming
    ``field``, its length and the limit."""
    if len(value) > limit:
        raise TextProblem(
            f"{field} is {len(value):,} characters long; at most {limit:,} are allowed "
            f"(got {quoted(value)})"
        )
    return value


def one_line(text: str) -> str:
    """``text`` as it is shown: each control character escaped (``ana\\nevil``), so that
    a value stored before the limits cannot break a line or forge one."""
    if _first_control(text) is None:
        return text
    return "".join(_escaped(char) if _is_control(char) else char for char in text)


def _first_control(text: str) -> int | None:
    return next((index for index, char in enumerate(text) if _is_control(char)), None)


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in _CONTROL_CATEGORIES or char in _DIRECTION_MARKS


def _escaped(char: str) -> str:
    """``\\n``, ``\\t``, ``\\x1b``, ``\\u202e``: the character as Python writes it."""
    escaped = repr(char)[1:-1]
    return escaped if escaped != char else f"\\u{ord(char):04x}"


def _control_name(char: str) -> str:
    """What the character is, for a message: ``a line break (\\n)``, ``a control character
    (\\x1b)``."""
    if unicodedata.category(char) == "Cs":
        return f"a character that is not text (bytes that are not UTF-8, {_escaped(char)})"
    name = _NAMED.get(char, "a control character")
    return f"{name} ({_escaped(char)})"


# the byte-order marks an editor writes at the start of UTF-16 text
UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")
# enough of the start of a file to tell UTF-16 without a byte-order mark
_SNIFFED_BYTES = 4096


def is_utf16(data: bytes) -> bool:
    """Whether ``data`` looks like UTF-16 text (a file saved as "Unicode"): a byte-order mark,
    or, without one, a NUL byte at every other position, as UTF-16 writes Latin letters (the
    second of each pair in little-endian order, the first in big-endian)."""
    if data.startswith(UTF16_MARKS):
        return True
    start = data[:_SNIFFED_BYTES]
    pairs = len(start) // 2
    return pairs > 0 and any(start[first::2][:pairs] == bytes(pairs) for first in (0, 1))


def is_whole_number(text: str) -> bool:
    """Whether ``text`` is a whole number written in ASCII digits alone: ``int`` would also
    take ``1_0``, ``+5`` and digits of other scripts, which no one types for a count.

    >>> [is_whole_number(text) for text in ("10", "1_0", "+5", "\uff15", "")]
    [True, False, False, False, False]
    """
    return text.isascii() and text.isdigit()


def validation_message(error: Any) -> str:
    """What pydantic says is wrong with a value (one of ``ValidationError.errors()``), without
    its "Value error, " prefix. A NaN, which pydantic calls not finite like infinity, is said
    to be no number at all."""
    if error["type"] == "finite_number" and _is_nan(error.get("input")):
        return "Input should be a number, not NaN"
    return str(error["msg"]).removeprefix("Value error, ")


def _is_nan(value: object) -> bool:
    try:
        return isinstance(value, str | float) and math.isnan(float(value))
    except ValueError:  # text that is no number
        return False
