"""The per-batch work of each bulk job, one callable class per job, the same in both runners.

A task is built once per worker (the local runner's process, or each Ray actor), which is where
the model loads, and then called on batches of rows:

    in:  {"line": [...], "values": [JSON text, ...], "problem": ["" or why the row is bad, ...]}
    out: {"line": [...], "output": [JSON text of the result row, or ""], "problem": [...]}

A row that was bad on reading stays bad; a row the engine refuses (a text over the token limit,
a text with no tokens) gets its problem here, and the other rows of its batch are still scored.
Output rows carry the same fields as the HTTP API's results, plus the input's ``line``.
Columns may arrive as lists or NumPy arrays (Ray), and leave as lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from models.batching import with_threads
from models.linking import EntityMatch, LinkerSpec, LinkQuery, PairMatch, index_problem
from models.loader import keep_helpers_on_one_thread, reuse_freed_memory, set_torch_threads
from models.similarity import DEFAULT_METHOD, EncoderSpec, SimilarityEngine, TextError
from models.similarity.scoring import rank_candidates

Batch = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class ScoreOptions:
    """The request options of ``/similarity`` and ``/similarity/rank`` that bulk jobs take."""

    method: str = DEFAULT_METHOD
    truncate: bool = False
    skip_special_tokens: bool | None = None


def _dump(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False)


class _Task:
    """What every task shares: splitting a batch into good rows and bad ones, and the output columns."""

    def __init__(self, threads: int | None) -> None:
        keep_helpers_on_one_thread()  # as the server does; also keeps results the same in every worker layout
        reuse_freed_memory()  # as the server does
        set_torch_threads(threads)  # for what the constructor computes (rank's corpus)
        self._in_own_threads = with_threads(self._results, threads)  # each calling thread sets its own

    def __call__(self, batch: Batch) -> dict[str, list[Any]]:
        return self._in_own_threads(batch)

    def _results(self, batch: Batch) -> dict[str, list[Any]]:
        lines = [int(line) for line in batch["line"]]
        problems = [str(problem) for problem in batch["problem"]]
        good = [i for i, problem in enumerate(problems) if not problem]
        outputs = [""] * len(lines)
        values = [json.loads(batch["values"][i]) for i in good]
        for i, (output, problem) in zip(good, self.process(values) if values else [], strict=True):
            outputs[i], problems[i] = output, problem
        return {"line": lines, "output": outputs, "problem": problems}

    def process(self, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """``(output JSON, "")`` or ``("", problem)`` per row, in order."""
        raise NotImplementedError


def _one_by_one_on_error(
    work: Callable[[list[dict[str, Any]]], list[tuple[str, str]]], rows: list[dict[str, Any]], fields: tuple[str, ...]
) -> list[tuple[str, str]]:
    """``work(rows)``; if a text is refused (:class:`TextError`), each row alone, so that only the bad
    ones fail, their problem naming the field (``fields``: the texts of one row, in the order the
    engine gets them). Bad rows are rare: the fast path is one call for the batch."""
    try:
        return work(rows)
    except TextError:
        results = []
        for row in rows:
            try:
                results.extend(work([row]))
            except TextError as error:
                results.append(("", f'"{fields[error.index % len(fields)]}" {error.problem}'))
        return results


class ScorePairs(_Task):
    """``simlink score``: rows ``{"a", "b"}`` -> ``{"line", "distance", "similarity"}``."""

    def __init__(self, encoder: EncoderSpec, options: ScoreOptions, threads: int | None = None) -> None:
        super().__init__(threads)
        self.engine = SimilarityEngine(encoder.load())
        self.options = options

    def process(self, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return _one_by_one_on_error(self._score, rows, ("a", "b"))

    def _score(self, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        scores = self.engine.compare(
            [(row["a"], row["b"]) for row in rows],
            self.options.method,
            truncate=self.options.truncate,
            skip_special_tokens=self.options.skip_special_tokens,
        )
        return [(_dump({"distance": s.distance, "similarity": s.similarity}), "") for s in scores]


@dataclass(frozen=True)
class Corpus:
    """The texts ``rank`` ranks, with the file and lines they come from (to name a bad one)."""

    source: str
    lines: list[int]
    texts: list[str]


class RankQueries(_Task):
    """``simlink rank``: rows ``{"text"}`` (queries) -> ``{"line", "results": [{"index", "distance",
    "similarity"}], "exact_solves", "pruned"}`` against a corpus encoded once per worker."""

    def __init__(
        self,
        encoder: EncoderSpec,
        options: ScoreOptions,
        corpus: Corpus,
        top_k: int,
        threads: int | None = None,
    ) -> None:
        super().__init__(threads)
        self.engine = SimilarityEngine(encoder.load())
        self.options = options
        self.top_k = min(top_k, len(corpus.texts))
        try:
            self.corpus = self.engine.encoder.encode(corpus.texts, truncate=options.truncate)
        except TextError as error:
            raise ValueError(f"{corpus.source}:{corpus.lines[error.index]}: {error.problem}") from error

    def process(self, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return _one_by_one_on_error(self._rank, rows, ("text",))

    def _rank(self, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        queries = self.engine.encoder.encode([row["text"] for row in rows], truncate=self.options.truncate)
        skip = self.engine.skips_special_tokens(self.options.skip_special_tokens)
        results = []
        for query in queries:
            ranking = rank_candidates(query, self.corpus, self.options.method, self.top_k, True, skip)
            row = {
                "results": [asdict(result) for result in ranking.results],
                "exact_solves": ranking.exact_solves,
                "pruned": ranking.pruned,
            }
            results.append((_dump(row), ""))
        return results


class LinkTexts(_Task):
    """``simlink link``: rows with the fields of ``/link-entity`` -> ``{"line", "results"}`` with its
    results (entities, or subjects and predicates with answers); a row the endpoint would refuse on
    this index (unknown candidate ids, kbqa without facts: :func:`~models.linking.limits.index_problem`)
    is a bad row, named with its field."""

    def __init__(self, linker: LinkerSpec, threads: int | None = None) -> None:
        super().__init__(threads)
        self.engine = linker.open()

    def process(self, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        queries = [LinkQuery(**row) for row in rows]  # rows hold exactly a query's checked fields
        problems = [str(problem) if (problem := index_problem(query, self.engine)) else "" for query in queries]
        matches = iter(self.engine.link([q for q, problem in zip(queries, problems, strict=True) if not problem]))
        return [
            ("", problem) if problem else (_dump({"results": _match_rows(next(matches))}), "") for problem in problems
        ]


def _match_rows(matches: Sequence[EntityMatch | PairMatch]) -> list[dict[str, Any]]:
    """The API's result rows: ``{"id", "name", "score", "disambiguation"?, "mention"?: {"start", "end"}}``
    or ``{"subject", "predicate", "answers", "score"}``; as in the API, a field without a value is left out."""
    rows = [{key: value for key, value in asdict(match).items() if value is not None} for match in matches]
    for row in rows:
        if "mention" in row:
            row["mention"] = dict(zip(("start", "end"), row["mention"], strict=True))
    return rows
