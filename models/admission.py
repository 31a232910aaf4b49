"""Admission control: how much work a server takes on before it asks callers to come back later.

Work is counted in cost units an engine can estimate before it starts (tokens to encode, beams to
run), not in requests: one request of 64 long pairs costs as much as hundreds of short ones. An
:class:`Admission` admits work while the cost in flight (queued and running) stays within its
budget, refuses a single request costing more than ``per_request`` outright, and estimates from
the throughput it has seen how long a refused caller should wait.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager


class TooMuchWorkError(ValueError):
    """One request costs more than any single request may (it can never be admitted)."""

    def __init__(self, cost: int, limit: int, unit: str) -> None:
        super().__init__(f"needs {cost} {unit}, more than the limit of {limit} per request")
        self.cost, self.limit, self.unit = cost, limit, unit


class OverloadedError(RuntimeError):
    """The budget is spent by work in flight; ``retry_after`` estimates when there will be room."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is at capacity; retry in about {retry_after} s")
        self.retry_after = retry_after


class ShuttingDownError(RuntimeError):
    """The server is draining before it stops and takes no new work."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down and takes no new work; retry on another replica")


class Admission:
    """Admits work up to ``budget`` cost units in flight; single requests up to ``per_request``.

    Used from one event loop (no lock). A request that finds nothing in flight is admitted whatever
    its cost up to ``per_request``, so a budget below ``per_request`` cannot starve it.
    """

    def __init__(self, budget: int, per_request: int, unit: str, initial_rate: float = 1000.0) -> None:
        self.budget = budget
        self.per_request = per_request
        self.unit = unit
        self.in_flight = 0
        self.closed = False
        self._rate = initial_rate  # cost units finished per busy second, smoothed
        self._window_start = time.monotonic()
        self._window_cost = 0
        self._typical_cost = 0.0  # smoothed cost of admitted requests

    @classmethod
    def unlimited(cls, unit: str) -> Admission:
        """Admits everything (an engine used without a server's budget)."""
        return cls(budget=2**62, per_request=2**62, unit=unit)

    def check(self, cost: int) -> None:
        """Raises what :meth:`admit` would raise for ``cost`` now, without holding anything: a cheap
        early answer from an estimated cost, before the work of measuring the exact one."""
        if self.closed:
            raise ShuttingDownError()
        if cost > self.per_request:
            raise TooMuchWorkError(cost, self.per_request, self.unit)
        if self.in_flight and self.in_flight + cost > self.budget:
            raise OverloadedError(self.retry_after())

    @contextmanager
    def admit(self, cost: int) -> Iterator[None]:
        """Holds ``cost`` units for the ``with`` block; raises :class:`TooMuchWorkError`,
        :class:`OverloadedError` or :class:`ShuttingDownError` instead of admitting."""
        self.check(cost)
        if not self.in_flight:  # idle until now: measure throughput from here
            self._window_start, self._window_cost = time.monotonic(), 0
        self.in_flight += cost
        self._typical_cost = 0.9 * self._typical_cost + 0.1 * cost if self._typical_cost else float(cost)
        try:
            yield
        finally:
            self.in_flight -= cost
            self._observe(cost)

    def _observe(self, cost: int) -> None:
        """Throughput over busy time: the cost finished in windows of at least half a second."""
        self._window_cost += cost
        elapsed = time.monotonic() - self._window_start
        if elapsed >= 0.5:
            self._rate = 0.7 * self._rate + 0.3 * self._window_cost / elapsed
            self._window_start, self._window_cost = time.monotonic(), 0

    def retry_after(self) -> int:
        """Whole seconds until the work in flight should be done, at the throughput seen so far (1..60)."""
        return min(60, max(1, math.ceil(self.in_flight / max(self._rate, 1e-9))))

    def sheds(self) -> bool:
        """Whether a request of the typical cost seen so far would be refused now: a server can then
        refuse at the door, before parsing and tokenizing (the cheap 429 under heavy overload)."""
        return self.in_flight > 0 and self.in_flight + self._typical_cost > self.budget

    @property
    def full(self) -> bool:
        """Whether the work in flight has reached the budget (a load balancer should look elsewhere)."""
        return self.in_flight >= self.budget

    def close(self) -> None:
        """Refuses all later work (draining before a stop)."""
        self.closed = True

    def describe(self) -> dict[str, object]:
        return {"unit": self.unit, "budget": self.budget, "per_request": self.per_request, "in_flight": self.in_flight}
