"""Request body rules, enforced from the headers before a byte of the body is read.

BentoML reads and parses a whole body before the service's rows limit can answer: a 39 MB body
kept a worker parsing for 5 s while the requests behind it waited. This ASGI layer answers 413
from ``Content-Length`` at once, 411 to a chunked body, which announces no length to judge, and
415 to a POST that is not JSON (BentoML answered ``multipart/form-data`` without a boundary with
a 500). The router holds the same rules (``router.max_body_mb``); these guard a color reached
directly, and like :mod:`.metadata` this module imports no model stack.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Receive, Scope, Send

BODY_METHODS = {"POST", "PUT", "PATCH"}
GET_ROUTES = ("/", "/docs", "/docs.json", "/livez", "/readyz", "/healthz", "/metrics", "/metadata")
"""Routes that take no body: a POST there is the color's 405 to give, not a 415."""
JSON = re.compile(rb"application/json[ \t]*(;.*)?", re.IGNORECASE)


class BodyLimit:
    """An ASGI layer refusing bodies over ``max_bytes`` (413), without a length (411), not JSON (415)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
        await self.app(scope, receive, send)


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
