"""The KgCLUE report: the lexical baseline and, given a trained linker, generative KBQA, on every split,
scored with KgCLUE's official score.

:func:`evaluate_kgclue` does the work; ``simlink evaluate kgclue`` trains or loads the linker, builds
its index, calls it and prints the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from evaluation.baselines import LexicalKbqa
from evaluation.kgclue import KgclueData, KgclueQuestion, Triple, score_answers
from evaluation.link_report import copy_weight_variants, matches_per_variant
from index.progress import Progress, no_progress
from models.linking import AUTO, LinkingEngine, LinkQuery, PairMatch

LEXICAL = "lexical (longest subject name)"


@dataclass
class KgclueReport:
    """Per split and method, :func:`~evaluation.kgclue.score_answers` on every question (``all``) and on
    the questions whose subject name is not written in them as it is (``not_verbatim``)."""

    kb: dict[str, int]
    splits: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    chosen: dict[str, object] = field(default_factory=dict)
    """The generative setting chosen on the held-out split (``candidates``, ``copy_weight``)."""

    def to_json(self) -> dict[str, object]:
        return {"kb": self.kb, "chosen_on_heldout": self.chosen, "splits": self.splits}


def generative_answers(
    linker: LinkingEngine,
    texts: Sequence[str],
    num_beams: int,
    batch_size: int,
    progress: Progress = no_progress,
    candidates: Literal["auto"] | None = None,
    copy_weights: Sequence[float] = (0.0,),
) -> dict[float, list[Triple | None]]:
    """Per copy weight (:attr:`LinkingEngine.copy_weight`), the linker's top (subject, predicate) under
    the KBQA trie (narrowed to the subjects the question writes with ``candidates="auto"``) and the
    first object the KB holds for it. One beam search serves every weight: the weight only reorders
    its results."""
    answers: dict[float, list[Triple | None]] = {weight: [] for weight in copy_weights}
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    for batch in progress(batches, "answering", len(batches)):
        queries = [LinkQuery(t, "kbqa", top_k=1, num_beams=num_beams, candidates=candidates) for t in batch]
        for by_weight in matches_per_variant(linker, queries, copy_weight_variants(linker, copy_weights)):
            for weight, found in by_weight.items():
                answers[weight].append(_triple(found[0]) if found else None)
    return answers


def _lexical_answers(lexical: LexicalKbqa, questions: Sequence[KgclueQuestion]) -> dict[float, list[Triple | None]]:
    return {0.0: [lexical.answer(question.question) for question in questions]}


def _triple(match: PairMatch) -> Triple:
    return match.subject, match.predicate, match.answers[0] if match.answers else ""


def _scored(predicted: list[Triple | None], seconds: float, questions: Sequence[KgclueQuestion]) -> dict:
    """Scores answers on every question and on those whose subject name they do not write."""
    hidden = [(p, q) for p, q in zip(predicted, questions, strict=True) if not q.names_its_subject()]
    return {
        "all": {**score_answers(predicted, questions), "ms_per_question": 1000 * seconds / max(len(questions), 1)},
        "not_verbatim": score_answers([p for p, _ in hidden], [q for _, q in hidden]),
    }


def _timed(answer: Callable[[], dict[float, list[Triple | None]]]) -> tuple[dict[float, list[Triple | None]], float]:
    started = time.perf_counter()
    answers = answer()
    return answers, time.perf_counter() - started


def _label(base: str, candidates: str | None, weight: float) -> str:
    parts = [base] + (["candidates auto"] if candidates else []) + ([f"copy weight {weight:g}"] if weight else [])
    return ", ".join(parts)


def evaluate_kgclue(
    data: KgclueData,
    linker: LinkingEngine | None = None,
    num_beams: int = 5,
    batch_size: int = 25,
    progress: Progress = no_progress,
    generative_label: str = "generative",
    copy_weights: Sequence[float] = (0.0,),
) -> KgclueReport:
    """Scores the lexical baseline and, with a ``linker`` (whose index holds ``data``'s KB), generative
    KBQA on each split of ``data`` (held out of train.json, dev, test).

    Generative KBQA runs over the whole trie and with ``candidates: auto``, each at every copy weight
    on the held-out split. The best of those settings there (``chosen``) is the one scored on dev and
    test, beside the model alone (whole trie, weight 0): choices never look at dev.
    """
    lexical = LexicalKbqa(data.facts)
    pairs = {(fact.subject, fact.predicate) for fact in data.facts}
    report = KgclueReport({"subjects": len(data.subjects), "pairs": len(pairs), "facts": len(data.facts)})
    settings = [(None, 0.0)]
    for name, questions in data.splits().items():
        answers, seconds = _timed(partial(_lexical_answers, lexical, questions))
        methods = {LEXICAL: _scored(answers[0.0], seconds, questions)}
        if linker is not None:
            texts = [q.question for q in questions]
            weights = copy_weights if name == "heldout" else sorted({0.0, *(w for _, w in settings)})
            for candidates in (None, AUTO) if name == "heldout" else dict.fromkeys(c for c, _ in settings):
                answers, seconds = _timed(
                    partial(generative_answers, linker, texts, num_beams, batch_size, progress, candidates, weights)
                )
                for weight, predicted in answers.items():
                    if name == "heldout" or (candidates, weight) in settings:
                        methods[_label(generative_label, candidates, weight)] = _scored(predicted, seconds, questions)
            if name == "heldout":
                settings = [(None, 0.0), _best_setting(methods, generative_label, copy_weights)]
                report.chosen = {"candidates": settings[1][0], "copy_weight": settings[1][1]}
        report.splits[name] = methods
    return report


def _best_setting(methods: dict, label: str, copy_weights: Sequence[float]) -> tuple[str | None, float]:
    """The (candidates, copy weight) with the best held-out score (the first of equals, simplest first)."""
    options = [(candidates, weight) for candidates in (None, AUTO) for weight in sorted(copy_weights)]
    return max(options, key=lambda option: methods[_label(label, *option)]["all"]["score"])
