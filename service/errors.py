"""One shape for every error response: ``{"message": ..., "detail": ...}``.

Validation errors (422) name the offending field in the message, e.g.
``pairs[2].a: has 300 tokens, more than the limit of 256``; a body that is not JSON at all is 400
naming ``body``. The middlewares send their errors through :func:`send_error`, the routes through
the handlers installed here, so both look the same. Each refusal is also given a reason that
``/metrics`` counts (:func:`note_rejection`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope, Send

from models.admission import OverloadedError, ShuttingDownError, TooMuchWorkError

Location = Sequence[str | int]


class ErrorResponse(BaseModel):
    """Every error: ``message`` for people, ``detail`` for programs (one entry per bad field)."""

    message: str
    detail: list[dict] | str | None = None


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("The body is not JSON (not UTF-8, malformed, or with a duplicate key); the message says where."),
    401: _documented("API keys are on and the request has no 'Authorization: Bearer KEY' header."),
    403: _documented("The API key is not one of the server's."),
    413: _documented(
        "The body is larger than SIMLINK_MAX_BODY_BYTES, or the request needs more work than one request may."
    ),
    415: _documented("The content type is not application/json."),
    422: _documented("A field is invalid; the message names it."),
    429: _documented("The server is at capacity; the Retry-After header says when to try again."),
    503: _documented("The server is shutting down (Retry-After), or a required engine is not configured."),
    504: _documented("The request took longer than its deadline (SIMLINK_REQUEST_TIMEOUT_S or x-request-timeout)."),
}
"""The error statuses a POST route can answer, for its OpenAPI ``responses``."""


@dataclass
class RequestRecord:
    """What the middlewares and handlers learn about one request, read by the metrics and the access log."""

    request_id: str
    rejected: str | None = None  # why the request was refused (overloaded, unauthorized, ...)
    cancelled: str | None = None  # why its work was dropped (client_disconnected, deadline)


RECORD_KEY = "simlink.request"


def request_record(scope: Scope) -> RequestRecord | None:
    return scope.get(RECORD_KEY)


def note_rejection(scope: Scope, reason: str) -> None:
    """Marks the request as refused for ``reason`` (counted in ``simlink_rejected_requests_total``)."""
    record = request_record(scope)
    if record is not None:
        record.rejected = reason


def error_body(message: str, detail: list[dict] | str | None = None) -> dict[str, Any]:
    return {"message": message} if detail is None else {"message": message, "detail": detail}


async def send_error(
    send: Send, status: int, message: str, detail: list[dict] | None = None, headers: Sequence[tuple[str, str]] = ()
) -> None:
    """Sends an error response from ASGI middleware, in the shape of every other error."""
    content = json.dumps(error_body(message, detail)).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *((name.encode(), value.encode()) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})


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


def entry(location: Location, message: str, kind: str) -> dict:
    """One ``detail`` entry: where (as ``loc`` and as the ``field`` path a client wrote), what, which kind."""
    return {"loc": list(location), "msg": message, "type": kind, "field": field_path(location)}


def _validation_response(entries: list[dict], status: int = 422) -> JSONResponse:
    message = "; ".join(f"{e['field']}: {e['msg']}" for e in entries)
    return JSONResponse(status_code=status, content=error_body(message, entries))


_UNION_MEMBER = re.compile(r"^(bool|int|float|str|none|(list|dict)(\[.*\])?|literal\[.*\]|function-\w+\[.*\])$")
_MESSAGES = {
    "string_pattern_mismatch": "must contain a character other than white space, control or zero-width characters",
}


def _field_location(location: Sequence[str | int]) -> tuple[str | int, ...]:
    """The field a client wrote: pydantic's union-member tags (``alignment.bool``) left out."""
    return tuple(part for part in location if not (isinstance(part, str) and _UNION_MEMBER.match(part)))


async def _on_request_validation(_: Request, error: RequestValidationError) -> JSONResponse:
    merged: dict[tuple, dict] = {}
    for item in error.errors():
        kind = str(item.get("type", "value_error"))
        message = _MESSAGES.get(kind) or str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        location = ("body",) if kind == "json_invalid" else _field_location(item.get("loc", ()))  # no byte offsets
        if location in merged:  # one field failing every member of a union: one entry
            merged[location]["msg"] += f", or {message[:1].lower()}{message[1:]}"
        else:
            merged[location] = entry(location, message, kind)
    entries = list(merged.values())
    malformed = any(e["type"] == "json_invalid" for e in entries)
    return _validation_response(entries, 400 if malformed else 422)


async def _on_field_error(_: Request, error: FieldError) -> JSONResponse:
    return _validation_response([entry(("body", *error.location), error.message, error.kind)])


async def _on_http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(status_code=error.status_code, content=error_body(str(error.detail)), headers=error.headers)


def busy_refusal(error: OverloadedError | ShuttingDownError) -> tuple[int, str, list[tuple[str, str]]]:
    """How the server answers when it cannot take work now: status, the reason ``/metrics`` counts,
    and the ``Retry-After`` header (from the routes' handlers and from load shedding at the door)."""
    if isinstance(error, OverloadedError):
        return 429, "overloaded", [("retry-after", str(error.retry_after))]
    return 503, "draining", [("retry-after", "1")]


async def send_busy_refusal(scope: Scope, send: Send, error: OverloadedError | ShuttingDownError) -> None:
    """:func:`busy_refusal` sent from ASGI middleware."""
    status, reason, headers = busy_refusal(error)
    note_rejection(scope, reason)
    await send_error(send, status, str(error), headers=headers)


async def _on_busy(request: Request, error: OverloadedError | ShuttingDownError) -> JSONResponse:
    status, reason, headers = busy_refusal(error)
    note_rejection(request.scope, reason)
    return JSONResponse(status_code=status, content=error_body(str(error)), headers=dict(headers))


async def _on_too_much_work(request: Request, error: TooMuchWorkError) -> JSONResponse:
    note_rejection(request.scope, "too_much_work")
    message = f"{error} (SIMLINK_MAX_REQUEST_TOKENS); send fewer or shorter texts"
    return JSONResponse(
        status_code=413, content=error_body(f"body: {message}", [entry(("body",), message, "too_much_work")])
    )


def install_error_handlers(app: FastAPI) -> None:
    """Registers the handlers that give every error the same JSON shape."""
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(FieldError, _on_field_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(OverloadedError, _on_busy)
    app.add_exception_handler(ShuttingDownError, _on_busy)
    app.add_exception_handler(TooMuchWorkError, _on_too_much_work)
