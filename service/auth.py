"""Opt-in API keys: ``Authorization: Bearer KEY`` on every route but the open ones.

Off unless ``SIMLINK_API_KEYS`` or ``SIMLINK_API_KEYS_FILE`` is set. Open routes: liveness and
readiness (a load balancer has no key), the page and the API docs (they show nothing a key guards),
and ``/metrics`` unless ``SIMLINK_PROTECT_METRICS``. A key is compared with every configured key in
constant time, and no key, given or configured, is ever logged.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import note_rejection, send_error

OPEN_PATHS = frozenset({"/health", "/ready", "/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
OPEN_PREFIXES = ("/static/", "/static-offline-docs/")


def key_matches(given: str, keys: tuple[str, ...]) -> bool:
    """Whether ``given`` is one of ``keys``; every key is compared, each in constant time."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given.encode(), key.encode())
    return matched


class ApiKeys:
    """ASGI middleware: 401 without a bearer key, 403 with a wrong one."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...], protect_metrics: bool = False) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = OPEN_PATHS if protect_metrics else OPEN_PATHS | {"/metrics"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not self.keys or path in self.open_paths or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            note_rejection(scope, "unauthorized")
            message = "authorization: this server needs an API key: send 'Authorization: Bearer KEY'"
            await send_error(send, 401, message, headers=[("www-authenticate", "Bearer")])
            return
        if not key_matches(given.strip(), self.keys):
            note_rejection(scope, "forbidden")
            await send_error(send, 403, "authorization: the API key is not valid on this server")
            return
        await self.app(scope, receive, send)
