"""A color's own port: its router's key or nothing, and only the router names clients."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from {{ cookiecutter.package_name }}.headers import CLIENT_HEADER
from {{ cookiecutter.package_name }}.serving.guard import RouterOnly

KEY = "router-key"
KEY_SHA256 = hashlib.sha256(KEY.encode()).hexdigest()


async def echo_client(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers the X-Client it was given (``-`` without one)."""
    client = dict(scope["headers"]).get(CLIENT_HEADER.lower().encode(), b"-")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": client})


def get(key_sha256: str | None, path: str, headers: dict[str, str]) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=RouterOnly(echo_client, key_sha256))
        async with httpx.AsyncClient(transport=transport, base_url="http://color") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("headers", "status", "client"),
    [
        ({}, 401, None),
        ({CLIENT_HEADER: "operator"}, 401, None),  # a forged name is no key
        ({"Authorization": "Bearer guessed", CLIENT_HEADER: "operator"}, 401, None),
        ({"Authorization": f"Bearer {KEY}", CLIENT_HEADER: "web-app"}, 200, "web-app"),  # the router
        ({"Authorization": f"bearer {KEY}"}, 200, "-"),
    ],
    ids=["no-key", "forged-client", "wrong-key", "router", "scheme-any-case"],
)
def test_router_only__a_keyed_color_answers_its_router_s_key_only(
    headers: dict[str, str], status: int, client: str | None
) -> None:
    answer = get(KEY_SHA256, "/predict", headers)
    assert answer.status_code == status
    if client is not None:
        assert answer.text == client
    else:
        assert "router" in answer.json()["error"]


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/metrics"])
def test_router_only__health_and_metrics_stay_open(path: str) -> None:
    assert get(KEY_SHA256, path, {}).status_code == 200


def test_router_only__a_server_without_a_key_is_left_open() -> None:
    """Not started by the deploy tooling (``nox -s serve``, a bento run by hand): as before."""
    answer = get(None, "/predict", {CLIENT_HEADER: "web-app"})
    assert (answer.status_code, answer.text) == (200, "web-app")
