"""Log lines of the long-running commands: one format, on standard error."""

from __future__ import annotations

import logging
import sys

from seamwatch.user_text import quoted

LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str) -> None:
    """Log at ``level`` (one of ``LOG_LEVELS``) to standard error; ValueError for another."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"--log-level {quoted(level)} is not one of {', '.join(LOG_LEVELS)}.")
    logging.basicConfig(
        level=numeric,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # One line per HTTP call (the dashboard polls the collector's metrics) is noise, not news.
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))
