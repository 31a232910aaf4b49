"""One shape for every error response: ``{"message": ..., "detail": ...}``.

Validation errors (422) name the offending field in the message, e.g.
``pairs[2].a: has 300 tokens, more than the limit of 256``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

Location = Sequence[str | int]


class ErrorResponse(BaseModel):
    """Every error: ``message`` for people, ``detail`` for programs (one entry per bad field)."""

    message: str
    detail: list[dict] | str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "The request body is too large."},
    422: {"model": ErrorResponse, "description": "A field is invalid; the message names it."},
}
"""The error statuses every POST route can answer, for its OpenAPI ``responses``."""


class FieldError(Exception):
    """A request field that passed schema validation but breaks a deployment limit."""

    def __init__(self, location: Location, message: str, kind: str = "value_error") -> None:
        super().__init__(message)
        self.location = tuple(location)
        self.message = message
        self.kind = kind


def field_path(location: Location) -> str:
    """``("body", "pairs", 2, "a") -> "pairs[2].a"``."""
    path = ""
    for part in location:
        if part == "body" and not path:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _entry(location: Location, message: str, kind: str) -> dict:
    return {"loc": list(location), "msg": message, "type": kind, "field": field_path(location)}


def _validation_response(entries: list[dict]) -> JSONResponse:
    message = "; ".join(f"{e['field']}: {e['msg']}" for e in entries)
    return JSONResponse(status_code=422, content={"message": message, "detail": entries})


async def _on_request_validation(_: Request, error: RequestValidationError) -> JSONResponse:
    entries = []
    for item in error.errors():
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        entries.append(_entry(item.get("loc", ()), message, str(item.get("type", "value_error"))))
    return _validation_response(entries)


async def _on_field_error(_: Request, error: FieldError) -> JSONResponse:
    return _validation_response([_entry(("body", *error.location), error.message, error.kind)])


async def _on_http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(status_code=error.status_code, content={"message": str(error.detail)}, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Registers the handlers that give every error the same JSON shape."""
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(FieldError, _on_field_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
