"""Checks a request body before anything parses it: size (413), content type (415), UTF-8 and JSON (400).

A declared ``Content-Length`` over the limit is refused at once; a body sent without one (chunked)
is counted as it arrives and refused as soon as it passes the limit. A body that is not JSON is a
400 naming ``body`` (with the line and column), never a 422 for a field: that includes a JSON object
with a key given twice, which a JSON parser would otherwise settle silently by keeping the last.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import entry, note_rejection, send_error

JSON_TYPES = ("application/json",)


class RequestBodyChecks:
    """ASGI middleware over POST requests to ``paths`` (the routes that take a body); anything else goes
    on to the router, which answers 404 or 405 as it should."""

    def __init__(self, app: ASGIApp, max_bytes: int, paths: frozenset[str] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths  # the routes that take a JSON body (None: every path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        taken = self.paths is None or scope.get("path") in self.paths
        if scope["type"] != "http" or scope["method"] != "POST" or not taken:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, send)
            return
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in JSON_TYPES:
            note_rejection(scope, "unsupported_media_type")
            shown = media_type or "none"
            await send_error(send, 415, f"content-type: expected application/json, got {shown}")
            return
        body = await self._read_within_limit(receive)
        if body is None:
            await self._too_large(scope, send)
            return
        problem = json_problem(body)
        if problem is not None:
            note_rejection(scope, "malformed_body")
            await send_error(send, 400, f"body: {problem}", [entry(("body",), problem, "json_invalid")])
            return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        note_rejection(scope, "body_too_large")
        await send_error(send, 413, f"request body is larger than {self.max_bytes} bytes (SIMLINK_MAX_BODY_BYTES)")

    async def _read_within_limit(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate key {duplicates[0]!r} in one object")
    return dict(pairs)


def json_problem(body: bytes) -> str | None:
    """What is wrong with ``body`` as a JSON document (not UTF-8, malformed, duplicate keys), or None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not UTF-8 (byte {error.start}: {error.reason})"
    try:
        json.loads(text, object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError as error:
        return f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
    except ValueError as error:
        return str(error)
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the whole body first, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
