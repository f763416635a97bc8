"""Raw HTTP/1.1 over a socket, for tests of what a server does with requests an HTTP client
library would not send: a head or body that stops arriving, or arrives in pieces."""

from __future__ import annotations

import socket


def read_answer(client: socket.socket) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Status line, headers and body of the answer, read until the server closes
    (all three empty when it closes without answering)."""
    answer = b""
    while chunk := client.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines)
    return status, headers, body
