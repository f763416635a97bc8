"""Sensitive values removed from spans before they are stored.

Two rules, applied to every attribute value (resource, span, event and link attributes) and to
status messages:

* Patterns, on by default: e-mail addresses, payment card numbers (13 to 19 digits passing the
  Luhn check), IBANs (passing the ISO 13616 mod-97 check), international phone numbers (written
  with a leading ``+``) and bearer tokens are replaced by ``[REDACTED:<kind>]``. The checksums keep
  order numbers and 64-bit ids from being mistaken for cards or IBANs. Phone numbers written
  without a country code are not recognised: they cannot be told apart from other numbers.
* Keys: the whole value of a configured attribute key is replaced, either masked
  (``[REDACTED]``) or hashed (``sha256:`` and 16 hex digits of an HMAC keyed with the configured
  salt), so that equal values can still be joined without being readable.

Detection runs vectorised over the Arrow columns (RE2 through ``pyarrow.compute``); only the rare
values that match are rewritten in Python.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from seamwatch.settings import DEFAULT_MASKED_KEYS, Settings

_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_CARD = r"\b\d(?:[ -]?\d){12,18}\b"
_IBAN = r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"
_PHONE = r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}\d"
_BEARER = r"\b(?i:bearer)\s+[A-Za-z0-9._~+/-]+=*"

# One RE2 pattern that finds candidates fast; Python then checks and rewrites them. Only the
# word "bearer" ignores case: a case-blind IBAN shape would match every hex id.
_CANDIDATE = "|".join(f"(?:{pattern})" for pattern in (_EMAIL, _CARD, _IBAN, _PHONE, _BEARER))


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "[REDACTED:card]" if _luhn_valid(digits) else match.group(0)


def _iban(match: re.Match[str]) -> str:
    return "[REDACTED:iban]" if _iban_valid(match.group(0)) else match.group(0)


_REWRITES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(_BEARER), lambda m: "Bearer [REDACTED:token]"),
    (re.compile(_EMAIL), lambda m: "[REDACTED:email]"),
    (re.compile(_IBAN), _iban),
    (re.compile(_CARD), _card),
    (re.compile(_PHONE), lambda m: "[REDACTED:phone]"),
)


def redact_text(text: str) -> str:
    """``text`` with every recognised sensitive value replaced."""
    for pattern, rewrite in _REWRITES:
        text = pattern.sub(rewrite, text)
    return text


@dataclass(frozen=True)
class RedactionPolicy:
    """What to remove: patterns on or off, keys to mask, keys to hash and the hash key."""

    patterns: bool = True
    masked_keys: frozenset[str] = frozenset(DEFAULT_MASKED_KEYS)
    hashed_keys: frozenset[str] = frozenset()
    hash_salt: str = ""

    @property
    def active(self) -> bool:
        """True when the policy can change anything."""
        return self.patterns or bool(self.masked_keys) or bool(self.hashed_keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedactionPolicy:
        """The policy the settings describe."""
        return cls(
            patterns=settings.redact_patterns,
            masked_keys=settings.key_set(settings.redact_keys),
            hashed_keys=settings.key_set(settings.hash_keys),
            hash_salt=settings.hash_salt.get_secret_value(),
        )

    def hash_value(self, value: str) -> str:
        """A stable, unreadable stand-in for ``value``."""
        digest = hmac.new(self.hash_salt.encode(), value.encode(), hashlib.sha256).hexdigest()
        return f"sha256:{digest[:16]}"


_MAP_COLUMNS = ("ResourceAttributes", "SpanAttributes")
_LIST_OF_MAP_COLUMNS = ("Events.Attributes", "Links.Attributes")


def redact_rows(rows: pa.Table, policy: RedactionPolicy) -> pa.Table:
    """The table with the policy applied to every attribute map and to StatusMessage."""
    if not policy.active or rows.num_rows == 0:
        return rows
    for name in _MAP_COLUMNS:
        column = rows.column(name).combine_chunks()
        rows = _replace(rows, name, _redact_map(column, policy))
    for name in _LIST_OF_MAP_COLUMNS:
        column = rows.column(name).combine_chunks()
        inner = _redact_map(column.values, policy)
        rebuilt = pa.ListArray.from_arrays(column.offsets, inner, mask=column.is_null())
        rows = _replace(rows, name, rebuilt)
    if policy.patterns:
        message = rows.column("StatusMessage").combine_chunks()
        rows = _replace(rows, "StatusMessage", _redact_strings(message))
    return rows


def _replace(rows: pa.Table, name: str, column: pa.Array) -> pa.Table:
    field = rows.schema.field(name)
    return rows.set_column(rows.schema.get_field_index(name), field, column.cast(field.type))


def _redact_map(column: pa.MapArray, policy: RedactionPolicy) -> pa.MapArray:
    keys, values = column.keys, column.items
    if len(values) == 0:
        return column
    new_values = _redact_by_key(keys, values, policy)
    if policy.patterns:
        new_values = _redact_strings(new_values)
    if new_values is values:
        return column
    return pa.MapArray.from_arrays(column.offsets, keys, new_values, mask=column.is_null())


def _redact_by_key(keys: pa.Array, values: pa.Array, policy: RedactionPolicy) -> pa.Array:
    chosen = policy.masked_keys | policy.hashed_keys
    if not chosen:
        return values
    hit = pc.is_in(keys, value_set=pa.array(sorted(chosen), pa.string()))
    if not pc.any(hit).as_py():
        return values

    def rewrite(index: int, value: str) -> str:
        key = keys[index].as_py()
        return policy.hash_value(value) if key in policy.hashed_keys else "[REDACTED]"

    return _rewrite_where(values, hit, rewrite)


def _redact_strings(values: pa.Array) -> pa.Array:
    hit = pc.match_substring_regex(values, _CANDIDATE)
    if not pc.any(hit).as_py():
        return values
    return _rewrite_where(values, hit, lambda index, value: redact_text(value))


def _rewrite_where(values: pa.Array, hit: pa.Array, rewrite: Callable[[int, str], str]) -> pa.Array:
    """``values`` with the entries where ``hit`` is true passed through ``rewrite``."""
    mask = pc.fill_null(hit, False)
    positions = pc.indices_nonzero(mask).to_pylist()
    originals = pc.take(values, pa.array(positions, pa.int64())).to_pylist()
    replacements = [
        None if value is None else rewrite(index, value)
        for index, value in zip(positions, originals, strict=True)
    ]
    return pc.replace_with_mask(values, mask, pa.array(replacements, values.type))
