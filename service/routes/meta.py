"""``GET /health``, ``GET /info`` and ``GET /metrics``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from models.loader import torch_threads
from models.similarity.methods import DEFAULT_METHOD, METHODS
from service.dependencies import RuntimeDep
from service.errors import ErrorResponse, error_body
from service.runtime import Runtime

router = APIRouter(tags=["service"])


def package_version() -> str:
    """The installed project's version."""
    try:
        return version("simlink")
    except PackageNotFoundError:
        return "unknown"


@router.get("/health", summary="Liveness: the process is up and its model loaded")
async def health(runtime: RuntimeDep) -> dict[str, str]:
    """``ok`` once the model is loaded and warmed up (the server accepts no request before), and for as
    long as the process runs; restart it only when this fails. Whether to send it work is ``/ready``."""
    return {"status": "ok", "model": runtime.similarity.encoder.name}


@router.get(
    "/ready",
    summary="Readiness: whether to send this server work now",
    responses={503: {"model": ErrorResponse, "description": "Draining before a stop, or at capacity."}},
)
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """200 while the server takes work; 503 while it drains before a stop or its queue budget is
    spent (a load balancer should send the next request elsewhere)."""
    reason = runtime.not_ready_because()
    if reason is not None:
        return JSONResponse(status_code=503, content=error_body(f"not ready: {reason}"))
    return JSONResponse({"status": "ready"})


@router.get("/info", summary="What the server loaded and its limits")
async def info(runtime: RuntimeDep) -> dict[str, Any]:
    settings = runtime.settings
    encoder = runtime.similarity.encoder
    return {
        "version": package_version(),
        "encoder": {
            **encoder.loaded.describe(),
            "layer": encoder.layer,
            "max_tokens": encoder.max_tokens,
            "skip_special_tokens": settings.skip_special_tokens,
        },
        "methods": {
            name: {
                "description": method.description,
                "similarity": method.similarity_rule,
                "alignment": method.alignment,
            }
            for name, method in METHODS.items()
        },
        "default_method": DEFAULT_METHOD,
        "linker": _linker_info(runtime),
        "admission": {
            "encoder": runtime.similarity.admission.describe(),
            "linker": runtime.linker.admission.describe() if runtime.linker else None,
            "request_timeout_s": settings.request_timeout_s,
            "shutdown_grace_s": settings.shutdown_grace_s,
            "draining": runtime.draining,
        },
        "limits": {
            "max_pairs": settings.max_pairs,
            "max_request_tokens": settings.max_request_tokens,
            "max_candidates": settings.max_candidates,
            "max_tokens": settings.max_tokens,
            "max_body_bytes": settings.max_body_bytes,
            "max_alignment_pairs": settings.max_alignment_pairs,
        },
        "batching": {
            "encoder_batch_tokens": settings.encoder_batch_tokens,
            "packing": encoder.packing,
            "encoder_workers": runtime.similarity.workers,
            "torch_threads": runtime.similarity.threads or torch_threads(),
            "batch_max_texts": settings.batch_max_texts,
            "batch_wait_ms": settings.batch_wait_ms,
        },
        "started_at": runtime.started_at,
    }


def _linker_info(runtime: Runtime) -> dict[str, Any] | None:
    """The linker model and its index with the manifest, or None when linking is not configured."""
    if runtime.linker is None:
        return None
    settings = runtime.settings
    return {
        **runtime.linker.engine.describe(),
        "threads": runtime.linker.threads,
        "batch_wait_ms": settings.link_batch_wait_ms,
        "batch_refill_share": settings.link_batch_refill_share,
        "limits": {
            "max_beams": settings.max_beams,
            "max_link_chars": settings.max_link_chars,
            "max_link_candidates": settings.max_link_candidates,
        },
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
