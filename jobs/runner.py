"""Runs a bulk job's task over its rows, here (threads) or on Ray Data, writing results in input order.

Both runners call the same task (:mod:`jobs.tasks`) on the same batches; they differ only in
where the batches run:

- ``local``: the task is built once in this process and ``workers`` threads call it, each with
  its share of the cores (the encoder's forward pass runs without Python's lock, so one thread's
  transport overlaps another's forward pass, as in the server);
- ``ray``: ``Dataset.map_batches`` with the task class, so each of ``workers`` actors builds it
  (loads the model) once; ``address`` joins a cluster, else a local Ray is started.

Results come back in input order and are appended to the :class:`jobs.output.JobOutput` batch by
batch. A bad row stops the job with :class:`BadRowError` naming the file and line, after every row
before it is written (so the same command with ``lenient`` continues there), or with ``lenient``
is skipped and counted.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from index.progress import Progress, no_progress
from jobs.output import JobOutput
from jobs.rows import Row
from models.loader import available_cores

Engine = Literal["local", "ray"]


class BadRowError(ValueError):
    """A row the job could not use, named by file and line (without ``lenient``)."""


@dataclass(frozen=True)
class TaskRecipe:
    """How to build a job's task: its class and constructor arguments (sent to Ray actors as is)."""

    task: type
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Callable[[dict[str, list[Any]]], dict[str, list[Any]]]:
        return self.task(*self.args, **self.kwargs)


@dataclass(frozen=True)
class RunPlan:
    """Where and how wide a job runs: ``workers`` tasks at once, ``threads`` torch threads each."""

    engine: Engine = "local"
    workers: int = 1
    threads: int | None = None
    batch_size: int = 64
    address: str | None = None


@dataclass(frozen=True)
class JobSummary:
    """What a finished job did: rows written and skipped (over all its runs), where it continued from."""

    written: int
    skipped: int
    problems: list[str]
    resumed_after: int


def _columns(rows: list[Row]) -> dict[str, list[Any]]:
    return {
        "line": [row.line for row in rows],
        "values": [row.values for row in rows],
        "problem": [row.problem for row in rows],
    }


def _batches(rows: Iterable[Row], size: int) -> Iterator[dict[str, list[Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield _columns(batch)


def _local_results(recipe: TaskRecipe, rows: Iterable[Row], plan: RunPlan) -> Iterator[dict[str, list[Any]]]:
    """Results of each batch, in order, computed by ``plan.workers`` threads sharing one task."""
    task = recipe.build()
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(plan.workers, thread_name_prefix="simlink-job") as pool:
        for batch in _batches(rows, plan.batch_size):
            pending.append(pool.submit(task, batch))
            if len(pending) >= 2 * plan.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _ray_results(recipe: TaskRecipe, rows: Iterable[Row], plan: RunPlan) -> Iterator[dict[str, list[Any]]]:
    """Results of each batch, in order, from Ray Data actors that each build the task once."""
    try:
        import ray
    except ImportError as error:
        raise RuntimeError("--engine ray needs Ray: pip install 'simlink[ray]'") from error
    items = [{"line": row.line, "values": row.values, "problem": row.problem} for row in rows]
    if not items:
        return
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=plan.address,
            num_cpus=None if plan.address else available_cores(),
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    dataset = ray.data.from_items(items).map_batches(
        recipe.task,
        fn_constructor_args=recipe.args,
        fn_constructor_kwargs=recipe.kwargs,
        batch_size=plan.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=plan.workers),
        num_cpus=plan.threads or 1,
    )
    try:
        yield from dataset.iter_batches(batch_size=plan.batch_size, batch_format="numpy")
    finally:
        if started_here:
            ray.shutdown()


def run_job(
    recipe: TaskRecipe,
    rows: Callable[[int], Iterable[Row]],
    output: JobOutput,
    source: Path,
    plan: RunPlan,
    lenient: bool = False,
    progress: Progress = no_progress,
    total: int | None = None,
) -> JobSummary:
    """Runs the task over ``rows(after_line)`` (the rows not yet done) and finishes ``output``.

    Raises :class:`BadRowError` naming ``source`` and the line for the first bad row unless
    ``lenient``; the rows before it are written, so the same command with ``lenient`` continues
    there. Whatever stops the job, its workers are stopped and the output's lock released.
    """
    resumed_after = output.done_through
    results = (_ray_results if plan.engine == "ray" else _local_results)(recipe, rows(resumed_after), plan)
    try:
        with closing(results):
            for result in progress(results, "batches", total):
                _write(output, result, source, lenient)
        output.finish()
    finally:
        output.release()
    problems = [f"{source}:{line}: {problem}" for line, problem in output.problems]
    return JobSummary(output.written, output.skipped, problems, resumed_after)


def _write(output: JobOutput, result: dict[str, Any], source: Path, lenient: bool) -> None:
    """Appends one batch's rows in order: up to a bad row and then a failure, or all, bad ones as skips."""
    rows = []
    for line, text, problem in zip(result["line"], result["output"], result["problem"], strict=True):
        line, problem = int(line), str(problem)
        if problem and not lenient:
            output.append(rows)
            raise BadRowError(f"{source}:{line}: {problem}")
        rows.append((line, _with_line(line, str(text)) if not problem else "", problem))
    output.append(rows)


def _with_line(line: int, text: str) -> str:
    """The output row's JSON with the input's line number first."""
    return f'{{"line": {line}, {text[1:]}' if text != "{}" else f'{{"line": {line}}}'
