"""``GET /docs.json`` that describes every answer the service and its router can give.

BentoML's generated OpenAPI declares a 400 whose ``detail`` is a string, while its validation
errors carry pydantic's list of field errors; its request bodies are optional; it does not know
the refusals before the model (411, 413, 415, 503 from the service; 401, 403, 429 from the
router), or ``GET /metadata``. A client generated from the document, or schemathesis checking
responses against it, would call those answers violations. This ASGI layer lets BentoML write
the document, then amends it with what really answers.
"""

from __future__ import annotations

import json
from copy import deepcopy
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS = "/docs.json"
REF = "#/components/schemas/{}"

FIELD_ERROR = {
    "type": "object",
    "title": "FieldError",
    "description": "One field that failed validation: where (``loc``), why (``msg``, ``type``).",
    "required": ["loc", "msg", "type"],
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
}
REFUSAL = {
    "type": "object",
    "title": "Refusal",
    "description": "A request refused before the model: the message says what to change.",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
METADATA = {
    "type": "object",
    "title": "Metadata",
    "description": "What this color serves (model, lineage, bento) and which instance answers.",
    "required": ["model_name", "model_version", "features", "instance"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "run_id": {"type": "string"},
        "data_digest": {"type": "string"},
        "git_commit": {"type": "string"},
        "bento": {"type": "string"},
        "instance": {"type": "string"},
        "task": {"type": "string"},
        "features": {"type": "array", "items": {"type": "string"}},
        "batching": {"type": "boolean"},
        "profiling": {"type": "boolean"},
    },
}

# Refusals before the model. The service answers them in JSON (``Refusal``), the router in plain
# text; either may answer 411, 413 and 415, so both media types are declared for every one.
REFUSALS = {
    401: "No key, or an unknown key, at a front door with access on (router)",
    411: "A chunked body: send Content-Length",
    413: "Too many rows (serving.max_rows_per_request) or too large a body (max_body_mb)",
    415: "Not application/json",
    429: "Over the key's rate; Retry-After says when to retry (router)",
    503: "The batch queue is beyond the latency budget, or no color is up: retry after a moment",
}
OPERATORS_ONLY = "An operators' path at a front door with access on (router)"


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(schema)}}},
    }


def _refusal(description: str) -> dict[str, Any]:
    content = {
        "application/json": {"schema": {"$ref": REF.format("Refusal")}},
        "text/plain": {"schema": {"type": "string"}},
    }
    return {"description": description, "content": content}


def amend(spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's document plus the answers it leaves out; the input is not changed."""
    spec = deepcopy(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(FieldError=FIELD_ERROR, Refusal=REFUSAL, Metadata=METADATA)
    if "InvalidArgument" in schemas:
        schemas["InvalidArgument"]["properties"]["detail"] = {
            "title": "Error Detail",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": REF.format("FieldError")}}],
        }
    paths = spec.setdefault("paths", {})
    for item in paths.values():
        if "post" in item:
            if "requestBody" in item["post"]:
                item["post"]["requestBody"]["required"] = True
            responses = item["post"].setdefault("responses", {})
            responses.update({str(code): _refusal(text) for code, text in REFUSALS.items()})
    if "/metrics" in paths and "get" in paths["/metrics"]:
        paths["/metrics"]["get"].setdefault("responses", {})["403"] = _refusal(OPERATORS_ONLY)
    paths["/metadata"] = {
        "get": {
            "tags": ["Infrastructure"],
            "description": "What this color serves and which instance answers (operators only).",
            "operationId": "metadata",
            "responses": {"200": _json("Successful Response", "Metadata"), "403": _refusal(OPERATORS_ONLY)},
        }
    }
    return spec


class OpenApiAmendments:
    """Pass ``GET /docs.json`` through BentoML, then replace its body with :func:`amend`'s."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer the document's response (one small JSON body) and send the amended one."""
        if scope["type"] != "http" or scope["path"] != DOCS or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, collect)
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = json.dumps(amend(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
