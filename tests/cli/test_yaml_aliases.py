"""Aliases in the files users write: one that holds itself, or that repeat too much, is one
clear line, not a traceback or a command busy for minutes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from seamwatch.cli import app

runner = CliRunner()
RECURSIVE_TIERS = "tiers: &tiers\n  critical: *tiers\n"
RECURSIVE_DESTINATIONS = "destinations: &all\n  - *all\n"


def alias_bomb(levels: int) -> str:
    """A "billion laughs": each line an anchor whose list repeats the line before nine times,
    the last one given as the tiers."""
    names = "abcdefghij"[:levels]
    lines = [f"a: &a [{', '.join(['lol'] * 9)}]"]
    lines += [
        f"{name}: &{name} [{', '.join([f'*{before}'] * 9)}]"
        for before, name in zip(names, names[1:], strict=False)
    ]
    return "\n".join([*lines, f"tiers: *{names[-1]}"]) + "\n"


# five lines repeat 66,000 values, past the limit at the fifth; the reported ten lines (387
# million) are refused at the same alias, before the rest is read
ALIAS_BOMB = alias_bomb(5)


@pytest.fixture(autouse=True)
def _no_files_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEAMWATCH_SEVERITY_FILE", raising=False)
    monkeypatch.delenv("SEAMWATCH_NOTIFY_FILE", raising=False)


def _detectors_with_severity(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    severity = tmp_path / "severity.yaml"
    severity.write_text(text)
    monkeypatch.setenv("SEAMWATCH_SEVERITY_FILE", str(severity))
    result = runner.invoke(app, ["detectors", "--once", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists()
    return severity, result.stderr


def test_a_severity_alias_inside_its_own_anchor_is_one_clear_line(tmp_path, monkeypatch):
    severity, stderr = _detectors_with_severity(RECURSIVE_TIERS, tmp_path, monkeypatch)
    assert stderr == (
        f"Error: Invalid severity file: {severity}, line 2: the alias *tiers refers to the node "
        "that holds it (&tiers on line 1), so it would repeat without end; write the values "
        "out instead of the alias\n"
    )


def test_a_notification_alias_inside_its_own_anchor_is_one_clear_line(tmp_path):
    notify = tmp_path / "notify.yaml"
    notify.write_text(RECURSIVE_DESTINATIONS)

    result = runner.invoke(app, ["notify", "check", "--notify-file", str(notify)])

    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"Error: Invalid notification file: {notify}, line 2: the alias *all refers to the node "
        "that holds it (&all on line 1), so it would repeat without end; write the values "
        "out instead of the alias\n"
    )


def test_aliases_that_repeat_too_many_values_are_refused(tmp_path, monkeypatch):
    severity, stderr = _detectors_with_severity(ALIAS_BOMB, tmp_path, monkeypatch)
    assert stderr == (
        f"Error: Invalid severity file: {severity}, line 5: aliases expand to more than "
        "10,000 values; write the values out or use fewer aliases\n"
    )


@pytest.mark.parametrize("depth", [3_000, 50_000])
def test_values_nested_thousands_of_levels_deep_are_one_clear_line(tmp_path, monkeypatch, depth):
    # the parser recursed once per level and the command ended in a RecursionError traceback
    nested = f"tiers: {'[' * depth}{']' * depth}\n"
    severity, stderr = _detectors_with_severity(nested, tmp_path, monkeypatch)
    assert stderr == (
        f"Error: Invalid severity file: {severity}: values are nested too deeply to read "
        "(lists or mappings within each other hundreds of levels down); these files need a "
        "few levels: write them out flat\n"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("tiers: !custom {critical: {weight: 1}}\n", "!custom"),
        ("tiers:\n  critical: !!python/object/apply:os.system ['echo x']\n", "!!python/object"),
    ],
)
def test_a_tag_plain_yaml_does_not_know_is_refused_at_its_line(tmp_path, monkeypatch, text, shown):
    # the tag was dropped and the value under it read as plain data
    severity, stderr = _detectors_with_severity(text, tmp_path, monkeypatch)
    line = text.count("\n", 0, text.index("!")) + 1
    assert stderr.startswith(
        f"Error: Invalid severity file: {severity}, line {line}: the tag {shown}"
    )
    assert stderr.endswith(
        "is not read in this file; remove it: the file holds plain YAML values\n"
    )


def test_a_yaml_syntax_error_says_which_kind_of_file_it_is_in(tmp_path, monkeypatch):
    # it named only the path, so a user passing both files had to guess which one was wrong
    severity, stderr = _detectors_with_severity("tiers: [1, 2\n", tmp_path, monkeypatch)
    assert stderr.startswith(f"Error: Invalid severity file: {severity}, line 2: not valid YAML")

    notify = tmp_path / "notify.yaml"
    notify.write_text("destinations: [\n")
    result = runner.invoke(app, ["notify", "check", "--notify-file", str(notify)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(
        f"Error: Invalid notification file: {notify}, line 2: not valid YAML"
    )
