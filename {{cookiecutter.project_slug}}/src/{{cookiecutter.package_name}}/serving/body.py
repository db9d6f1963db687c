"""Request body rules, enforced from the headers before a byte of the body is read.

BentoML reads and parses a whole body before the service's rows limit can answer: a 39 MB body
kept a worker parsing for 5 s while the requests behind it waited. This ASGI layer answers 413
from ``Content-Length`` at once, 411 to a chunked body, which announces no length to judge, and
415 to a POST that is not JSON (BentoML answered ``multipart/form-data`` without a boundary with
a 500). The router holds the same rules (``router.max_body_mb``); these guard a color reached
directly, and like :mod:`.metadata` this module imports no model stack.

A body under the byte limit can still hold more rows than ``serving.max_rows_per_request``:
15.3 MB held 58,900 rows, which BentoML parsed and validated whole (1.5-1.9 s, every other client
waiting) before the service could count them. So the rows route's body is read here and its
rows counted first, at C speed, as its chunks arrive: no more ``{`` than rows allowed passes at
once; otherwise the prefix holding the first rows over the limit is parsed alone and decides
(413), while the rest of the body is still arriving; the rest is then read and dropped.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

from pydantic_core import from_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_METHODS = {"POST", "PUT", "PATCH"}
GET_ROUTES = ("/", "/docs", "/docs.json", "/livez", "/readyz", "/healthz", "/metrics", "/metadata")
"""Routes that take no body: a POST there is the color's 405 to give, not a 415."""
JSON = re.compile(rb"application/json[ \t]*(;.*)?", re.IGNORECASE)


class BodyLimit:
    """An ASGI layer refusing bodies over ``max_bytes`` (413), without a length (411), not JSON (415).

    With ``max_rows``, a body to ``rows_route`` holding more rows than that is a 413 too, decided
    before the service parses it (``on_too_many_rows`` counts it).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_rows: int | None = None,
        rows_route: str = "/predict",
        on_too_many_rows: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.rows_route = rows_route
        self.on_too_many_rows = on_too_many_rows

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse by the headers alone; pass everything else through untouched."""
        if scope["type"] == "http" and scope["method"] in BODY_METHODS:
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is None and b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                await _refuse(send, 411, "send Content-Length: chunked bodies have no length to check")
                return
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                limit = f"{self.max_bytes / 1e6:g} MB"
                await _refuse(send, 413, f"body over {limit} (serving.max_body_mb): split the rows")
                return
            api_route = scope["path"] not in GET_ROUTES
            if api_route and not JSON.fullmatch(headers.get(b"content-type", b"").strip()):
                await _refuse(send, 415, "send Content-Type: application/json")
                return
            if (max_rows := self.rows_to_count(scope["path"], length)) is not None:
                await self.rows_then_app(scope, receive, send, max_rows)
                return
        await self.app(scope, receive, send)

    def rows_to_count(self, path: str, length: bytes | None) -> int | None:
        """The rows limit when this body could break it (N+1 rows take 3(N+1) bytes), else None."""
        if self.max_rows is None or path != self.rows_route or length is None or not length.isdigit():
            return None
        return self.max_rows if int(length) >= 3 * (self.max_rows + 1) else None

    async def rows_then_app(self, scope: Scope, receive: Receive, send: Send, max_rows: int) -> None:
        """Read the whole body, count its rows, then refuse it or hand the app the very same bytes.

        Read whole even when refused: bytes left unread when the connection closes reset it, and
        a client still sending would never see the 413.
        """
        counter = RowCounter(max_rows)
        tail = await read_body(receive, counter.feed)
        body = counter.body()
        if counter.over or more_rows_than(body, max_rows):
            if self.on_too_many_rows is not None:
                self.on_too_many_rows()
            limit = f"more than {max_rows} rows in one request (serving.max_rows_per_request)"
            await _refuse(send, 413, f"{limit}: split the request")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False} if tail is None else tail

        await self.app(scope, replay, send)


async def read_body(receive: Receive, feed: Callable[[bytes], None]) -> Message | None:
    """Feed the request's body to ``feed`` chunk by chunk; the message that ended it early, if one did.

    Other requests get the event loop between chunks: a chunk already received is handed over
    without suspending, so a 15 MB body held every other request for its whole upload (a small
    request beside it took ~50 ms instead of ~9).
    """
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return message
        feed(message.get("body", b""))
        if not message.get("more_body", False):
            return None
        await asyncio.sleep(0)


class RowCounter:
    """A body as it arrives, judged by its prefix once that could hold too many rows.

    Once over, the rest is read and dropped, not kept. A prefix that cannot decide (braces in
    text) is tried again when its braces have doubled; the whole body is judged at the end.
    """

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.chunks: list[bytes] = []
        self.braces = 0
        self.next_try = max_rows + 3  # the outer object's brace, then max_rows + 2 rows
        self.over = False

    def feed(self, chunk: bytes) -> None:
        """Keep a chunk, and judge the prefix so far when it could decide."""
        if self.over:
            return
        self.chunks.append(chunk)
        self.braces += chunk.count(b"{")
        if self.braces >= self.next_try:
            self.over = more_rows_than(self.body(), self.max_rows, whole=False)
            self.next_try *= 2

    def body(self) -> bytes:
        """What was kept: the whole body, unless it was refused on the way."""
        if len(self.chunks) > 1:
            self.chunks = [b"".join(self.chunks)]
        return self.chunks[0] if self.chunks else b""


def more_rows_than(body: bytes, max_rows: int, *, whole: bool = True) -> bool:
    """Whether ``{"rows": [...]}`` holds more than ``max_rows`` rows, without parsing it whole.

    Every row is an object, so the body holds at most one ``{`` fewer rows than it holds ``{``
    (braces in text only add). Past that, the prefix up to the ``{`` that would open row
    ``max_rows + 2`` is parsed alone (partial JSON): ``max_rows + 1`` complete rows in it decide.
    Braces in text leave fewer rows in that prefix: it then doubles, at worst to the whole body.
    Anything malformed or shaped otherwise (rows not first) goes on to the service, which counts.
    ``whole=False``: ``body`` is the part of a body received so far.
    """
    wanted = max_rows + 3  # the outer object's brace, then max_rows + 2 rows
    if body.count(b"{") < wanted - 1:
        return False
    end, found = -1, 0
    while True:
        while found < wanted and (end := body.find(b"{", end + 1)) >= 0:
            found += 1
        last = end < 0  # no prefix left to grow: all of ``body`` is parsed
        complete = _complete_rows(body if last else body[: end + 1], partial=not (last and whole))
        if complete is None or complete > max_rows or last:
            return bool(complete and complete > max_rows)
        wanted *= 2


def _complete_rows(prefix: bytes, *, partial: bool) -> int | None:
    """Rows in a body's prefix, the last one not counted when the prefix cuts it; None: unreadable."""
    try:
        parsed = from_json(prefix, allow_partial=partial)
    except ValueError:
        return None
    rows = parsed.get("rows") if isinstance(parsed, dict) else None
    return len(rows) - partial if isinstance(rows, list) else None


async def _refuse(send: Send, status: int, message: str) -> None:
    """An error in the service's own shape (``{"error": ...}``), closing the connection.

    The body is left unread, so the connection cannot carry another request.
    """
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
