"""What the server tells about its work: Prometheus metrics, request ids, stage-time headers, access logs.

Every request gets an id (``x-request-id``, echoed when the client sends a sane one, made otherwise),
and its answer carries the time it spent in each stage (``x-queue-time-ms``, ``x-encode-time-ms``,
``x-transport-time-ms``, ``x-generate-time-ms``, ``x-total-time-ms``), as text-embeddings-inference
does. The same times feed histograms in ``/metrics``, with counters of requests refused or
cancelled by reason and of work dropped before it was computed. Label sets are bounded: routes
(unknown paths are ``other``), statuses, stages, reasons; never a text.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.timing import STAGES, open_stage_times
from service.errors import RECORD_KEY, RequestRecord

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("simlink.access")


class Metrics:
    """The app's collectors, in a registry of their own so that several apps can coexist."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "simlink_http_requests", "HTTP requests by route and status.", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "simlink_http_request_seconds", "HTTP request latency by route.", ["route"], registry=self.registry
        )
        self.stage_seconds = Histogram(
            "simlink_stage_seconds",
            "Time requests spent per stage (queue, encode, transport, generate).",
            ["stage"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "simlink_rejected_requests", "Requests refused, by reason.", ["reason"], registry=self.registry
        )
        self.cancelled = Counter(
            "simlink_cancelled_requests",
            "Requests whose work was dropped: client_disconnected or deadline.",
            ["reason"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "simlink_dropped_items",
            "Items (texts, queries) of abandoned requests taken out of a queue before being computed.",
            ["engine"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "simlink_model_batch_items",
            "Items per model call after merging concurrent requests.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "simlink_admitted_cost",
            "Cost admitted and not finished (tokens for the encoder, beams for the linker).",
            ["engine"],
            registry=self.registry,
        )


class RequestObserver:
    """ASGI middleware, outermost: request id, stage-time headers, metrics and the JSON access log."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: frozenset[str], json_access_log: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.json_access_log = json_access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        record = RequestRecord(given if _REQUEST_ID.match(given) else uuid.uuid4().hex)
        scope[RECORD_KEY] = record
        times = open_stage_times()
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = record.request_id
                for stage, seconds in times.seconds.items():
                    headers[f"x-{stage}-time-ms"] = f"{1000 * seconds:.1f}"
                headers["x-total-time-ms"] = f"{1000 * (time.perf_counter() - started):.1f}"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            shown = status or (499 if record.cancelled == "client_disconnected" else 500)
            self._count(scope, record, str(shown), seconds, times.seconds)
            if self.json_access_log:
                self._log(scope, record, shown, seconds, times.seconds)

    def _count(self, scope: Scope, record: RequestRecord, status: str, seconds: float, stages: dict) -> None:
        route = scope["path"] if scope["path"] in self.routes else "other"
        self.metrics.requests.labels(route, status).inc()
        self.metrics.latency.labels(route).observe(seconds)
        for stage in STAGES:
            if stage in stages:
                self.metrics.stage_seconds.labels(stage).observe(stages[stage])
        if record.rejected:
            self.metrics.rejected.labels(record.rejected).inc()
        if record.cancelled:
            self.metrics.cancelled.labels(record.cancelled).inc()

    @staticmethod
    def _log(scope: Scope, record: RequestRecord, status: int, seconds: float, stages: dict) -> None:
        client = scope.get("client")
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "request_id": record.request_id,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "ms": round(1000 * seconds, 1),
            **{f"{stage}_ms": round(1000 * value, 1) for stage, value in stages.items()},
            "client": client[0] if client else None,
        }
        if record.rejected:
            line["rejected"] = record.rejected
        if record.cancelled:
            line["cancelled"] = record.cancelled
        access_log.info(json.dumps(line))
