"""``GET /metadata`` for any BentoML service: what it serves and which instance answers.

BentoML API routes are POST-only, so this is a tiny ASGI layer in front of them. It is its own
module, importing no model stack, because every service the deploy tooling starts must answer it:
the tooling waits for the ``instance`` it named (``SERVING_INSTANCE``), and the deployment tests'
stand-in services mount this same layer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import bentoml
from starlette.types import ASGIApp, Receive, Scope, Send

NOT_ALLOWED = json.dumps({"error": "GET /metadata only"}).encode()


class MetadataEndpoint:
    """``GET /metadata`` as a tiny ASGI layer: BentoML API routes are POST-only."""

    def __init__(self, app: ASGIApp, payload: dict[str, Any]) -> None:
        self.app = app
        context = bentoml.server_context
        built = context.bento_version not in ("", "not available")
        bento = f"{context.bento_name}:{context.bento_version}" if built else ""  # empty from source
        instance = os.environ.get("SERVING_INSTANCE", "")
        self.body = json.dumps(payload | {"bento": bento, "instance": instance}).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the metadata route; pass everything else through untouched."""
        if scope["type"] == "http" and scope["path"] == "/metadata":
            status, body = (200, self.body) if scope["method"] in ("GET", "HEAD") else (405, NOT_ALLOWED)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"allow", b"GET"),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
            return
        await self.app(scope, receive, send)
