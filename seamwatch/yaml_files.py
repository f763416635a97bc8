"""YAML configuration files whose errors name the file, the line and the field.

The severity file and the notification file are read the same way: the YAML is composed into
nodes so that every path keeps its line, turned into plain data, validated by a pydantic model,
and each validation error is reported as ``FILE, line N, field a.b: message (got value)``.
"""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

Lines = dict[tuple[Any, ...], int]


def read_text_file(path: Path | str, error: type[Exception], what: str, fix: str) -> str:
    """The UTF-8 text of ``path``; ``error`` naming ``what`` the file is and how to ``fix`` it
    when it cannot be read or is not text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"Cannot read {what} {str(path)!r}: {exc.strerror}. {fix}") from None
    except UnicodeDecodeError as exc:
        raise error(
            f"Cannot read {what} {str(path)!r}: it is not UTF-8 text (byte {exc.start}). {fix}"
        ) from None


class _DuplicateKey(Exception):
    def __init__(self, key: object, first: int, again: int) -> None:
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


def read_yaml(text: str, source: str, error: type[Exception], empty_hint: str) -> tuple[Any, Lines]:
    """The plain data of ``text`` and the line of every path; ``error`` when it is not YAML."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{where}: not valid YAML: {problem}") from None
    if node is None:
        raise error(f"{source}: the file is empty; {empty_hint}")
    if not isinstance(node, yaml.MappingNode):
        shape = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise error(
            f"{source}, line {node.start_mark.line + 1}: the file holds {shape}; it must be a "
            f"mapping of keys to values; {empty_hint}"
        )
    lines: Lines = {}
    try:
        return _with_lines(node, (), lines), lines
    except _DuplicateKey as twice:
        # YAML loaders keep the last of two equal keys; a file that says two things is a mistake
        raise error(
            f"{source}, line {twice.again}: {twice.key!r} is given twice (first on line "
            f"{twice.first}); keep one"
        ) from None


def describe_errors(
    exc: ValidationError,
    source: str,
    lines: Lines,
    title: str,
    hidden_fields: Container[str] = (),
) -> str:
    """One line per validation error; values of ``hidden_fields`` (secrets) are not shown."""
    messages = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not str(part).startswith("function-after"))
        field = ".".join(str(part) for part in loc)
        line = next((lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in lines), 1)
        value = error.get("input")
        hidden = bool(loc) and loc[-1] in hidden_fields
        shown = "" if hidden or isinstance(value, dict | list) else f" (got {value!r})"
        problem = error["msg"].removeprefix("Value error, ")
        where = f"{source}, line {line}" + (f", field {field}" if field else "")
        messages.append(f"{where}: {problem}{shown}")
    return f"{title}:\n  " + "\n  ".join(messages)


def _with_lines(node: yaml.Node, path: tuple[Any, ...], lines: Lines) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            if key_node.value in result:
                first = lines[(*path, key_node.value)]
                raise _DuplicateKey(key_node.value, first, key_node.start_mark.line + 1)
            result[key_node.value] = _with_lines(value_node, (*path, key_node.value), lines)
            lines[(*path, key_node.value)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_with_lines(item, (*path, index), lines) for index, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node, deep=True)
