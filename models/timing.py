"""Per-request stage times (queue, encode, transport, generate), recorded where the work happens.

A server opens a :class:`StageTimes` for each request (a context variable, so it follows the request
into tasks and ``asyncio.to_thread``); the engines add to whatever is open, or to nothing when they
are used from Python. The server reports the times in response headers and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

STAGES = ("queue", "encode", "transport", "generate")


@dataclass
class StageTimes:
    """Seconds spent in each stage by one request (a stage met twice adds up)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


_current: ContextVar[StageTimes | None] = ContextVar("simlink_stage_times", default=None)


def open_stage_times() -> StageTimes:
    """Starts recording for the current request (the caller's context and what it spawns)."""
    times = StageTimes()
    _current.set(times)
    return times


def current_stage_times() -> StageTimes | None:
    return _current.get()


def record(stage: str, seconds: float, times: StageTimes | None = None) -> None:
    """Adds ``seconds`` to ``stage`` of ``times``, or of the current request's times if any."""
    target = times if times is not None else _current.get()
    if target is not None:
        target.add(stage, seconds)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Records the time spent in the ``with`` block as ``stage`` of the current request."""
    started = time.perf_counter()
    try:
        yield
    finally:
        record(stage, time.perf_counter() - started)
