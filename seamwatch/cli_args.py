"""Command-line arguments and ``SEAMWATCH_*`` variables that are not text, refused for every
command in one place, and so are options that take one value given more than once.

Python hands over bytes of the command line and the environment that are not UTF-8 as lone
surrogates (``$'\\xff'`` becomes ``'\\udcff'``), which no store, message or JSON body takes:
they ended in a traceback deep in a command, or in the library's own usage lines, and a data
directory of such a name was taken as written. :class:`SeamwatchGroup` checks the whole
command line and the ``SEAMWATCH_*`` variables before any command runs, and names the option
(or argument) and each variable that holds such bytes, one ``Error:`` line each.

The command line library keeps the last of an option given twice and drops the others
without a word: ``alerts silence --flow 'billing.*' --flow 'payments.*'`` silenced payments
alone. :func:`repeated_option` reads the command line with each command's own parser and
refuses such an option, with what to do instead (a command's :func:`repeat_advice`).

Typer reads numbers with pydantic and repeats its words, without the value given
(``Invalid value for '--seed': Input should be a valid integer, unable to parse string as an
integer``). :func:`plain_number_error` says instead what was given and what is wanted
(``'abc' is not a whole number``).

Typer carries a click of its own whose classes are not the ``click`` package's, so commands
and parameters are told apart by what they hold (``commands``, ``param_type_name``).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from seamwatch.settings import ENV_PREFIX, known_variables, quotable_variable
from seamwatch.user_text import quoted_as_written

BAD_INPUT_EXIT = 2  # as every command exits on an option to correct

_Function = TypeVar("_Function", bound=Callable[..., Any])


class SeamwatchGroup(TyperGroup):
    """The ``seamwatch`` command group: refuses arguments and ``SEAMWATCH_*`` variables that
    are not UTF-8, and options of one value given more than once, before parsing."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **options: Any) -> Any:
        given = list(sys.argv[1:] if args is None else args)
        # every such problem in one round: the arguments' and each variable's
        problems = [
            non_text_argument(self, given),
            repeated_option(self, given),
            *non_text_variables(os.environ),
        ]
        for problem in filter(None, problems):
            typer.echo(f"Error: {problem}", err=True)
        if any(problems):
            sys.exit(BAD_INPUT_EXIT)
        for warning in unknown_variables(os.environ):
            typer.echo(f"Warning: {warning}", err=True)
        return super().main(given, *rest, **options)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:
            plain = plain_number_error(exc)
            if plain is None:
                raise
            raise plain from exc


# pydantic's error types for text that is not a number, and what the option wanted
_NUMBER_WANTED = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
}


def plain_number_error(exc: typer.BadParameter) -> typer.BadParameter | None:
    """``exc`` reworded when it is typer's refusal of text that is not a number: the value as
    given and the kind of number wanted; None for any other refusal."""
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if not callable(errors):
        return None
    first = next(iter(errors()), None)
    if not isinstance(first, dict) or first.get("type") not in _NUMBER_WANTED:
        return None
    given = quoted_as_written(str(first.get("input", "")))
    wanted = _NUMBER_WANTED[first["type"]]
    return typer.BadParameter(f"{given} is not {wanted}.", ctx=exc.ctx, param=exc.param)


def non_text_argument(group: Any, args: list[str]) -> str | None:
    """What is not UTF-8 text in ``args`` of ``group``, naming its option or argument; None
    when every argument is text."""
    index = next((at for at, arg in enumerate(args) if not _is_text(arg)), None)
    if index is None:
        return None
    arg = args[index]
    if arg.startswith("--") and "=" in arg and _is_text(arg.partition("=")[0]):
        name, _, value = arg.partition("=")
        return _refusal(name, value)
    if arg.startswith("-") and len(arg) > 1:
        return f"the option name {_shown(arg)} is not UTF-8 text; check the command line."
    commands, positional = _commands_and_positional(group, args[:index])
    before = args[index - 1] if index else ""
    option = _value_option(commands, before)
    if option is not None:
        return _refusal(before, arg)
    return _refusal(_argument_name(commands[-1], positional), arg)


def repeat_advice(**advice: str) -> Callable[[_Function], _Function]:
    """Mark a command function with what to do instead of giving one of its options (by
    parameter name) more than once, for :func:`repeated_option`'s error; without it the
    error says to give the option once."""

    def mark(function: _Function) -> _Function:
        function.repeat_advice = advice  # type: ignore[attr-defined]
        return function

    return mark


def repeated_option(group: Any, args: list[str]) -> str | None:
    """The first option of one value that ``args`` give more than once to a command of
    ``group``, or to a group and again to its sub-command (``alerts --data-dir A silence
    --data-dir B``), with every value given and what to do; None when there is none.

    Each command's own parser reads ``args``, so an option's value that looks like an option
    or a command name is taken as the command line takes it; what that parser refuses is left
    to the real parse, which says so. Flags are not counted: given twice, they mean the same."""
    command: Any = group
    parent = None
    given: dict[str, list[Any]] = {}
    while command is not None:
        ctx = command.context_class(command, parent=parent, resilient_parsing=True)
        parser = command.make_parser(ctx)
        options = {id(option): option for option in _parser_options(parser)}
        kept = [option for option in options.values() if option.action == "store"]
        for option in kept:  # each value kept, not only the last
            option.action = "append"
        values, rest, _ = parser.parse_args(list(args))
        for option in kept:
            name = option.obj.opts[0]
            given.setdefault(name, []).extend(values.get(option.dest, []))
            if len(given[name]) > 1:
                advice = getattr(command.callback, "repeat_advice", {}).get(option.obj.name)
                return _repeated(name, given[name], advice)
        if not rest or not getattr(command, "commands", None):
            return None
        parent, args = ctx, rest[1:]
        command = command.get_command(ctx, rest[0])
    return None


def _parser_options(parser: Any) -> Iterator[Any]:
    yield from parser._long_opt.values()
    yield from parser._short_opt.values()


def _repeated(name: str, values: list[Any], advice: str | None) -> str:
    shown = ", ".join(_shown(str(value)) for value in values)
    times = "twice" if len(values) == 2 else f"{len(values)} times"
    return (
        f"{name} is given {times} ({shown}), and it takes one value: only the last would count; "
        f"{advice or f'give {name} once'}."
    )


def non_text_variables(environ: Mapping[str, str]) -> list[str]:
    """What is not UTF-8 text in the ``SEAMWATCH_*`` variables of ``environ``, one problem per
    variable. Each setting's own rule would judge such bytes, and a folder's took them."""
    problems = []
    for variable in sorted(environ):
        value = environ[variable]
        if not variable.upper().startswith(ENV_PREFIX) or _is_text(variable + value):
            continue
        if not _is_text(variable):
            problems.append(
                f"the environment variable name {_shown(variable)} is not UTF-8 text; "
                "rename or unset it."
            )
            continue
        shown = quotable_variable(variable, value)
        if shown is None:  # a secret, named only
            problems.append(f"{variable} is not UTF-8 text; write it in UTF-8.")
        else:
            problems.append(_refusal(variable, shown))
    return problems


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``SEAMWATCH_*`` variable of ``environ`` that Seamwatch does not read,
    with the one it probably meant. Only a warning: a misspelt setting is ignored silently
    otherwise, but other tools may share the prefix."""
    known = known_variables()
    # compared without the prefix, which every name shares and would make any two look alike
    suffixes = [name.removeprefix(ENV_PREFIX) for name in sorted(known)]
    warnings = []
    for variable in sorted(environ):
        name = variable.upper()  # settings are read whatever the case of their name
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        meant = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1)
        guess = f"; did you mean {ENV_PREFIX}{meant[0]}?" if meant else "."
        warnings.append(f"{variable} is not a Seamwatch setting and is ignored{guess}")
    return warnings


def _refusal(name: str, value: str) -> str:
    return f"{name} is not UTF-8 text (got {_shown(value)}); write it in UTF-8."


def _is_text(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(arg: str) -> str:
    """``arg`` quoted, with the bytes that are not UTF-8 written as ``\\xff``, as typed."""
    raw = arg.encode("utf-8", "surrogateescape")
    return quoted_as_written(raw.decode("utf-8", "backslashreplace"))


def _commands_and_positional(group: Any, args: list[str]) -> tuple[list[Any], int]:
    """The command and its groups that ``args`` reach, and how many positional arguments the
    last of them has been given."""
    commands = [group]
    positional = 0
    for at, arg in enumerate(args):
        current = commands[-1]
        if arg.startswith("-") or (at and _value_option(commands, args[at - 1])):
            continue
        subcommands = getattr(current, "commands", {})
        if arg in subcommands:
            commands.append(subcommands[arg])
            positional = 0
        else:
            positional += 1
    return commands, positional


def _value_option(commands: list[Any], arg: str) -> Any:
    """The option named ``arg`` that takes a value, among the options of ``commands``, else
    of the commands below them: one placed before its command (``seamwatch --data-dir DIR
    alerts``) is still named, though the command line is wrong."""
    named = list(_options_named(reversed(commands), arg))
    named = named or list(_options_named(_below(commands[-1]), arg))
    return next((option for option in named if not _is_flag(option)), None)


def _options_named(commands: Iterable[Any], arg: str) -> Iterator[Any]:
    """The options of ``commands`` named ``arg``."""
    for command in commands:
        for param in command.params:
            if param.param_type_name == "option" and arg in param.opts:
                yield param


def _is_flag(option: Any) -> bool:
    return bool(option.is_flag or option.count)


def _below(group: Any) -> Iterator[Any]:
    """Every command and group below ``group``."""
    for command in getattr(group, "commands", {}).values():
        yield command
        yield from _below(command)


def _argument_name(command: Any, position: int) -> str:
    """The name of the ``position``-th argument of ``command`` (``ALERT_ID``), or a plain
    description when it takes no more."""
    arguments = [param for param in command.params if param.param_type_name == "argument"]
    if position < len(arguments):
        return str(arguments[position].name).upper()
    if getattr(command, "commands", None):
        return "the command name"
    return f"argument {position + 1} of {command.name}"
