"""The LC-QuAD linking report: every method on the same dev split, scored the same way.

:func:`evaluate_linking` runs the baselines (dictionary, dense) and, given a trained linker, the
generative methods and single-triple KBQA; ``simlink evaluate link`` only parses its options,
calls it and prints the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from evaluation.baselines import DenseLinker, DictionaryLinker
from evaluation.lcquad import LcQuad, Question, entity_id
from evaluation.metrics import score_predictions
from index.progress import Progress, no_progress
from models.linking import AUTO, LinkingEngine, LinkQuery, Matches, NgramCandidates, PairMatch

CandidateSource = Callable[[str], "tuple[str, ...] | None"]


@dataclass
class LinkReport:
    """Per method, the :func:`~evaluation.metrics.score_predictions` summary; and KBQA accuracy."""

    questions: int
    split: str = "dev"
    default_method: str | None = None
    """The method ``/link-entity`` applies with default request fields (None without a linker)."""
    entity_linking: dict[str, dict[str, float]] = field(default_factory=dict)
    kbqa: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "split": self.split,
            "questions": self.questions,
            "default_method": self.default_method,
            "entity_linking": self.entity_linking,
            "kbqa": self.kbqa,
        }


def generative_predictions(
    engine: LinkingEngine,
    questions: Sequence[Question],
    num_beams: int,
    batch_size: int,
    progress: Progress = no_progress,
    candidates: CandidateSource | Literal["auto"] | None = None,
    copy_weights: Sequence[float] = (0.0,),
) -> dict[float, tuple[list[list[str]], list[list[str]]]]:
    """Per copy weight (:attr:`LinkingEngine.copy_weight`; one beam search serves them all), per
    question: the top beam alone, and the engine's ``several`` answer (the top beam and the other
    beams' names the question writes apart from it; :class:`LinkQuery`). With ``candidates``, each
    question's search is restricted to the ids it returns (the full trie when it returns None), or to
    the engine's own lexical candidates with ``"auto"``."""
    found: dict[float, tuple[list[list[str]], list[list[str]]]] = {weight: ([], []) for weight in copy_weights}
    batches = [questions[i : i + batch_size] for i in range(0, len(questions), batch_size)]
    for batch in progress(batches, "linking", len(batches)):
        queries = [
            LinkQuery(
                q.text,
                "entity",
                top_k=num_beams,
                num_beams=num_beams,
                candidates=candidates if candidates in (None, AUTO) else candidates(q.text),
                several=True,
            )
            for q in batch
        ]
        for by_weight in matches_per_weight(engine, queries, copy_weights):
            for weight, matches in by_weight.items():
                names = list(dict.fromkeys(match.name for match in matches))
                found[weight][0].append(names[:1])
                found[weight][1].append(names)
    return found


def matches_per_weight(
    engine: LinkingEngine, queries: Sequence[LinkQuery], copy_weights: Sequence[float]
) -> list[dict[float, Matches]]:
    """Each query's matches at each copy weight, from one beam search: a weight only reorders the
    search's results (:meth:`LinkingEngine.resolve`)."""
    engines = {weight: replace(engine, copy_weight=weight) for weight in copy_weights}
    return [
        {weight: weighted.resolve(query, hypotheses) for weight, weighted in engines.items()}
        for query, hypotheses in zip(queries, engine.search(queries), strict=True)
    ]


def kbqa_predictions(
    engine: LinkingEngine,
    texts: Sequence[str],
    num_beams: int,
    batch_size: int,
    progress: Progress = no_progress,
) -> list[PairMatch | None]:
    """The top (subject, predicate) the linker generates for each question under the KBQA trie, with
    its answers from the KB; None where the search finds nothing."""
    predicted: list[PairMatch | None] = []
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    for batch in progress(batches, "answering", len(batches)):
        found = engine.link([LinkQuery(text, "kbqa", top_k=1, num_beams=num_beams) for text in batch])
        predicted.extend(matches[0] if matches else None for matches in found)
    return predicted


def kbqa_accuracy(
    engine: LinkingEngine, questions: Sequence[Question], num_beams: int, batch_size: int
) -> dict[str, float]:
    """Top-1 accuracy of (subject, predicate), and of each part, on the single-triple questions."""
    single = [q for q in questions if q.pair]
    hits = {"pair": 0, "subject": 0, "predicate": 0}
    for question, match in zip(
        single, kbqa_predictions(engine, [q.text for q in single], num_beams, batch_size), strict=True
    ):
        predicted = (match.subject, match.predicate) if match else ("", "")
        hits["pair"] += predicted == question.pair
        hits["subject"] += predicted[0] == question.pair[0]
        hits["predicate"] += predicted[1] == question.pair[1]
    return {"questions": len(single), **{f"{key}_accuracy": value / max(len(single), 1) for key, value in hits.items()}}


def _timed(predict: Callable[[], list[list[str]]]) -> tuple[list[list[str]], float]:
    started = time.perf_counter()
    predicted = predict()
    return predicted, time.perf_counter() - started


def evaluate_linking(
    data: LcQuad,
    embed: Callable[[Sequence[str]], np.ndarray],
    linker: LinkingEngine | None = None,
    num_beams: int = 5,
    batch_size: int = 25,
    progress: Progress = no_progress,
    copy_weights: Sequence[float] = (0.0,),
) -> LinkReport:
    """Scores every method on ``data.dev`` (the dev split, or a test file): dictionary matching and
    dense retrieval (``embed`` maps texts to unit vectors), then, with a ``linker``, the generative
    methods (full trie, n-gram candidate trie, the engine's ``candidates: auto``; each at every copy
    weight and the linker's own; top beam, and with other mentioned beams) and single-triple KBQA.
    ``default_method`` names what ``/link-entity`` does with default request fields: the whole trie
    at the linker's copy weight."""
    dev = data.dev
    runs: dict[str, tuple[list[list[str]], float]] = {}
    dictionary = DictionaryLinker(data.names)
    runs["dictionary (longest match)"] = _timed(lambda: [dictionary.link(q.text) for q in dev])
    runs["dense MiniLM (top 1)"] = _timed(lambda: DenseLinker(embed, data.names).link_all([q.text for q in dev]))
    report = LinkReport(len(dev), data.split)
    if linker is not None:
        weights = sorted({linker.copy_weight, *copy_weights})
        variants: list[tuple[str, CandidateSource | Literal["auto"] | None]] = [
            ("", None),
            (", n-gram candidate trie", NgramCandidates(data.names, entity_id)),
            (", candidates auto", AUTO),
        ]
        for variant, candidates in variants:
            started = time.perf_counter()
            found = generative_predictions(linker, dev, num_beams, batch_size, progress, candidates, weights)
            seconds = time.perf_counter() - started
            for weight, (top1, mentioned) in found.items():
                weighted = f", copy weight {weight:g}" if weight else ""
                runs[f"generative{variant}{weighted}, top beam (beam {num_beams})"] = (top1, seconds)
                runs[f"generative{variant}{weighted}, top beam + other mentioned beams"] = (mentioned, seconds)
        weighted = f", copy weight {linker.copy_weight:g}" if linker.copy_weight else ""
        report.default_method = f"generative{weighted}, top beam (beam {num_beams})"
        report.kbqa = kbqa_accuracy(linker, dev, num_beams, batch_size)
    report.entity_linking = {method: score_predictions(data, predicted, s) for method, (predicted, s) in runs.items()}
    return report
