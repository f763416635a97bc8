"""YAML configuration files whose errors name the file, the line and the field.

The severity file and the notification file are read the same way: the YAML is composed into
nodes so that every path keeps its line, turned into plain data, validated by a pydantic model,
and each validation error is reported as ``FILE, line N, field a.b: message (got value)``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Container, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from seamwatch.user_text import is_utf16, quoted, shortened, validation_message

Lines = dict[tuple[Any, ...], int]

# What pydantic calls a value of the wrong shape, in the words of a YAML file; a mapping that
# stands for a model is named by the caller's ``model_nouns`` (never by the class's name).
_SHAPES = {
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "list_type": "a list",
    "string_type": "text",
    "bool_type": "true or false",
}
_UNKNOWN_KEY = "unknown key; check its spelling, or remove it"
YAML_HINT = "check the indentation there and that every quote and bracket is closed"
_COMPOUND_KEY = "a key is a list or a mapping; a key must be a name"
# An alias repeats all its anchor holds, so ten lines of aliases of aliases can stand for a
# billion values and keep a command busy for minutes ("billion laughs"). These files hold a few
# hundred values; reusing a tier's settings repeats a few dozen.
ALIAS_EXPANSION_LIMIT = 10_000

# The settings of a number field of a YAML file: a YAML number, never a boolean or a quoted
# string ("5", which the error says to write without quotes), and never infinite or NaN.
PLAIN_NUMBER: dict[str, Any] = {"strict": True, "allow_inf_nan": False}


class Problem(NamedTuple):
    """One thing wrong in a file: where (``path``, whose line is reported unless ``line`` says
    another), what, and the field shown when it is not ``path`` itself."""

    path: tuple[Any, ...]
    message: str
    field: str | None = None
    line: int | None = None


class _AliasProblem(yaml.composer.ComposerError):
    """An alias the file cannot be read with, and what to write instead (``fix``)."""

    def __init__(self, problem: str, alias: yaml.AliasEvent, fix: str) -> None:
        super().__init__(None, None, problem, alias.start_mark)
        self.fix = fix


class _AliasCheckingLoader(yaml.SafeLoader):
    """The safe loader, refusing an alias inside the node it names (it would repeat without
    end) and aliases that repeat more than :data:`ALIAS_EXPANSION_LIMIT` values in all."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._values = 0  # values composed so far, an alias counting every value it repeats
        self._repeated = 0  # of these, the ones aliases repeat
        # values under each anchor whose node is complete (PyYAML refuses an anchor named twice)
        self._sizes: dict[str, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._repeat(event)
            return _aliased(super().compose_node(parent, index), event)
        first = self._values
        self._values += 1
        node = super().compose_node(parent, index)
        if event.anchor is not None:
            self._sizes[event.anchor] = self._values - first
        return node

    def _repeat(self, alias: yaml.AliasEvent) -> None:
        """Count the values ``alias`` repeats; refuse it when they never end or are too many."""
        anchored = self.anchors.get(alias.anchor)
        if anchored is None:
            return  # an undefined alias: PyYAML says so
        size = self._sizes.get(alias.anchor)
        if size is None:  # the anchor's node is still being read: the alias is inside it
            raise _AliasProblem(
                f"the alias *{alias.anchor} refers to the node that holds it (&{alias.anchor} "
                f"on line {anchored.start_mark.line + 1}), so it would repeat without end",
                alias,
                "write the values out instead of the alias",
            )
        self._values += size
        self._repeated += size
        if self._repeated > ALIAS_EXPANSION_LIMIT:
            raise _AliasProblem(
                f"aliases expand to more than {ALIAS_EXPANSION_LIMIT:,} values",
                alias,
                "write the values out or use fewer aliases",
            )


def _aliased(node: yaml.Node, alias: yaml.AliasEvent) -> yaml.Node:
    """The node an alias names, placed at the alias: what it repeats is reported there, where
    the file gives it again, not at its anchor (PyYAML hands back the anchor's node itself)."""
    repeated = copy.copy(node)
    repeated.start_mark, repeated.end_mark = alias.start_mark, alias.end_mark
    repeated.aliased = True
    return repeated


def read_text_file(path: Path | str, error: type[Exception], what: str, fix: str) -> str:
    """The UTF-8 text of ``path``; ``error`` naming ``what`` the file is and how to ``fix`` it
    when it cannot be read or is not text."""
    advice = f" {fix}" if fix else ""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"Cannot read {what} {str(path)!r}: {exc.strerror}.{advice}") from None
    try:
        text = data.decode("utf-8")
        problem = utf16_problem(data)
    except UnicodeDecodeError as exc:
        problem = utf16_problem(data) or (
            f"it is not UTF-8 text (byte {exc.start} cannot be read as UTF-8); save it as UTF-8"
        )
    if problem:
        raise error(f"Cannot read {what} {str(path)!r}: {problem}.{advice}")
    return text


def utf16_problem(data: bytes) -> str | None:
    """What to say of ``data`` if it is UTF-16 text (with a byte-order mark, or NUL bytes
    beside its letters), which a UTF-8 reader would refuse or misread; None otherwise."""
    if is_utf16(data):
        return "it is UTF-16 text, not UTF-8; save it as UTF-8 in your editor"
    return None


def read_yaml_and_problems(
    text: str, source: str, error: type[Exception], empty_hint: str, title: str
) -> tuple[Any, Lines, list[Problem]]:
    """The plain data of ``text``, the line of every path, and the keys it cannot take (given
    twice, of which the first is kept; or a list or mapping as a key), for a file whose other
    mistakes are reported with them; ``error`` when it is not YAML at all, or an alias in it
    would repeat without end or too much. Its message starts with ``title`` (``Invalid
    severity file``), so a reader with several files at hand knows which kind is wrong."""
    try:
        return _read_yaml(text, source, empty_hint)
    except _FileProblem as problem:
        raise error(f"{title}: {problem}") from None


class _FileProblem(Exception):
    """What makes a file unreadable as plain YAML, with the file and line it is at."""


def _read_yaml(text: str, source: str, empty_hint: str) -> tuple[Any, Lines, list[Problem]]:
    try:
        node = yaml.compose(text, Loader=_AliasCheckingLoader)
    except RecursionError:
        raise _FileProblem(_too_deep(source)) from None
    except _AliasProblem as exc:
        line = exc.problem_mark.line + 1
        raise _FileProblem(f"{source}, line {line}: {exc.problem}; {exc.fix}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise _FileProblem(f"{where}: not valid YAML: {problem}; {YAML_HINT}") from None
    if node is None:
        raise _FileProblem(f"{source}: the file is empty; {empty_hint}")
    if not isinstance(node, yaml.MappingNode):
        shape = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise _FileProblem(
            f"{source}, line {node.start_mark.line + 1}: the file holds {shape}; it must be a "
            f"mapping of keys to values; {empty_hint}"
        )
    lines: Lines = {}
    problems: list[Problem] = []
    try:
        foreign = _first_foreign_tag(node)
        if foreign is not None:
            raise _FileProblem(
                f"{source}, line {foreign.start_mark.line + 1}: the tag "
                f"{foreign.tag.replace('tag:yaml.org,2002:', '!!')} is not "
                "read in this file; remove it: the file holds plain YAML values"
            )
        return _with_lines(node, (), lines, problems), lines, problems
    except RecursionError:
        raise _FileProblem(_too_deep(source)) from None


def _first_foreign_tag(node: yaml.Node) -> yaml.Node | None:
    """The first node whose explicit tag (``!custom``, ``!!python/object``) is not one of
    plain YAML's: such a value would otherwise be read as the plain value under the tag."""
    if node.tag not in _PLAIN_TAGS:
        return node
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    else:
        return None
    for child in children:
        found = _first_foreign_tag(child)
        if found is not None:
            return found
    return None


def _too_deep(source: str) -> str:
    # the parser and the reading of values recurse once per level of nesting
    return (
        f"{source}: values are nested too deeply to read (lists or mappings within each other "
        "hundreds of levels down); these files need a few levels: write them out flat"
    )


def describe_errors(
    exc: ValidationError,
    source: str,
    lines: Lines,
    title: str,
    hidden_fields: Container[str] = (),
    key_nouns: Mapping[str, str] | None = None,
    model_nouns: Mapping[str, str] | None = None,
) -> str:
    """One line per validation error; values of ``hidden_fields`` (secrets) are not shown.

    A key of a mapping that the model does not know reads ``field tiers: unknown tier 'x';
    use one of ...``, with the noun for the mapping's keys taken from ``key_nouns``. A value
    that should be a mapping of a model's fields is described by ``model_nouns``, by the
    model's class name (``"a mapping of tier settings (weight, ...)"``)."""
    return describe_problems(
        validation_problems(exc, hidden_fields, key_nouns, model_nouns), source, lines, title
    )


def validation_problems(
    exc: ValidationError,
    hidden_fields: Container[str] = (),
    key_nouns: Mapping[str, str] | None = None,
    model_nouns: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Each validation error as a problem of the file (see :func:`describe_errors`)."""
    return [
        _problem(error, hidden_fields, key_nouns or {}, model_nouns or {}) for error in exc.errors()
    ]


def describe_problems(problems: Iterable[Problem], source: str, lines: Lines, title: str) -> str:
    """``title``, then ``FILE, line N, field F: message`` for each problem."""
    messages = []
    for problem in problems:
        field = ".".join(shortened(str(part)) for part in problem.path)
        field = field if problem.field is None else problem.field
        where = f"{source}, line {problem_line(problem, lines)}"
        messages.append(f"{where}{f', field {field}' if field else ''}: {problem.message}")
    return f"{title}:\n  " + "\n  ".join(messages)


def problem_line(problem: Problem, lines: Lines) -> int:
    """The line a problem is reported on."""
    return problem.line or line_of(lines, problem.path)


def line_of(lines: Lines, path: tuple[Any, ...]) -> int:
    """The line of ``path``, or of the nearest part of the file that holds it."""
    return next((lines[path[:end]] for end in range(len(path), -1, -1) if path[:end] in lines), 1)


def _problem(
    error: Any,
    hidden_fields: Container[str],
    key_nouns: Mapping[str, str],
    model_nouns: Mapping[str, str],
) -> Problem:
    """A pydantic error as a problem of the file, saying what the file gave."""
    loc = tuple(part for part in error["loc"] if not str(part).startswith("function-after"))
    value = error.get("input")
    if loc and loc[-1] == "[key]":
        # pydantic names the key itself "[key]"; the field is the entry the key opens
        # (tiers.urgent, money.rates.XYZ), and the message says what the mapping takes
        path, parent = loc[:-1], ".".join(str(part) for part in loc[:-2])
        if error["type"] == "value_error":
            # a key the model checks itself (a currency code) says what is wrong with it
            return Problem(path, f"{_message(error, model_nouns)} (got {quoted(value)})")
        noun = key_nouns.get(parent, "key")
        expected = str((error.get("ctx") or {}).get("expected", "")).replace("'", "")
        allowed = f"; use one of {expected.replace(' or ', ', ')}" if expected else ""
        return Problem(path, f"unknown {noun} {quoted(value)}{allowed}")
    hidden = bool(loc) and loc[-1] in hidden_fields
    shown = "" if hidden or error["type"] == "missing" else f" (got {yaml_value(value)})"
    message = _message(error, model_nouns)
    if error["type"] in ("float_type", "int_type") and isinstance(value, str):
        message += _number_hint(value)
    return Problem(loc, message + shown)


# A number in exponent form; YAML 1.1 (PyYAML) reads it as a number only with a dot in it and a
# sign before its exponent (``1.0e-3``), otherwise as text.
_EXPONENT_FORM = re.compile(r"[-+]?(?P<digits>[0-9]+(?:\.[0-9]*)?)[eE](?P<power>[-+]?[0-9]+)")
# A percentage (``10%``, ``0.5 %``), which YAML reads as text: shares are written as fractions.
_PERCENT = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?)\s*%")
# Longer than this, a number's plain form is no help to write.
_PLAIN_FORM_LIMIT = 20


def _number_hint(text: str) -> str:
    """Why a number reached the model as ``text``: it was quoted, it is a percentage (``10%``),
    or it is in an exponent form that YAML reads as text (``1e-3``); the hint writes it so that
    YAML reads a number."""
    percent = _PERCENT.fullmatch(text.strip())
    if percent is not None:
        share = Decimal(percent["number"]) / 100
        return f"; write a percentage as a fraction: {share.normalize():f} for {percent[0]}"
    written = _EXPONENT_FORM.fullmatch(text.strip())
    if written is None or not isinstance(yaml.safe_load(text), str):
        return ", written without quotes"  # YAML reads a quoted number as text
    digits = written["digits"] if "." in written["digits"] else f"{written['digits']}.0"
    sign = "-" if text.strip().startswith("-") else ""
    forms = [f"{sign}{digits}e{int(written['power']):+d}"]
    plain = f"{Decimal(text.strip()).normalize():f}"
    if len(plain) <= _PLAIN_FORM_LIMIT:
        forms.insert(0, plain)
    return (
        "; YAML reads an exponent form as text unless it has a dot and a signed exponent: "
        f"write {' or '.join(forms)}"
    )


def _message(error: Any, model_nouns: Mapping[str, str]) -> str:
    """What pydantic says is wrong, in the words of the file rather than of the code."""
    if error["type"] == "extra_forbidden":
        return _UNKNOWN_KEY
    shape = _SHAPES.get(error["type"])
    if shape is None:
        return validation_message(error)
    model = (error.get("ctx") or {}).get("class_name")
    return f"Input should be {model_nouns.get(model, shape)}"


def yaml_value(value: Any) -> str:
    """A value read from a YAML file as the file would write it, shortened and saying what it
    is when that is not plain: ``'urgent'``, ``true``, ``an empty value``, ``a list:
    [critical]``. A mapping is shown by its keys, and a list of mappings or lists by its shape
    alone, so that a secret nested in them is never quoted."""
    if value is None:
        return "an empty value"
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, dict):
        keys = ", ".join(str(key) for key in value)
        return f"a mapping with keys {shortened(keys)}" if keys else "an empty mapping"
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        return "a list of mappings or lists"
    written = yaml.safe_dump(value, default_flow_style=True, width=2**31 - 1)
    written = written.removesuffix("\n...\n").strip()
    if isinstance(value, list):
        return f"a list: {shortened(written, keep_end=']')}"
    return shortened(written)


_MERGE_TAG = "tag:yaml.org,2002:merge"
# the tags plain YAML values resolve to (what a safe loader constructs)
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "merge", "timestamp")
)
_MERGE_SHAPE = (
    "'<<' merges a mapping into this one: give it an alias of a mapping (<<: *base) or a list "
    "of them"
)


def _with_lines(
    node: yaml.Node,
    path: tuple[Any, ...],
    lines: Lines,
    problems: list[Problem],
    at: int | None = None,
) -> Any:
    """The plain data of ``node``, recording the line of ``path`` and of every path under it:
    ``at`` for all of them when they are given by an alias, which is where the file repeats
    them. A key given twice or no name is a mistake of the text that holds it, reported at the
    key itself."""
    if at is None and getattr(node, "aliased", False):
        at = node.start_mark.line + 1
    lines[path] = at or node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        first_lines: dict[Any, int] = {}
        for key_node, value_node, given_at in _merged_pairs(node, path, problems):
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):  # "? [a, b]": no name to look up
                problems.append(Problem(path, _COMPOUND_KEY, line=line))
                continue
            key_path = (*path, key_node.value)
            if key_node.value in result:
                # YAML loaders keep the last of two equal keys; a file that says two things is
                # a mistake, reported with the file's others
                first = first_lines[key_node.value]
                given = quoted(key_node.value)
                message = f"{given} is given twice (first on line {first}); keep one"
                problems.append(Problem(key_path, message, line=line))
                continue
            key_at = at or given_at
            result[key_node.value] = _with_lines(value_node, key_path, lines, problems, key_at)
            lines[key_path] = key_at or line
            first_lines[key_node.value] = line
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _with_lines(item, (*path, index), lines, problems, at)
            for index, item in enumerate(node.value)
        ]
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _merged_pairs(
    node: yaml.MappingNode, path: tuple[Any, ...], problems: list[Problem]
) -> list[tuple[yaml.Node, yaml.Node, int | None]]:
    """The pairs of ``node`` with its merge keys applied (``<<: *base``, or a list of such
    aliases): the keys of the merged mappings come first, unless ``node`` gives them itself;
    of two merged mappings, the first given wins (the YAML merge key convention). Each pair
    comes with the line of the alias that merged it in (None for the node's own pairs)."""
    own = [(key, value, None) for key, value in node.value if key.tag != _MERGE_TAG]
    merges = [(key, value) for key, value in node.value if key.tag == _MERGE_TAG]
    if not merges:
        return own
    taken = {key.value for key, _, _ in own if isinstance(key, yaml.ScalarNode)}
    inherited: list[tuple[yaml.Node, yaml.Node, int | None]] = []
    for key, _ in merges[1:]:
        # like any key given twice; a list (<<: [*a, *b]) merges several mappings
        first = merges[0][0].start_mark.line + 1
        message = f"'<<' is given twice (first on line {first}); merge a list: <<: [*a, *b]"
        problems.append(Problem(path, message, line=key.start_mark.line + 1))
    for key, value in merges[:1]:
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        if not all(isinstance(source, yaml.MappingNode) for source in sources):
            problems.append(Problem(path, _MERGE_SHAPE, line=key.start_mark.line + 1))
            continue
        for source in sources:
            merged_at = source.start_mark.line + 1 if getattr(source, "aliased", False) else None
            for key_node, value_node, given_at in _merged_pairs(source, path, problems):
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if name is None or name not in taken:
                    taken.add(name)
                    inherited.append((key_node, value_node, merged_at or given_at))
    return inherited + own
