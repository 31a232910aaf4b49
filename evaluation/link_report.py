"""The LC-QuAD linking report: every method on the same dev split, scored the same way.

:func:`evaluate_linking` runs the baselines (dictionary, dense) and, given a trained linker, the
generative methods and single-triple KBQA; ``simlink evaluate link`` only parses its options,
calls it and prints the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from evaluation.baselines import DenseLinker, DictionaryLinker
from evaluation.lcquad import LcQuad, Question, entity_id
from evaluation.metrics import score_predictions
from index.progress import Progress, no_progress
from models.linking import AUTO, LinkingEngine, LinkQuery, Matches, NgramCandidates, PairMatch

CandidateSource = Callable[[str], "tuple[str, ...] | None"]
Variant = Hashable


@dataclass
class LinkReport:
    """Per method, the :func:`~evaluation.metrics.score_predictions` summary; and KBQA accuracy."""

    questions: int
    split: str = "dev"
    default_method: str | None = None
    """The method ``/link-entity`` applies with default request fields (None without a linker)."""
    entity_linking: dict[str, dict[str, float]] = field(default_factory=dict)
    kbqa: dict[str, float] = field(default_factory=dict)
    several_max_gap: dict[str, object] = field(default_factory=dict)
    """The ``several`` gap fitted on the training split: ``{"fitted": gap or None, "train_f1": {gap: F1}}``."""
    dense_candidates: dict[str, object] = field(default_factory=dict)
    """Where the linker has dense candidates: their ``k`` and :func:`dense_coverage` on the training split."""

    def to_json(self) -> dict[str, object]:
        return {
            "split": self.split,
            "questions": self.questions,
            "default_method": self.default_method,
            "entity_linking": self.entity_linking,
            "kbqa": self.kbqa,
            "several_max_gap": self.several_max_gap,
            "dense_candidates": self.dense_candidates,
        }


def generative_predictions(
    engine: LinkingEngine,
    questions: Sequence[Question],
    num_beams: int,
    batch_size: int,
    progress: Progress = no_progress,
    candidates: CandidateSource | Literal["auto"] | None = None,
    variants: Mapping[Variant, LinkingEngine] | None = None,
) -> dict[Variant, tuple[list[list[str]], list[list[str]]]]:
    """Per variant of the engine (another copy weight or ``several`` gap; one beam search serves them
    all, since they only order and pick among its results), per question: the top beam alone, and the
    engine's ``several`` answer (the top beam and the other beams' names the question writes apart
    from it; :class:`LinkQuery`). With ``candidates``, each question's search is restricted to the ids
    it returns (the full trie when it returns None), or to the engine's own lexical candidates with
    ``"auto"``. Without ``variants``, the engine alone (key None)."""
    variants = variants if variants is not None else {None: engine}
    found: dict[Variant, tuple[list[list[str]], list[list[str]]]] = {key: ([], []) for key in variants}
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
        for by_variant in matches_per_variant(engine, queries, variants):
            for key, matches in by_variant.items():
                names = list(dict.fromkeys(match.name for match in matches))
                found[key][0].append(names[:1])
                found[key][1].append(names)
    return found


def matches_per_variant(
    engine: LinkingEngine, queries: Sequence[LinkQuery], variants: Mapping[Variant, LinkingEngine]
) -> list[dict[Variant, Matches]]:
    """Each query's matches by each variant of ``engine`` (:meth:`LinkingEngine.resolve`), from one
    search by ``engine``: a copy weight or a ``several`` gap only orders and picks among its results."""
    return [
        {key: variant.resolve(query, hypotheses) for key, variant in variants.items()}
        for query, hypotheses in zip(queries, engine.search(queries), strict=True)
    ]


def copy_weight_variants(engine: LinkingEngine, copy_weights: Sequence[float]) -> dict[float, LinkingEngine]:
    return {weight: replace(engine, copy_weight=weight) for weight in copy_weights}


SEVERAL_GAPS: tuple[float | None, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0, None)
"""The ``several_max_gap`` values :func:`fit_several_gap` tries (None: any gap)."""


def fit_several_gap(
    engine: LinkingEngine,
    data: LcQuad,
    num_beams: int,
    batch_size: int,
    progress: Progress = no_progress,
    gaps: Sequence[float | None] = SEVERAL_GAPS,
) -> tuple[float | None, dict[str, float]]:
    """The ``several_max_gap`` with the best F1 on the **training** split, for the request that finds
    several entities best (``candidates: auto`` and ``several``, at the engine's copy weight), and the
    F1 of each gap tried. Ties go to the larger gap. The model has seen these questions, so its beams
    are surer of them than of new ones; the fit is still the only choice made without the dev split."""
    variants = {gap: replace(engine, several_max_gap=gap) for gap in gaps}
    found = generative_predictions(engine, data.train, num_beams, batch_size, progress, AUTO, variants)
    on_train = replace(data, dev=data.train)
    scores = {gap: score_predictions(on_train, found[gap][1], 0.0)["f1"] for gap in gaps}
    best = max(gaps, key=lambda gap: (scores[gap], float("inf") if gap is None else gap))
    return best, {"any" if gap is None else f"{gap:g}": f1 for gap, f1 in scores.items()}


DENSE_KS = (1, 2, 3, 5, 10, 20)


def dense_coverage(
    engine: LinkingEngine,
    questions: Sequence[Question],
    ks: Sequence[int] = DENSE_KS,
    to_id: Callable[[str], str] = entity_id,
    chunk: int = 256,
) -> dict[str, object]:
    """What dense candidates can add, measured without the model (which has seen these questions),
    so that ``k`` can be chosen on the training split: of the gold entities missing from the names a
    question writes (:meth:`LinkingEngine.lexical_candidates`), the share among the ``k`` names
    nearest the question's vector, per ``k``. Only questions that write some name count: the engine
    searches the whole index for the others. ``to_id`` maps a gold name to its entity id. The engine
    must have dense candidates."""
    assert engine.dense is not None, "dense_coverage needs an engine with dense candidates"
    lexical = engine.lexical_candidates("entity")
    writing = [(question, set(keys)) for question in questions if (keys := lexical(question.text)) is not None]
    widest = replace(engine.dense, k=max(ks))
    missed, covered = 0, dict.fromkeys(ks, 0)
    for start in range(0, len(writing), chunk):
        part = writing[start : start + chunk]
        nearest = widest([question.text for question, _ in part])
        named = engine.index.store.entities_of_sequences(sorted({i for ids in nearest for i in ids}))
        for (question, written), ids in zip(part, nearest, strict=True):
            ranked = [[entity for entity, _ in named.get(i, [])] for i in ids]
            for gold in {to_id(name) for name in question.entities} - written:
                missed += 1
                rank = next((r for r, entities in enumerate(ranked) if gold in entities), None)
                for k in ks:
                    covered[k] += rank is not None and rank < k
    shares = {str(k): round(found / missed, 4) if missed else 0.0 for k, found in covered.items()}
    return {
        "questions": len(questions),
        "questions_writing_a_name": len(writing),
        "gold_not_written": missed,
        "share_in_nearest_k": shares,
    }


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
    weight and the linker's own; top beam, and with other mentioned beams, ``several``, at any gap and
    within the gap :func:`fit_several_gap` fits on the training split) and single-triple KBQA.
    ``default_method`` names what ``/link-entity`` does with default request fields: the whole trie
    at the linker's copy weight."""
    dev = data.dev
    runs: dict[str, tuple[list[list[str]], float]] = {}
    dictionary = DictionaryLinker(data.names)
    runs["dictionary (longest match)"] = _timed(lambda: [dictionary.link(q.text) for q in dev])
    runs["dense MiniLM (top 1)"] = _timed(lambda: DenseLinker(embed, data.names).link_all([q.text for q in dev]))
    report = LinkReport(len(dev), data.split)
    if linker is not None:
        gap, train_f1 = fit_several_gap(linker, data, num_beams, batch_size, progress)
        report.several_max_gap = {"fitted": gap, "train_f1": train_f1}
        weights = sorted({linker.copy_weight, *copy_weights})
        variants = {
            (weight, fitted): replace(linker, copy_weight=weight, several_max_gap=gap if fitted else None)
            for weight in weights
            for fitted in ((False, True) if gap is not None else (False,))
        }
        sources: list[tuple[str, CandidateSource | Literal["auto"] | None, LinkingEngine]] = [
            ("", None, linker),
            (", n-gram candidate trie", NgramCandidates(data.names, entity_id), linker),
            (", candidates auto", AUTO, linker),
        ]
        if linker.dense is not None:
            report.dense_candidates = {"k": linker.dense.k, "train": dense_coverage(linker, data.train)}
            sources.append((", candidates auto without dense", AUTO, replace(linker, dense=None)))
        for source, candidates, searcher in sources:
            started = time.perf_counter()
            found = generative_predictions(searcher, dev, num_beams, batch_size, progress, candidates, variants)
            seconds = time.perf_counter() - started
            for (weight, fitted), (top1, mentioned) in found.items():
                weighted = f", copy weight {weight:g}" if weight else ""
                if not fitted:
                    runs[f"generative{source}{weighted}, top beam (beam {num_beams})"] = (top1, seconds)
                    runs[f"generative{source}{weighted}, top beam + other mentioned beams"] = (mentioned, seconds)
                else:
                    runs[f"generative{source}{weighted}, + other mentioned beams within {gap:g}"] = (mentioned, seconds)
        weighted = f", copy weight {linker.copy_weight:g}" if linker.copy_weight else ""
        report.default_method = f"generative{weighted}, top beam (beam {num_beams})"
        report.kbqa = kbqa_accuracy(linker, dev, num_beams, batch_size)
    report.entity_linking = {method: score_predictions(data, predicted, s) for method, (predicted, s) in runs.items()}
    return report
