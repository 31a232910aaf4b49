"""FastAPI dependencies that hand routes the running engines."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The runtime the app's lifespan built (async: FastAPI would run a plain function in a
    worker thread, a needless hop on every request)."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
