"""The three bulk jobs: score pairs, rank a corpus for many queries, link many texts.

Each reads its input file(s) (:mod:`jobs.rows`), runs its task (:mod:`jobs.tasks`) here or on
Ray (:mod:`jobs.runner`) and writes one output row per input row, in input order, resumably
(:mod:`jobs.output`). Usable from Python without the command line::

    score(Path("pairs.tsv"), Path("scores.jsonl"), EncoderSpec(), ScoreOptions(method="wrd"))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from index.kb import file_sha256
from index.manifest import MANIFEST_NAME
from index.progress import Progress, no_progress
from jobs.output import JobOutput, describe_inputs
from jobs.rows import PAIRS, TEXTS, Row, RowKind, link_texts, read_rows, read_texts
from jobs.runner import JobSummary, RunPlan, TaskRecipe, run_job
from jobs.tasks import Corpus, LinkTexts, RankQueries, ScoreOptions, ScorePairs
from models.linking import NO_SIZE_LIMITS, LinkerSpec, LinkLimits
from models.loader import available_cores
from models.similarity import EncoderSpec


def similarity_plan(workers: int | None = None, threads: int | None = None, **choices: Any) -> RunPlan:
    """The default plan of the similarity jobs: one single-threaded worker per core of this machine
    (one worker's transport overlaps another's forward pass, as the server's encoder workers do), 64
    rows a batch. On a cluster, give ``workers`` and ``threads`` for its nodes."""
    threads = threads or (max(1, available_cores() // workers) if workers else 1)
    workers = workers or max(1, available_cores() // threads)
    return RunPlan(workers=workers, threads=threads, batch_size=64, **choices)


def linking_plan(workers: int | None = None, threads: int | None = None, **choices: Any) -> RunPlan:
    """The default plan of the linking job: one worker with every core of this machine (as the
    server's linker), 16 texts a batch."""
    workers = workers or 1
    threads = threads or max(1, available_cores() // workers)
    return RunPlan(workers=workers, threads=threads, batch_size=16, **choices)


def model_identity(model: str) -> dict[str, Any]:
    """What identifies a model for resuming: its name, or a directory's files with their sizes and
    modification times (a model retrained at the same path is another job)."""
    directory = Path(model)
    if not directory.is_dir():
        return {"name": model}
    files = {
        path.name: [path.stat().st_size, path.stat().st_mtime_ns] for path in directory.iterdir() if path.is_file()
    }
    return {"path": str(directory.resolve()), "files": dict(sorted(files.items()))}


def _encoder_identity(encoder: EncoderSpec) -> dict[str, Any]:
    return {"encoder": {**asdict(encoder), "model": model_identity(encoder.model)}}


def _rows_after(path: Path, kind: RowKind) -> Callable[[int], Iterator[Row]]:
    return lambda after_line: read_rows(path, kind, after_line)


def _batch_count(path: Path, done_through: int, batch_size: int) -> int | None:
    """About how many batches are left (non-blank lines after ``done_through``); None for Parquet."""
    if path.suffix.lower() == ".parquet":
        return None
    with path.open("rb") as stream:
        left = sum(1 for number, line in enumerate(stream, start=1) if number > done_through and line.strip())
    return math.ceil(left / batch_size)


def _run(
    recipe: TaskRecipe,
    source: Path,
    kind: RowKind,
    out: Path,
    job: dict[str, Any],
    plan: RunPlan,
    lenient: bool,
    progress: Progress,
) -> JobSummary:
    output = JobOutput.open(out, job)
    total = _batch_count(source, output.done_through, plan.batch_size)
    return run_job(recipe, _rows_after(source, kind), output, source, plan, lenient, progress, total)


def score(
    pairs: Path,
    out: Path,
    encoder: EncoderSpec,
    options: ScoreOptions,
    plan: RunPlan | None = None,
    lenient: bool = False,
    progress: Progress = no_progress,
) -> JobSummary:
    """Scores every pair of ``pairs`` (TSV ``a<TAB>b``, JSONL ``{"a", "b"}`` or Parquet) into ``out``."""
    plan = plan or similarity_plan()
    job = {"command": "score", "inputs": describe_inputs([pairs]), **_encoder_identity(encoder), **asdict(options)}
    recipe = TaskRecipe(ScorePairs, (encoder, options, plan.threads))
    return _run(recipe, pairs, PAIRS, out, job, plan, lenient, progress)


def rank(
    queries: Path,
    corpus: Path,
    out: Path,
    encoder: EncoderSpec,
    options: ScoreOptions,
    top_k: int = 10,
    plan: RunPlan | None = None,
    lenient: bool = False,
    progress: Progress = no_progress,
) -> JobSummary:
    """Ranks ``corpus`` (every text, encoded once per worker) for each query of ``queries``, into ``out``.

    Raises ``ValueError`` naming the line for a bad corpus row (the corpus is never skipped into).
    """
    plan = plan or similarity_plan()
    lines, texts = read_texts(corpus)
    job = {
        "command": "rank",
        "inputs": describe_inputs([queries, corpus]),
        **_encoder_identity(encoder),
        "top_k": top_k,
        **asdict(options),
    }
    recipe = TaskRecipe(RankQueries, (encoder, options, Corpus(str(corpus), lines, texts), top_k, plan.threads))
    return _run(recipe, queries, TEXTS, out, job, plan, lenient, progress)


def link(
    texts: Path,
    out: Path,
    linker: LinkerSpec,
    plan: RunPlan | None = None,
    lenient: bool = False,
    progress: Progress = no_progress,
    limits: LinkLimits = NO_SIZE_LIMITS,
) -> JobSummary:
    """Links every text of ``texts`` (one per line, or JSONL with the request's fields) into ``out``;
    a row the server would refuse under ``limits`` is a bad row (``simlink link`` passes the server
    settings' limits; from Python, only a row's own consistency is checked unless they are given)."""
    plan = plan or linking_plan()
    manifest = Path(linker.index) / MANIFEST_NAME
    linker_state = {**asdict(linker), "index": str(Path(linker.index).resolve()), "model": model_identity(linker.model)}
    if manifest.is_file():  # a rebuilt index makes another job
        linker_state["index_manifest_sha256"] = file_sha256(manifest)
    job = {"command": "link", "inputs": describe_inputs([texts]), "linker": linker_state, "limits": asdict(limits)}
    recipe = TaskRecipe(LinkTexts, (linker, plan.threads))
    return _run(recipe, texts, link_texts(limits), out, job, plan, lenient, progress)
