"""Loopback ports for tests: a free one, a TCP server that answers what the test says, and
one that accepts connections and never answers (a hung server, a firewall that lets
connections through to nothing, the wrong service holding its requests)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """Accept connections on a loopback port, one at a time, handing each to ``handle``
    (which closes it or keeps it); yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopped = threading.Event()

    def accept() -> None:
        while not stopped.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            handle(connection)

    thread = threading.Thread(target=accept, name="loopback-tcp-server", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopped.set()
        thread.join(5)
        listener.close()


@contextmanager
def silent_server() -> Iterator[int]:
    """Accept every connection on a loopback port and hold it open, answering nothing;
    yields the port."""
    held: list[socket.socket] = []
    try:
        with tcp_server(held.append) as port:
            yield port
    finally:
        for connection in held:
            connection.close()
