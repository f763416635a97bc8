"""Recurring warnings of the receiver, let into the log at most once per interval."""

from __future__ import annotations

import threading
import time


class LogThrottle:
    """Lets a recurring log line through once per interval, counting the ones held back."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval_seconds = interval_seconds
        self._lock = threading.Lock()
        self._logged_at: float | None = None
        self._held_back = 0

    def admit(self) -> int | None:
        """None to hold this line back, else how many were held back since the last one."""
        now = time.monotonic()
        with self._lock:
            if self._logged_at is not None and now - self._logged_at < self._interval_seconds:
                self._held_back += 1
                return None
            held_back, self._held_back, self._logged_at = self._held_back, 0, now
            return held_back
