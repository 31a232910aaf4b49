"""The three bulk jobs: score pairs, rank a corpus for many queries, link many texts.

Each reads its input file(s) (:mod:`jobs.rows`), runs its task (:mod:`jobs.tasks`) here or on
Ray (:mod:`jobs.runner`) and writes one output row per input row, in input order, resumably
(:mod:`jobs.output`). Usable from Python without the command line::

    score(Path("pairs.tsv"), Path("scores.jsonl"), EncoderSpec(), ScoreOptions(method="wrd"))
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from index.kb import file_sha256
from index.manifest import MANIFEST_NAME
from index.progress import Progress, no_progress
from jobs.output import JobOutput, describe_inputs
from jobs.rows import LINK_TEXTS, PAIRS, TEXTS, RowKind, read_rows, read_texts
from jobs.runner import JobSummary, RunPlan, TaskRecipe, cores, run_job
from jobs.tasks import LinkTexts, RankQueries, ScoreOptions, ScorePairs
from models.linking import LinkerSpec
from models.similarity import EncoderSpec


def similarity_plan(**choices: Any) -> RunPlan:
    """The default plan of the similarity jobs: one single-threaded worker per core (one worker's
    transport overlaps another's forward pass, as the server's encoder workers do), 64 rows a batch."""
    workers = choices.pop("workers", None) or cores()
    return RunPlan(workers=workers, threads=max(1, cores() // workers), batch_size=64, **choices)


def linking_plan(**choices: Any) -> RunPlan:
    """The default plan of the linking job: one worker with every core (as the server's linker), 16 texts a batch."""
    workers = choices.pop("workers", None) or 1
    return RunPlan(workers=workers, threads=max(1, cores() // workers), batch_size=16, **choices)


def _rows_after(path: Path, kind: RowKind):
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
    job = {"command": "score", "inputs": describe_inputs([pairs]), "encoder": asdict(encoder), **asdict(options)}
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
    texts = read_texts(corpus)
    job = {
        "command": "rank",
        "inputs": describe_inputs([queries, corpus]),
        "encoder": asdict(encoder),
        "top_k": top_k,
        **asdict(options),
    }
    recipe = TaskRecipe(RankQueries, (encoder, options, texts, top_k, plan.threads))
    return _run(recipe, queries, TEXTS, out, job, plan, lenient, progress)


def link(
    texts: Path,
    out: Path,
    linker: LinkerSpec,
    plan: RunPlan | None = None,
    lenient: bool = False,
    progress: Progress = no_progress,
) -> JobSummary:
    """Links every text of ``texts`` (one per line, or JSONL with the request's fields) into ``out``."""
    plan = plan or linking_plan()
    manifest = Path(linker.index) / MANIFEST_NAME
    linker_state = {**asdict(linker), "index": str(Path(linker.index).resolve())}
    if manifest.is_file():  # a rebuilt index makes another job
        linker_state["index_manifest_sha256"] = file_sha256(manifest)
    job = {"command": "link", "inputs": describe_inputs([texts]), "linker": linker_state}
    recipe = TaskRecipe(LinkTexts, (linker, plan.threads))
    return _run(recipe, texts, LINK_TEXTS, out, job, plan, lenient, progress)
