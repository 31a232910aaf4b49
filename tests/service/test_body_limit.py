"""Oversize bodies get 413, declared or streamed, before the app sees them."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.body_limit import BodySizeLimit


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


APP = BodySizeLimit(Starlette(routes=[Route("/", echo_size, methods=["POST"])]), max_bytes=1000)


async def post(content) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://test") as client:
        return await client.post("/", content=content)


def test_small_bodies_pass_whole() -> None:
    response = asyncio.run(post(b"x" * 1000))
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
