"""Requests an HTTP client library will not send: headers announcing a body that never follows.

A refusal judged from the headers alone (a ``Content-Length`` over the limit, a chunked body)
must come before any byte of the body is read. The proof is to send none: a client library
(httpx included) sends the body it announces before it reads the answer, so these go over a
plain socket, and the answer is read from it.
"""

from __future__ import annotations

import socket

HEAD_END = b"\r\n\r\n"


def headers_only(port: int, path: str, headers: dict[str, str], timeout_s: float = 10.0) -> tuple[int, bytes]:
    """POST ``path`` on the loopback ``port`` with ``headers`` and no body; the answer's status and body."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}\r\n".encode())
        return read_answer(connection)


def read_answer(connection: socket.socket) -> tuple[int, bytes]:
    """The status and body of one HTTP/1.1 answer (sized by ``Content-Length``, chunked, or to close)."""
    received = b""
    while HEAD_END not in received:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole answer: {received!r}")
        received += chunk
    head, _, body = received.partition(HEAD_END)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    pairs = (line.partition(":") for line in lines)
    fields = {name.strip().lower(): value.strip() for name, _, value in pairs}
    chunked = fields.get("transfer-encoding", "").lower() == "chunked"
    length = int(fields.get("content-length", -1))
    while not complete(body, length, chunked) and (chunk := connection.recv(65536)):
        body += chunk
    return int(status_line.split()[1]), unchunk(body) if chunked else body


def complete(body: bytes, length: int, chunked: bool) -> bool:
    """Whether ``body`` holds the whole answer (without a length or chunks: only once closed)."""
    if chunked:
        return body.endswith(b"0" + HEAD_END)
    return 0 <= length <= len(body)


def unchunk(body: bytes) -> bytes:
    """The data of a chunked body (RFC 9112 section 7.1), extensions and trailers dropped."""
    data, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return data
        data, rest = data + rest[:size], rest[size + 2 :]
