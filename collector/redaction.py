"""Sensitive values removed from spans before they are stored.

Two rules, applied to every attribute value (resource, span, event and link attributes), to the
free text of a span (span name, event names, status message, scope name and version) and to the
service name:

* Patterns, on by default: e-mail addresses (internationalised ones too), payment card numbers
  (13 to 19 digits passing the Luhn check), IBANs (passing the ISO 13616 mod-97 check),
  international phone numbers (written with a leading ``+``), bearer tokens, HTTP Basic
  credentials and the password in a URL (``postgres://app:PASSWORD@db``) are replaced by
  ``[REDACTED:<kind>]``. The checksums keep order numbers and 64-bit ids from being mistaken for
  cards or IBANs. Phone numbers written without a country code are not recognised: they cannot
  be told apart from other numbers.
* Keys: the whole value of a configured attribute key is replaced, either masked
  (``[REDACTED]``) or hashed (``sha256:`` and 16 hex digits of an HMAC keyed with the configured
  salt), so that equal values can still be joined without being readable.

Array and map values (stored as compact JSON) are redacted on their structure: each element and
each map member on its own, keys at any depth included, so the stored value stays valid JSON of
the same form; an element that is redacted becomes a JSON string.

Detection runs vectorised over the Arrow columns (RE2 through ``pyarrow.compute``); only the rare
values that match are rewritten in Python.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import operator
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial

import pyarrow as pa
import pyarrow.compute as pc

from collector.spans import json_string
from collector.structured_values import JsonObject, Node, dump, parse_structured, text_form
from seamwatch.settings import DEFAULT_MASKED_KEYS, Settings

# Outside the Basic Multilingual Plane, whole planes are taken: historic scripts, mathematical
# letters and CJK extensions; emoji and other symbols (from U+1F000) stay out. Few ranges keep
# Python's ``re`` fast, which checks these one by one (the plane below by a bitmap).
_ASTRAL_WORD = "\U00010000-\U0001efff\U00020000-\U0003ffff\U000e0100-\U000e01ef"


def _non_ascii_class(categories: str) -> str:
    """The non-ASCII characters of the given Unicode major categories, as class ranges.

    Written out as literal ranges rather than ``\\p{L}`` because Python's ``re`` has no Unicode
    categories: both engines then read the same class.
    """
    code_points = range(0x80, 0x10000)
    major = "".join(map(operator.itemgetter(0), map(unicodedata.category, map(chr, code_points))))
    ranges = []
    for run in re.finditer(f"[{categories}]+", major):
        first, last = code_points[run.start()], code_points[run.end() - 1]
        ranges.append(chr(first) if first == last else f"{chr(first)}-{chr(last)}")
    return "".join(ranges) + _ASTRAL_WORD


# Letters, combining marks and digits of every script may make up an internationalised address
# (RFC 6531); punctuation, symbols and spaces may not, so quotes and brackets stay outside.
_WORD = _non_ascii_class("LMN")
_LETTER = _non_ascii_class("LM")


def _email(word: str, letter: str, *, from_run_start: bool) -> str:
    """The e-mail pattern, with the non-ASCII characters allowed in names and in the last label."""
    local_char = f"[A-Za-z0-9._%+{word}-]"
    label = f"[A-Za-z0-9{word}-]+"
    top_label = f"(?:[A-Za-z{letter}]{{2,}}|xn--[A-Za-z0-9-]+)"
    pattern = f"{local_char}+@{label}(?:\\.{label})*\\.{top_label}"
    # Python's backtracking engine would try the local part from every character of a long run
    # (quadratic in its length); starting only where a run starts keeps it linear. RE2 has no
    # look-behind and needs none: it is linear anyway, and whether a match exists is the same.
    return f"(?<!{local_char}){pattern}" if from_run_start else pattern


_EMAIL = _email(_WORD, _LETTER, from_run_start=True)
# The candidate filter lets any non-ASCII character through and Python's rewrite applies the
# exact classes: RE2 compiles its pattern on every call, and the exact classes would make that
# cost more than the scan itself.
_ANY_NON_ASCII = "\x80-\U0010ffff"
_EMAIL_CANDIDATE = _email(_ANY_NON_ASCII, _ANY_NON_ASCII, from_run_start=False)
# Digits are ASCII digits alone, in RE2 and in Python alike, and a number is bounded by what is
# not a digit (or, for an IBAN, not a letter or digit) rather than by a word boundary: text in
# scripts written without spaces ("カード4111...") touches the number directly.
_CARD_CANDIDATE = r"[0-9](?:[ -]?[0-9]){12,}"
_DIGIT_RUN = r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,}(?![0-9])"
_IBAN_CANDIDATE = r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}"
_IBAN = rf"(?<![A-Za-z0-9]){_IBAN_CANDIDATE}(?![A-Za-z0-9])"
# the shortest IBAN (Norway) has 15 characters, the longest 34
_IBAN_CHARACTERS = (15, 34)
_CARD_DIGITS = (13, 19)
_PHONE = r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}\d"
_BEARER = r"\b(?i:bearer)\s+[A-Za-z0-9._~+/-]+=*"
# HTTP Basic credentials: base64 of "user:password" (RFC 7617); checked by decoding, so that
# "basic" before an ordinary word is left alone
_BASIC = r"\b(?i:basic)\s+[A-Za-z0-9+/]{4,1000}={0,2}"
# the password of a URL's user information: postgres://app:hunter2@db/orders
# (bounded: Python's ``re`` rewrites what RE2 found, and an unbounded scheme made a 200 kB run
# of letters take minutes)
_URL_PASSWORD = r"\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^:/@\s]{0,256}:[^/@\s]{1,256}@"

# One RE2 pattern that finds candidates fast; Python then checks and rewrites them. Only the
# word "bearer" ignores case: a case-blind IBAN shape would match every hex id.
_CANDIDATE = "|".join(
    f"(?:{pattern})"
    for pattern in (
        _EMAIL_CANDIDATE,
        _CARD_CANDIDATE,
        _IBAN_CANDIDATE,
        _PHONE,
        _BEARER,
        _BASIC,
        _URL_PASSWORD,
    )
)


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


def _cards(match: re.Match[str]) -> str:
    """A run of digit groups with every card number in it replaced.

    A card is one or more whole groups holding 13 to 19 digits that pass the Luhn check, the
    longest such from each group on: an amount or a reference written after the number
    ("4111 1111 1111 1111 12 EUR") is kept, and two numbers one space apart are both found.
    A single group of 20 digits or more is an id, not a card."""
    tokens = re.findall(r"[0-9]+|[ -]", match.group(0))
    groups = tokens[::2]
    out: list[str] = []
    index = 0
    while index < len(groups):
        end = _card_end(groups, index)
        if end is None:
            out.append(groups[index])
            index += 1
        else:
            out.append("[REDACTED:card]")
            index = end
        if index < len(groups):
            out.append(tokens[2 * index - 1])
    return "".join(out)


def _card_end(groups: list[str], first: int) -> int | None:
    """The end (exclusive) of the longest card number of whole groups from ``first``, if any."""
    low, high = _CARD_DIGITS
    found = None
    digits = ""
    for end in range(first + 1, len(groups) + 1):
        digits += groups[end - 1]
        if len(digits) > high:
            break
        if len(digits) >= low and _luhn_valid(digits):
            found = end
    return found


def _iban(match: re.Match[str]) -> str:
    """The IBAN replaced, when the match or the match without its last words is one: a
    currency or a BIC written after it ("DE89 3704 0044 0532 0130 00 EUR") is kept."""
    text = match.group(0)
    words = text.split(" ")
    for count in range(len(words), 0, -1):
        head = " ".join(words[:count])
        if len(head.replace(" ", "")) < _IBAN_CHARACTERS[0]:
            break
        if _iban_valid(head):
            return "[REDACTED:iban]" + text[len(head) :]
    return text


def _basic(match: re.Match[str]) -> str:
    """Basic credentials redacted when they decode to ``user:password``; else left as they are."""
    scheme, encoded = match[0].split(maxsplit=1)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return match[0]
    return f"{scheme} [REDACTED:credentials]" if ":" in decoded else match[0]


def _url_password(match: re.Match[str]) -> str:
    """The URL with the password of its user information redacted."""
    head, _, _ = match[0][:-1].rpartition(":")
    return f"{head}:[REDACTED:password]@"


_REWRITES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(_URL_PASSWORD), _url_password),
    (re.compile(_BEARER), lambda m: "Bearer [REDACTED:token]"),
    (re.compile(_BASIC), _basic),
    (re.compile(_EMAIL), lambda m: "[REDACTED:email]"),
    (re.compile(_IBAN), _iban),
    (re.compile(_DIGIT_RUN), _cards),
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

    def key_rule(self, key: str, value: str) -> str | None:
        """What the key rules make of ``value`` stored under ``key``; None if they leave it."""
        if key in self.hashed_keys:
            return self.hash_value(value)
        if key in self.masked_keys:
            return "[REDACTED]"
        return None

    def redact_text(self, text: str) -> str:
        """``text`` with the patterns applied, if they are on."""
        return redact_text(text) if self.patterns else text

    def redact_value(self, value: str) -> str:
        """An attribute value with the patterns and, inside an array or map, the key rules
        applied; an array or map stays compact JSON of the stored form."""
        tree = parse_structured(value)
        if tree is None:
            return self.redact_text(value)
        return dump(self._redact_node(tree))

    def _redact_node(self, node: Node) -> Node:
        if isinstance(node, JsonObject):
            return JsonObject(self._redact_member(key, value) for key, value in node)
        if isinstance(node, list):
            return [self._redact_node(item) for item in node]
        if isinstance(node, str):
            redacted = self.redact_text(node)
            # a number that changes is no longer a number: it is stored as a JSON string
            return node if redacted == node else redacted
        return node

    def _redact_member(self, key: str, value: Node) -> tuple[str, Node]:
        # keys inside a map are data, not names chosen by the instrumentation: redact them too
        replaced = self.key_rule(key, text_form(value))
        return self.redact_text(key), self._redact_node(value) if replaced is None else replaced

    @cached_property
    def value_candidates(self) -> str | None:
        """An RE2 pattern matching every attribute value ``redact_value`` may change."""
        alternatives = [_CANDIDATE] if self.patterns else []
        nested_keys = sorted(self.masked_keys | self.hashed_keys)
        if nested_keys:
            # a configured key as a member of a stored map: '"password":'
            members = "|".join(re.escape(json_string(key) + ":") for key in nested_keys)
            alternatives.append(f"(?:{members})")
        return "|".join(alternatives) or None


_MAP_COLUMNS = ("ResourceAttributes", "SpanAttributes")
_LIST_OF_MAP_COLUMNS = ("Events.Attributes", "Links.Attributes")
# Free text the sender writes; ids, enum names and W3C trace state are left as they are.
_TEXT_COLUMNS = ("SpanName", "StatusMessage", "ScopeName", "ScopeVersion")
_LIST_OF_TEXT_COLUMNS = ("Events.Name",)


def redact_rows(rows: pa.Table, policy: RedactionPolicy) -> pa.Table:
    """The table with the policy applied to every attribute map and to the span's free text."""
    if not policy.active or rows.num_rows == 0:
        return rows
    redact_map = partial(_redact_map, policy=policy)
    resources = rows.column("ResourceAttributes").combine_chunks()
    redacted_resources = redact_map(resources)
    if redacted_resources is not resources:
        rows = _replace(rows, "ResourceAttributes", redacted_resources)
        # ServiceName is the resource's service.name: the two must not disagree
        rows = _replace(rows, "ServiceName", _service_names(redacted_resources))
    rows = _redact_column(rows, "SpanAttributes", redact_map)
    for name in _LIST_OF_MAP_COLUMNS:
        rows = _redact_column(rows, name, _each_item(redact_map))
    if policy.patterns and _free_text_has_candidates(rows):
        for name in _TEXT_COLUMNS:
            rows = _redact_column(rows, name, _redact_strings)
        for name in _LIST_OF_TEXT_COLUMNS:
            rows = _redact_column(rows, name, _each_item(_redact_strings))
    return rows


def _free_text_has_candidates(rows: pa.Table) -> bool:
    """True if any free-text column may hold a sensitive value.

    One scan over all of them: RE2 compiles the pattern on every call, which costs more than
    scanning a column of short names, and these columns rarely hold anything to redact.
    """
    texts = []
    for name in _TEXT_COLUMNS + _LIST_OF_TEXT_COLUMNS:
        column = rows.column(name).combine_chunks()
        texts.append(column.values if pa.types.is_list(column.type) else column)
    hit = pc.match_substring_regex(pa.concat_arrays(texts), _CANDIDATE)
    return pc.any(hit).as_py() is True


Redaction = Callable[[pa.Array], pa.Array]


def _redact_column(rows: pa.Table, name: str, redact: Redaction) -> pa.Table:
    """``rows`` with column ``name`` redacted; the same table if nothing changed."""
    column = rows.column(name).combine_chunks()
    redacted = redact(column)
    return rows if redacted is column else _replace(rows, name, redacted)


def _replace(rows: pa.Table, name: str, column: pa.Array) -> pa.Table:
    field = rows.schema.field(name)
    return rows.set_column(rows.schema.get_field_index(name), field, column.cast(field.type))


def _each_item(redact: Redaction) -> Redaction:
    """A redaction of list columns that applies ``redact`` to their items."""

    def redact_lists(column: pa.ListArray) -> pa.Array:
        items = column.values
        redacted = redact(items)
        if redacted is items:
            return column
        return pa.ListArray.from_arrays(column.offsets, redacted, mask=column.is_null())

    return redact_lists


def _service_names(resources: pa.MapArray) -> pa.Array:
    return pc.fill_null(pc.map_lookup(resources, "service.name", "last"), "")


def _redact_map(column: pa.MapArray, policy: RedactionPolicy) -> pa.MapArray:
    keys, values = column.keys, column.items
    if len(values) == 0:
        return column
    keyed = _key_rule_hits(keys, policy)
    new_values = _redact_by_key(keys, values, keyed, policy)
    # a value the key rules replaced is final: a hash of 16 digits could pass for a card
    new_values = _redact_values(new_values, policy, keyed)
    if new_values is values:
        return column
    return pa.MapArray.from_arrays(column.offsets, keys, new_values, mask=column.is_null())


def _key_rule_hits(keys: pa.Array, policy: RedactionPolicy) -> pa.Array | None:
    """Where a key rule (mask or hash) applies, or None where none does."""
    chosen = policy.masked_keys | policy.hashed_keys
    if not chosen:
        return None
    hit = pc.is_in(keys, value_set=pa.array(sorted(chosen), pa.string()))
    return hit if pc.any(hit).as_py() else None


def _redact_by_key(
    keys: pa.Array, values: pa.Array, hit: pa.Array | None, policy: RedactionPolicy
) -> pa.Array:
    if hit is None:
        return values

    def rewrite(index: int, value: str) -> str:
        return policy.key_rule(keys[index].as_py(), value) or value

    return _rewrite_where(values, hit, rewrite)


def _redact_values(
    values: pa.Array, policy: RedactionPolicy, final: pa.Array | None = None
) -> pa.Array:
    """Attribute values with the patterns, and the key rules inside arrays and maps, applied;
    the values where ``final`` is true are left as they are."""
    if policy.value_candidates is None:
        return values
    hit = pc.match_substring_regex(values, policy.value_candidates)
    if final is not None:
        hit = pc.and_(hit, pc.invert(final))
    if not pc.any(hit).as_py():
        return values
    return _rewrite_where(values, hit, lambda index, value: policy.redact_value(value))


def _redact_strings(values: pa.Array) -> pa.Array:
    """Free text with the patterns applied."""
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
