"""Stop requests from SIGINT and SIGTERM, for the commands that run until stopped."""

from __future__ import annotations

import queue
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals() -> threading.Event:
    """An event set once SIGINT or SIGTERM arrives; they no longer end the process abruptly.

    The handler does not set the event itself. Python runs it on the main thread between two
    bytecodes, which may fall inside ``Event.wait`` while that thread holds the event's lock
    (a timed wait that has just expired takes it back): ``set`` would then wait for that lock
    forever, and the process would never stop. The handler only puts the signal on a
    ``SimpleQueue``, whose ``put`` is safe there, and a relay thread sets the event.
    """
    stopped = threading.Event()
    requests: queue.SimpleQueue[int] = queue.SimpleQueue()

    def relay() -> None:
        requests.get()
        stopped.set()

    def on_signal(number: int, frame: object) -> None:
        requests.put(number)

    threading.Thread(target=relay, name="seamwatch-stop-relay", daemon=True).start()
    for number in STOP_SIGNALS:
        signal.signal(number, on_signal)
    return stopped
