"""Who may call a color's own port: the router, and the operators' tooling holding the same key.

The router names each caller in ``X-Client`` (from the front door's key, ``operator`` on the
preview door), and monitoring leaves operator traffic out. A color's port is on loopback, but
any local process reaches it: a request sent there with ``X-Client: operator`` was filed as
operator traffic, and no key was asked. So a color started with ``SERVING_KEY_SHA256`` answers
only requests whose ``Authorization: Bearer <key>`` hashes to it (the router adds the
environment's operator key to every request it forwards, see ``deployment/router.py``); anything
else is a 401, health and ``/metrics`` excepted (load balancers probe health; a Prometheus on
the host scrapes each color's counters, which hold no prediction and name nobody). A server
started without one (``nox -s serve``, a bento run by hand) is not behind this project's router
and is left as it was: open, taking ``X-Client`` as sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = ("/livez", "/readyz", "/healthz", "/metrics")
BEARER = b"bearer "


def presented_key_sha256(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The SHA-256 (hex) of the bearer key a request presents, or None without one."""
    for name, value in headers:
        if name == b"authorization" and value[: len(BEARER)].lower() == BEARER:
            return hashlib.sha256(value[len(BEARER) :].strip()).hexdigest()
    return None


class RouterOnly:
    """An ASGI layer: with ``key_sha256``, 401 to a request without that key; without one, a pass-through."""

    def __init__(self, app: ASGIApp, key_sha256: str | None) -> None:
        self.app = app
        self.key_sha256 = key_sha256.strip().lower() if key_sha256 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a request without the key, or pass it through untouched."""
        if self.key_sha256 is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        presented = presented_key_sha256(scope["headers"]) or ""
        if not hmac.compare_digest(presented, self.key_sha256):
            await _unauthorized(send)
            return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    """401 in the service's error shape, naming the way in."""
    body = json.dumps(
        {"error": "this port answers its router only: call the front door (or the preview door, with a key)"}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
