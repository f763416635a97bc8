"""The ``seamwatch`` console command.

The command line is imported here rather than named as the entry point itself: importing it
takes about a second, and a Ctrl-C in that second would otherwise print a traceback before
anything has started.
"""

from __future__ import annotations

import sys

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report it


def main() -> None:
    """Run the command line; a Ctrl-C before a command has taken over ends it quietly."""
    try:
        from seamwatch.cli import app

        app()
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED_EXIT)
