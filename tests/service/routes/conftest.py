"""In-process route tests: the real app (``create_app``) over a real small runtime (the embedded
encoder and the session's tiny linker), called through httpx's ASGI transport, no server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch
from threadpoolctl import threadpool_limits

from models.admission import Admission
from models.similarity import AsyncSimilarityEngine
from service.app import create_app
from service.observability import Metrics
from service.runtime import Runtime, build_runtime
from service.settings import Settings
from tests.conftest import TinyLinker

LIMITS = {
    "dtype": "fp32",  # answers are compared with the fp32 engine of the session's fixture
    "max_pairs": 4,
    "max_candidates": 6,
    "max_tokens": 32,
    "max_beams": 6,
    "max_link_chars": 200,
    "max_cosine_cells": 2000,
}


@pytest.fixture(scope="session")
def runtime(tiny_linker: TinyLinker) -> Iterator[Runtime]:
    """Built once; the process-wide settings it makes (threads, BLAS, tokenizer) are restored after."""
    settings = Settings(link_model=str(tiny_linker.model_dir), link_index=tiny_linker.index_dir, **LIMITS)
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as environment, threadpool_limits(limits=None):
        environment.setenv("TOKENIZERS_PARALLELISM", "true")
        try:
            yield build_runtime(settings, Metrics())
        finally:
            torch.set_num_threads(threads)


Request = tuple[str, str, dict[str, Any]]


async def _exchange(
    runtime: Runtime, requests: list[Request], concurrently: bool = False, before: Any = None
) -> list[httpx.Response]:
    """Runs the app's lifespan around ``requests``, sent one after another or all at once;
    ``before(runtime)`` runs first, inside the lifespan."""
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):  # starts and stops the engines' batch workers
        if before is not None:
            before(runtime)
            await asyncio.sleep(0.05)  # what before() schedules on the loop runs first
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://simlink.test") as client:
            if concurrently:
                return list(await asyncio.gather(*(client.request(m, p, **o) for m, p, o in requests)))
            return [await client.request(method, path, **options) for method, path, options in requests]


class Client:
    """Sends requests to the app, each batch of them inside one run of the app's lifespan."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.send([("POST", path, {"json": body})])[0]

    def get(self, path: str) -> httpx.Response:
        return self.send([("GET", path, {})])[0]

    def send(self, requests: list[Request], concurrently: bool = False, before: Any = None) -> list[httpx.Response]:
        return asyncio.run(_exchange(self.runtime, requests, concurrently, before))


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return Client(runtime)


@pytest.fixture
def client_without_linker(runtime: Runtime) -> Client:
    return Client(dataclasses.replace(runtime, linker=None))


def client_with(runtime: Runtime, **overrides: Any) -> Client:
    """A client of an app over the same loaded models with other settings (limits, budgets, keys,
    deadlines): a new similarity façade with its own admission, no linker."""
    settings = runtime.settings.model_copy(update=overrides)
    admission = Admission(settings.queue_budget_tokens, settings.max_request_tokens, "tokens")
    similarity = AsyncSimilarityEngine(runtime.similarity.engine, workers=1, admission=admission)
    return Client(dataclasses.replace(runtime, settings=settings, similarity=similarity, linker=None))


def assert_names_field(response: httpx.Response, field: str) -> None:
    """A 422 whose message starts with the field and whose detail lists it."""
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["message"].startswith(f"{field}:"), payload["message"]
    assert field in [entry["field"] for entry in payload["detail"]]
