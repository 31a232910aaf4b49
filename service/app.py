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

from service.body_limit import BodySizeLimit
from service.errors import install_error_handlers
from service.metrics import Metrics, MetricsMiddleware
from service.routes import linking, meta, similarity
from service.runtime import Runtime, build_runtime
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
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    routes = frozenset(route.path for router in routers for route in router.routes)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=routes)  # outermost: counts 413s too
    return app


STATIC = Path(__file__).parent / "static"


def _serve_page(app: FastAPI) -> None:
    """``GET /``: the page (static files shipped in the package; no build step, no CDN)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")


def create_app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` and multi-worker servers: settings from ``SIMLINK_*``."""
    return create_app(Settings())
