"""SIGINT and SIGTERM stop the long-running commands, whenever they come."""

import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]

# The main thread holds the event's lock when the signal is handled, as it does inside
# Event.wait when a timed wait has just expired and takes the lock back. A handler that set
# the event there waited for that lock forever: `seamwatch detectors` once never stopped
# after SIGCONT and SIGTERM came together.
HANDLED_UNDER_THE_LOCK = """
import os, signal
from seamwatch.stopping import stop_on_signals

stopped = stop_on_signals()
with stopped._cond:
    os.kill(os.getpid(), signal.{name})
    sum(range(1000))  # the handler runs between these bytecodes, on this thread
print(stopped.wait(10))
"""


def _handled_under_the_lock(name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", HANDLED_UNDER_THE_LOCK.format(name=name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPOSITORY,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_stop_handled_while_the_main_thread_holds_the_events_lock_sets_it():
    assert _handled_under_the_lock("SIGTERM") == "True\n"
    assert _handled_under_the_lock("SIGINT") == "True\n"
