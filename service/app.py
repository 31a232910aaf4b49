"""The FastAPI application factory: routes, error handlers, limits, and the engines' lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from service.auth import ApiKeys
from service.errors import install_error_handlers
from service.lifecycle import LoadShedding, RequestLifecycle
from service.observability import Metrics, RequestObserver
from service.request_body import RequestBodyChecks
from service.routes import linking, meta, similarity
from service.runtime import Runtime, build_runtime
from service.schemas import deployment_limits
from service.settings import Settings

DESCRIPTION = """
Fine-grained sentence similarity by optimal transport over contextual token vectors
(Word Mover's and Word Rotator's Distance, solved exactly), with the transport plan as an
explanation of which token moved to which; and generative entity linking / KBQA by beam search
constrained to the names of a knowledge base.
"""


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Builds the app. The engines are loaded when the app starts (its lifespan), unless an
    already built ``runtime`` is given (the CLI does that to report a bad model cleanly)."""
    settings = runtime.settings if runtime else (settings or Settings())
    metrics = runtime.metrics if runtime else Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engines = runtime or await run_in_threadpool(build_runtime, settings, metrics)
        await engines.start()
        app.state.runtime = engines
        try:
            yield
        finally:
            await engines.stop()

    # FastAPIOffline serves /docs and /redoc with Swagger UI and ReDoc from its installed package, not a CDN.
    app = FastAPIOffline(title="simlink", description=DESCRIPTION, version=meta.package_version(), lifespan=lifespan)
    _serve_page(app)
    routers = (similarity.router, linking.router, meta.router)
    for router in routers:
        app.include_router(router)
    install_error_handlers(app)
    _state_limits_in_schema(app, settings)
    # Added innermost first: a request passes the observer (id, times, metrics), then the key check,
    # then load shedding (429 at the door), then the body checks (413, 415, 400), then the deadline
    # and disconnect watch, then the route.
    posted = frozenset(route.path for router in routers for route in router.routes if "POST" in route.methods)
    app.add_middleware(RequestLifecycle, timeout_s=settings.request_timeout_s)
    app.add_middleware(RequestBodyChecks, max_bytes=settings.max_body_bytes, paths=posted)
    app.add_middleware(LoadShedding, engines=ENGINE_OF_ROUTE)
    app.add_middleware(ApiKeys, keys=settings.load_api_keys(), protect_metrics=settings.protect_metrics)
    routes = frozenset(route.path for router in routers for route in router.routes)
    app.add_middleware(RequestObserver, metrics=metrics, routes=routes, json_access_log=settings.log_format == "json")
    return app


STATIC = Path(__file__).parent / "static"
ENGINE_OF_ROUTE = {"/similarity": "similarity", "/similarity/rank": "similarity", "/link-entity": "linker"}
"""Which engine's budget each POST route spends (for shedding load at the door)."""


def _state_limits_in_schema(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI schema states this deployment's limits (most pairs, candidates, beams, characters),
    so a client generated from it never sends what the server refuses for size."""
    build_schema = app.openapi  # FastAPI's, which builds the schema once and keeps it

    def openapi() -> dict:
        schema = build_schema()
        for model, field, key, value in deployment_limits(settings):
            _state_limit(schema["components"]["schemas"][model]["properties"][field], key, value)
        return schema

    app.openapi = openapi


_TYPE_OF_LIMIT = {"maxItems": "array", "maxLength": "string", "maximum": "integer"}


def _state_limit(prop: dict, key: str, value: int) -> None:
    """Sets a limit on a property's schema, or on the branch of its ``anyOf`` that the limit is about
    (``candidates`` is a list of ids or ``"auto"``: ``maxItems`` goes on the list)."""
    branches = [branch for branch in prop.get("anyOf", []) if branch.get("type") == _TYPE_OF_LIMIT[key]]
    for target in branches or [prop]:
        target[key] = value


def _serve_page(app: FastAPI) -> None:
    """``GET /``: the page (static files shipped in the package; no build step, no CDN)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")


def create_app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` and multi-worker servers: settings from ``SIMLINK_*``."""
    return create_app(Settings())
