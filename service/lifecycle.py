"""Deadlines, disconnects and load shedding: work nobody waits for is dropped, work nobody can take is refused.

Each POST request runs with a deadline (``SIMLINK_REQUEST_TIMEOUT_S``, or less when the request asks
with the header ``x-request-timeout: SECONDS``) and is watched for its client going away. Either way
the request's task is cancelled: a request still queued for a batch is taken out of it
(:mod:`models.batching` counts what it drops) and transport work stops between pairs. A request past
its deadline gets 504; a client that left gets nothing and is logged with status 499.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.admission import OverloadedError, ShuttingDownError
from service.errors import entry, note_rejection, request_record, send_busy_refusal, send_error

TIMEOUT_HEADER = "x-request-timeout"


class RequestLifecycle:
    """ASGI middleware for POST requests; sits inside :class:`service.request_body.RequestBodyChecks`,
    so the body has been read whole and ``receive`` only reports the client leaving."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        timeout = self._timeout(scope)
        if isinstance(timeout, str):
            note_rejection(scope, "bad_header")
            await send_error(
                send, 400, f"{TIMEOUT_HEADER}: {timeout}", [entry(("header", TIMEOUT_HEADER), timeout, "value_error")]
            )
            return
        body = await receive()
        gone = asyncio.Event()
        started = False

        async def app_receive() -> Message:
            nonlocal body
            if body is not None:
                message, body = body, None
                return message
            await gone.wait()
            return {"type": "http.disconnect"}

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        work = asyncio.ensure_future(self.app(scope, app_receive, tracked_send))
        watch = asyncio.ensure_future(_wait_for_disconnect(receive, gone))
        try:
            done, _ = await asyncio.wait({work, watch}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
        if work in done:
            work.result()  # re-raise what the app raised
            return
        await _cancel(work)
        record = request_record(scope)
        if gone.is_set():
            if record is not None:
                record.cancelled = "client_disconnected"
            return
        if record is not None:
            record.cancelled = "deadline"
        if not started:
            message = f"took longer than its deadline of {timeout:g} s (SIMLINK_REQUEST_TIMEOUT_S or {TIMEOUT_HEADER})"
            await send_error(send, 504, f"request {message}")

    def _timeout(self, scope: Scope) -> float | str:
        """The request's deadline in seconds, or what is wrong with the header asking for one."""
        asked = Headers(scope=scope).get(TIMEOUT_HEADER)
        if asked is None:
            return self.timeout_s
        try:
            seconds = float(asked)
        except ValueError:
            return f"is {asked!r}, not a number of seconds"
        if not 0 < seconds < float("inf"):
            return f"is {asked!r}; it must be a positive number of seconds"
        return min(seconds, self.timeout_s)


async def _wait_for_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class LoadShedding:
    """ASGI middleware: while an engine's budget is spent, refuse its routes' POSTs at once (429 with
    Retry-After; 503 while draining), before their body is parsed or their texts tokenized. What it
    lets through is still admitted exactly by the engine (:mod:`models.admission`)."""

    def __init__(self, app: ASGIApp, engines: dict[str, str]) -> None:
        self.app = app
        self.engines = engines  # route path -> the runtime's attribute holding that route's engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self.engines.get(scope.get("path", "")) if scope["type"] == "http" else None
        runtime = getattr(scope["app"].state, "runtime", None) if name and scope["method"] == "POST" else None
        engine = getattr(runtime, name, None) if runtime is not None and name else None
        if engine is not None and engine.admission.closed:
            await send_busy_refusal(scope, send, ShuttingDownError())
            return
        if engine is not None and engine.admission.sheds():
            await send_busy_refusal(scope, send, OverloadedError(engine.admission.retry_after()))
            return
        await self.app(scope, receive, send)
