"""The body rules before the service: rows counted without parsing the whole body."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from {{ cookiecutter.package_name }}.serving.body import BodyLimit, RowCounter, more_rows_than

ROW = {"tenure_months": 12, "contract": "month-to-month", "notes": None}


def body(rows: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"rows": rows, **extra}, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("rows", "limit", "over"),
    [
        ([ROW] * 10, 10, False),  # at the limit
        ([ROW] * 11, 10, True),  # one over
        ([ROW] * 11, 11, False),
        ([ROW] * 500, 10, True),  # far over: decided from the prefix of the first rows
        ([dict(ROW, contract="{ { braces } in text {")] * 10, 10, False),  # braces in text are no rows
        ([dict(ROW, contract="{ { braces } in text {")] * 11, 10, True),  # the prefix grows to see them
        ([dict(ROW, contract='"{\\"{')] * 30, 10, True),  # escaped quotes before braces in text
    ],
)
def test_more_rows_than__counts_rows_not_braces(rows: list[dict[str, Any]], limit: int, over: bool) -> None:
    assert more_rows_than(body(rows), limit) is over


def test_more_rows_than__leaves_what_it_cannot_read_to_the_service() -> None:
    assert not more_rows_than(b'{"rows": [{], {}, {}, {}, {}]}', 2)  # malformed: the service's 400
    assert not more_rows_than(body([ROW] * 50)[::-1], 2)  # not JSON at all
    assert not more_rows_than(json.dumps({"meta": [{}] * 50, "rows": [ROW]}).encode(), 10)  # rows not first


def fed(sent: bytes, max_rows: int, size: int = 64) -> RowCounter:
    counter = RowCounter(max_rows)
    for start in range(0, len(sent), size):
        counter.feed(sent[start : start + size])
    return counter


def test_row_counter__decides_from_the_first_chunks_and_keeps_no_more() -> None:
    sent = body([ROW] * 500)
    counter = fed(sent, 10)
    assert counter.over
    assert len(counter.body()) < len(sent) // 10  # the prefix that decided, not the rest


@pytest.mark.parametrize(
    "rows", [[ROW] * 10, [dict(ROW, contract="{ { {")] * 10], ids=["at-the-limit", "braces-in-text"]
)
def test_row_counter__a_body_within_the_limit_is_kept_whole(rows: list[dict[str, Any]]) -> None:
    sent = body(rows)
    counter = fed(sent, 10)
    assert not counter.over
    assert counter.body() == sent
    assert not more_rows_than(counter.body(), 10)


class Recorder:
    """The app behind the layer: what it received."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def post(layer: BodyLimit, content: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=layer)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://color") as client:
            return await client.post(
                "/predict", content=content, headers={"content-type": "application/json"}
            )

    import asyncio  # noqa: PLC0415

    return asyncio.run(send())


def test_body_limit__too_many_rows_are_a_413_the_service_never_sees() -> None:
    refused: list[int] = []
    app = Recorder()
    layer = BodyLimit(app, max_bytes=10**7, max_rows=10, on_too_many_rows=lambda: refused.append(1))
    answer = post(layer, body([ROW] * 11))
    assert answer.status_code == 413
    assert answer.json() == {
        "error": "more than 10 rows in one request (serving.max_rows_per_request): split the request"
    }
    assert (app.bodies, refused) == ([], [1])


def test_body_limit__rows_within_the_limit_reach_the_service_byte_for_byte() -> None:
    app = Recorder()
    sent = body([dict(ROW, contract="{")] * 10)
    assert post(BodyLimit(app, max_bytes=10**7, max_rows=10), sent).status_code == 200
    assert app.bodies == [sent]
