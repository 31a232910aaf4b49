"""Merges the work of concurrent requests into one call of a batch function.

A model's forward pass costs about the same for one text as for a few dozen, so a server
that runs one pass per request wastes most of the CPU under load. Requests submit their items
to a :class:`MicroBatcher`; a worker takes everything queued (waiting up to ``max_wait_ms``
for more when the queue is short), runs the batch function once in its own thread, and hands
each request its share of the results. With several workers, batches run side by side (for a
model whose forward pass releases Python's global lock), while the next one gathers.

Under steady concurrency, a batch's requests come back together: the batch answers them all at
once, and each client sends its next request a moment later. A worker that took whatever was
queued the instant its batch ended would take the first of them alone and leave the rest for the
batch after, so batches would alternate between one request and all the others. ``refill_share``
lets the batch after a batch of several requests wait, for at most that share of the previous
batch's time, until it holds as many requests as there were clients in flight when that batch
ended (those it answered and those already queued); after a lone request with none queued it
never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from models.admission import Admission, ShuttingDownError
from models.timing import StageTimes, current_stage_times, record

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(eq=False)  # jobs are told apart by identity (kept in a set)
class _Job(Generic[In, Out]):
    items: Sequence[In]
    future: asyncio.Future[list[Out]] = field(repr=False)
    times: StageTimes | None = field(default=None, repr=False)  # the submitting request's stage times
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[In, Out]):
    """Runs ``process(items) -> outputs`` (same length, same order) over merged requests.

    ``process`` runs in ``workers`` dedicated threads, one batch per thread at a time; with one
    worker, a model is never used by two batches at once. ``on_batch(size)`` is called with each
    batch's item count, ``on_drop(size)`` with the item count of each request abandoned (cancelled,
    timed out) before its batch started, which is never computed. Each request's time in the queue
    and in ``process`` is recorded as its ``queue`` and ``stage`` times (:mod:`models.timing`).
    """

    def __init__(
        self,
        process: Callable[[list[In]], list[Out]],
        max_items: int = 256,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int], None] | None = None,
        name: str = "batcher",
        workers: int = 1,
        on_drop: Callable[[int], None] | None = None,
        stage: str = "compute",
        refill_share: float = 0.0,
    ) -> None:
        if workers < 1:
            raise ValueError("a batcher needs at least one worker")
        if refill_share < 0:
            raise ValueError(f"refill_share must be 0 or more, got {refill_share}")
        self._refill_share = refill_share
        self._process = process
        self._max_items = max_items
        self._max_wait = max_wait_ms / 1000.0
        self._on_batch = on_batch
        self._on_drop = on_drop
        self._stage = stage
        self._name = name
        self._worker_count = workers
        self._queue: asyncio.Queue[_Job[In, Out]] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._taken: set[_Job[In, Out]] = set()  # off the queue, not yet answered
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Starts the workers; call from the running event loop (the app's lifespan)."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=self._worker_count, thread_name_prefix=self._name)
        self._workers = [asyncio.create_task(self._run(), name=f"{self._name}-{n}") for n in range(self._worker_count)]

    async def stop(self) -> None:
        """Stops the workers; requests queued or in a running batch fail with a clear error, and
        later submissions are refused. Waits (without blocking the event loop) for running
        batches to finish."""
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        shutting_down = ShuttingDownError()
        self.fail_queued(shutting_down)
        for job in self._taken:
            if not job.future.done():
                job.future.set_exception(shutting_down)
        self._queue = None
        self._taken.clear()
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, True)
            self._executor = None

    async def submit(self, items: Sequence[In]) -> list[Out]:
        """Queues ``items`` and waits for their outputs."""
        if self._queue is None:
            raise RuntimeError(f"{self._name} is not running")
        if not items:
            return []
        future: asyncio.Future[list[Out]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(items, future, current_stage_times()))
        return await future

    def fail_queued(self, error: Exception) -> int:
        """Fails every request still waiting in the queue (not yet in a batch) with ``error``;
        returns how many. Running batches finish."""
        failed = 0
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(error)
                failed += 1
        return failed

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        refill = _Refill()
        while True:
            jobs = await self._gather(await self._take(), refill)
            started = loop.time()
            await self._execute(jobs)
            self._taken.difference_update(jobs)
            ended = loop.time()
            # the clients in flight: those just answered (not those gone before), and those already waiting
            answered = sum(not job.future.cancelled() for job in jobs)
            clients = answered + self._queue.qsize()
            refill = _Refill(clients, ended + self._refill_share * (ended - started))

    async def _take(self) -> _Job[In, Out]:
        assert self._queue is not None
        job = await self._queue.get()
        self._taken.add(job)
        return job

    async def _take_within(self, seconds: float) -> _Job[In, Out] | None:
        """The next queued job, or None if none comes within ``seconds``. Not ``asyncio.wait_for``:
        before Python 3.12 it can swallow a cancellation that arrives as the job it waits for
        comes, and a stopping batcher's worker would then wait for jobs forever. Cancelled, this
        leaves the job in the queue, or among the taken ones if it was already off the queue, so
        that :meth:`stop` fails it either way."""
        assert self._queue is not None
        getter = asyncio.ensure_future(self._queue.get())
        try:
            await asyncio.wait({getter}, timeout=seconds)
        except asyncio.CancelledError:
            self._keep(getter)
            raise
        return self._keep(getter)

    def _keep(self, getter: asyncio.Future[_Job[In, Out]]) -> _Job[In, Out] | None:
        """The job ``getter`` took off the queue, now counted as taken; if it has none yet, it is
        cancelled (leaving any job in the queue) and None is returned."""
        if not getter.done():
            getter.cancel()
            return None
        if getter.cancelled():
            return None
        job = getter.result()
        self._taken.add(job)
        return job

    async def _gather(self, first: _Job[In, Out], refill: _Refill) -> list[_Job[In, Out]]:
        """``first`` and the jobs queued after it, up to ``max_items`` items: those queued now, and
        those that come within ``max_wait_ms`` or, while it holds fewer jobs than ``refill`` expects,
        until ``refill``'s deadline."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        jobs, count = [first], len(first.items)
        deadline = loop.time() + self._max_wait
        while count < self._max_items:
            try:
                job = self._queue.get_nowait()
                self._taken.add(job)
            except asyncio.QueueEmpty:
                until = max(deadline, refill.until) if len(jobs) < refill.jobs else deadline
                remaining = until - loop.time()
                if remaining <= 0:
                    break
                found = await self._take_within(remaining)
                if found is None:
                    break
                job = found
            jobs.append(job)
            count += len(job.items)
        return jobs

    async def _execute(self, jobs: list[_Job[In, Out]]) -> None:
        live = [job for job in jobs if not job.future.done()]  # a cancelled request needs no work
        dropped = sum(len(job.items) for job in jobs if job.future.done())
        if dropped and self._on_drop is not None:
            self._on_drop(dropped)
        if not live:
            return
        items = [item for job in live for item in job.items]
        if self._on_batch is not None:
            self._on_batch(len(items))
        started = time.perf_counter()
        for job in live:
            record("queue", started - job.queued_at, job.times)
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self._process, items)
        except Exception as error:
            for job in live:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        seconds = time.perf_counter() - started
        start = 0
        for job in live:
            record(self._stage, seconds, job.times)
            end = start + len(job.items)
            if not job.future.done():
                job.future.set_result(outputs[start:end])
            start = end


@dataclass(frozen=True)
class _Refill:
    """How many jobs the next batch may wait for (the clients in flight when the previous batch
    ended), and until when."""

    jobs: int = 0
    until: float = 0.0


class WorkCancelledError(RuntimeError):
    """Raised inside cancellable work whose caller has gone (cancelled or past its deadline)."""


async def run_cancellable(work: Callable[..., Out], *args: object, **kwargs: object) -> Out:
    """Runs ``work(*args, stop=event, **kwargs)`` in a worker thread. If the caller is cancelled, the
    event is set, so that long work that checks it between chunks stops instead of running on for
    a caller that is no longer there."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(work, *args, stop=stop, **kwargs)
    except asyncio.CancelledError:
        stop.set()
        raise


def check_stop(stop: threading.Event | None) -> None:
    """Raises :class:`WorkCancelledError` if ``stop`` is set (call between chunks of long work)."""
    if stop is not None and stop.is_set():
        raise WorkCancelledError("the caller has gone")


def with_threads(process: Callable[[list[In]], list[Out]], threads: int | None) -> Callable[[list[In]], list[Out]]:
    """``process``, run with ``threads`` CPU threads per forward pass in whichever thread calls it.

    torch's thread count (OpenMP's) belongs to the calling thread once that thread has run a
    parallel op, so each batch worker sets its own before each batch: the linker's worker can
    use every core while the encoder's workers use one each. Setting it also moves the default
    that threads not yet started inherit, which is why every worker sets its own each time.
    """
    if threads is None:
        return process
    import torch

    def run(items: list[In]) -> list[Out]:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return process(items)

    return run


class BatchedFacade(Generic[In, Out]):
    """What an engine's async façade shares: a :class:`MicroBatcher` over ``process`` and an
    :class:`~models.admission.Admission` of the façade's cost unit (unlimited when none is given).
    ``threads`` is the CPU threads each batch's forward pass uses (None: whatever torch has).
    Subclasses add the calls that tokenize, admit, submit and convert."""

    def __init__(
        self,
        process: Callable[[list[In]], list[Out]],
        *,
        name: str,
        stage: str,
        unit: str,
        workers: int = 1,
        max_items: int = 256,
        wait_ms: float = 2.0,
        on_batch: Callable[[int], None] | None = None,
        on_drop: Callable[[int], None] | None = None,
        admission: Admission | None = None,
        threads: int | None = None,
        refill_share: float = 0.0,
    ) -> None:
        self.workers = workers
        self.threads = threads
        self.admission = admission or Admission.unlimited(unit)
        self._batcher: MicroBatcher[In, Out] = MicroBatcher(
            with_threads(process, threads),
            max_items=max_items,
            max_wait_ms=wait_ms,
            on_batch=on_batch,
            name=name,
            workers=workers,
            on_drop=on_drop,
            stage=stage,
            refill_share=refill_share,
        )

    async def start(self) -> None:
        """Starts the batch workers; call from the running event loop."""
        await self._batcher.start()

    async def stop(self) -> None:
        """Stops the batch workers; waiting callers fail with a clear error."""
        await self._batcher.stop()

    def fail_queued(self, error: Exception) -> int:
        """Fails the requests still waiting for a batch (draining before a stop); returns how many."""
        return self._batcher.fail_queued(error)
