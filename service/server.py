"""Runs the app under uvicorn, and drains it on SIGTERM before uvicorn stops.

On SIGTERM (or Ctrl-C) the runtime stops taking work at once (``/ready`` turns 503, new requests get
503), uvicorn closes its listening socket and lets requests in flight finish; after
``SIMLINK_SHUTDOWN_GRACE_S`` what still waits in a queue is answered 503, and uvicorn exits once
every connection is done (it cancels stragglers :data:`RUNNING_BATCH_MARGIN_S` after the grace period).
"""

from __future__ import annotations

import logging
from types import FrameType

import uvicorn

from service.runtime import Runtime
from service.settings import Settings


class DrainingServer(uvicorn.Server):
    """A uvicorn server that tells the runtime to drain when it is asked to exit."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime, grace_s: float) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.grace_s = grace_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.runtime.drain(self.grace_s)
        super().handle_exit(sig, frame)


def uvicorn_options(settings: Settings) -> dict[str, object]:
    """What uvicorn needs from the settings, in one or several processes."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.log_format == "text",  # the JSON access log is ours
        # queued work fails at the grace period; a batch already running cannot be interrupted, so
        # uvicorn's hard stop leaves it time to finish
        "timeout_graceful_shutdown": settings.shutdown_grace_s + RUNNING_BATCH_MARGIN_S,
    }


RUNNING_BATCH_MARGIN_S = 30.0
"""After the grace period, how long uvicorn still waits for requests whose batch is running."""


def configure_logging(settings: Settings) -> None:
    """Plain lines for the service's logs; the JSON access log, when asked for, as bare JSON lines."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    access = logging.getLogger("simlink.access")
    access.propagate = False
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)


def serve_one_process(runtime: Runtime) -> None:
    """Serves the built ``runtime`` in this process until SIGTERM or Ctrl-C, draining first."""
    from service.app import create_app

    settings = runtime.settings
    config = uvicorn.Config(create_app(runtime=runtime), **uvicorn_options(settings))
    DrainingServer(config, runtime, settings.shutdown_grace_s).run()
