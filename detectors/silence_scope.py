"""What a silence covers: alerts whose flow, target and kind match its globs, or the alerts of
one failure category.

A silence given the kind ``category:NAME`` (as the alerts table writes a category alert) is
stored as kind ``exception_category`` with ``category`` NAME. It covers an alert of its flow
and target while every category the alert has shown is silenced, by it or by other category
silences: a second category is a failure of its own, which the reason for the silence (a
mapping being fixed) does not speak for. The other kinds that join the alert do not end it
(an error rate that rises with the mapping failures is those failures seen another way), as
they do not end a silence of a kind. Category names are compared as the detectors compare
them (:func:`~detectors.category_drift.reference_name`) and whole, never as globs: a name
may hold any character.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from detectors.alert_text import CATEGORY_PREFIX, EXCEPTION_CATEGORY
from detectors.category_drift import reference_name


def split_category(kind: str) -> tuple[str, str | None]:
    """A silence's kind and category as stored: ``category:NAME`` is the kind
    ``exception_category`` with category NAME (as written, stripped; maybe empty); any other
    kind has no category (None).

    >>> split_category("category:Master Data Missing")
    ('exception_category', 'Master Data Missing')
    >>> split_category("error_rate")
    ('error_rate', None)
    """
    prefix, name = kind[: len(CATEGORY_PREFIX)], kind[len(CATEGORY_PREFIX) :]
    if prefix.lower() != CATEGORY_PREFIX:
        return kind, None
    return EXCEPTION_CATEGORY, name.strip()


def silenced_kind(silence: dict[str, Any]) -> str:
    """What a silence matches of an alert's kinds, as the alerts table writes them: its kind,
    or ``category:NAME`` for a silence of one category."""
    category = silence.get("category")
    return f"{CATEGORY_PREFIX}{category}" if category else str(silence["kind"])


def same_category(one: str, other: str) -> bool:
    """Whether two category names are the same category, as the detectors compare them."""
    return reference_name(one) == reference_name(other)


def covering_silence(
    silences: Sequence[dict[str, Any]],
    flow: str,
    target: str,
    kinds: Sequence[str],
    categories: Sequence[str],
) -> dict[str, Any] | None:
    """The first of ``silences`` (those in force) that covers an alert of ``flow`` and
    ``target`` which has shown ``kinds`` and the failure ``categories``, or None.

    When category silences cover the alert, the one of its first category is named."""
    by_category: dict[str, dict[str, Any]] = {}
    for silence in silences:
        if not (
            fnmatch.fnmatchcase(flow, silence["flow"])
            and fnmatch.fnmatchcase(target, silence["target"])
        ):
            continue
        category = silence.get("category") or ""
        if category:
            by_category.setdefault(reference_name(category), silence)
        elif any(fnmatch.fnmatchcase(kind, silence["kind"]) for kind in kinds):
            return silence
    shown = [reference_name(name) for name in categories]
    if shown and all(name in by_category for name in shown):
        return by_category[shown[0]]
    return None


def matches_every_name(pattern: str) -> bool:
    """Whether the glob ``pattern`` matches every non-empty name, as ``*``, ``?*`` and
    ``*?*`` do; decided for any spelling, not from a list of known ones.

    >>> [matches_every_name(p) for p in ("*", "**", "?*", "*?*", "[!x]*", "??*", "a*")]
    [True, True, True, True, False, False, False]
    """
    return all(fnmatch.fnmatchcase(probe, pattern) for probe in _probes(pattern))


def _probes(pattern: str) -> set[str]:
    """Names that a glob matching every non-empty name must match, and one of which any
    other glob misses.

    A glob misses every name made of one character that one of its parts (a literal or a
    set) refuses; such a character is the literal's neighbour, or an end of a set's range
    or just outside it, so it is one of the pattern's characters or next to one. A glob whose
    parts take any character misses one character (two ``?``) or two (no ``*``)."""
    characters = {"a"}
    for code in map(ord, pattern):
        characters.update(chr(c) for c in (code - 1, code, code + 1) if 0 <= c <= _LAST_CODE)
    return {c * length for c in characters for length in (1, 2)}


_LAST_CODE = 0x10FFFF
