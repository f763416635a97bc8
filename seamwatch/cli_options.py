"""Command-line options that several command groups share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from seamwatch.settings import EMPTY_DATA_DIR


def store_folder(text: str) -> Path:
    """A ``--data-dir`` value as a path; an empty one is refused rather than read as the
    working folder, where the store, spool and lock would be scattered."""
    if not text.strip():
        raise typer.BadParameter(f"it {EMPTY_DATA_DIR}")
    return Path(text)


def data_dir_option(help_text: str = "Embedded store directory.") -> Any:
    """The ``--data-dir`` option of every command that opens the store."""
    return typer.Option(None, "--data-dir", parser=store_folder, help=help_text)
