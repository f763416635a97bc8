"""A directory one process at a time: a lock file that also says which process holds it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class DirectoryBusy(Exception):
    """Another process holds the directory; ``holder`` is its pid as it wrote it."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"held by pid {holder}")
        self.holder = holder


class DirectoryUnusable(Exception):
    """The directory cannot be created or written; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def lock_directory(directory: Path, lock_name: str) -> IO[str]:
    """Create ``directory`` if needed and hold its lock file until ``unlock`` (or exit)."""
    if directory.exists() and not directory.is_dir():
        raise DirectoryUnusable("it is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock_file = open(directory / lock_name, "a+")  # noqa: SIM115 - held while open
    except OSError as exc:
        raise DirectoryUnusable(exc.strerror or str(exc)) from exc
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.seek(0)
        holder = lock_file.read().strip() or "unknown"
        lock_file.close()
        raise DirectoryBusy(holder) from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(str(os.getpid()))
    lock_file.flush()
    return lock_file


def unlock(lock_file: IO[str]) -> None:
    """Let another process have the directory (again: nothing happens)."""
    if lock_file.closed:
        return
    fcntl.flock(lock_file, fcntl.LOCK_UN)
    lock_file.close()
