"""Body checks before anything parses a body: 413 (declared or streamed), 415, 400 for what is not JSON."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.request_body import RequestBodyChecks


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


APP = RequestBodyChecks(Starlette(routes=[Route("/", echo_size, methods=["POST", "GET"])]), max_bytes=1000)
JSON = {"content-type": "application/json"}


async def post(content, headers=JSON) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://test") as client:
        return await client.post("/", content=content, headers=headers)


def test_json_bodies_within_the_limit_pass_whole() -> None:
    body = b'{"a": "' + b"x" * 991 + b'"}'
    response = asyncio.run(post(body))
    assert response.status_code == 200 and response.json() == {"size": 1000}


def test_declared_oversize_body_is_refused() -> None:
    response = asyncio.run(post(b"x" * 1001))
    assert response.status_code == 413 and "1000 bytes" in response.json()["message"]


def test_streamed_oversize_body_is_refused() -> None:
    async def chunks():
        for _ in range(5):
            yield b"x" * 300

    response = asyncio.run(post(chunks()))
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_declared_json_gets_415(content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = asyncio.run(post(b"{}", headers))
    assert response.status_code == 415 and response.json()["message"].startswith("content-type: expected")


def test_json_with_a_charset_parameter_is_json() -> None:
    response = asyncio.run(post(b"{}", {"content-type": "application/json; charset=utf-8"}))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"pairs": [}', "invalid JSON at line 1 column 12"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"x": {"b": 1, "b": 1}}', "duplicate key 'b'"),
    ],
)
def test_what_is_not_json_gets_400_naming_the_body(body: bytes, says: str) -> None:
    response = asyncio.run(post(body))
    payload = response.json()
    assert response.status_code == 400 and payload["message"].startswith("body: ") and says in payload["message"]
    assert payload["detail"][0]["field"] == "body"


def test_requests_without_a_body_pass_untouched() -> None:
    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://test") as client:
            return await client.get("/")

    assert asyncio.run(get()).status_code == 200
