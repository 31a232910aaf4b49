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

from evaluation.baselines import LexicalKbqa
from evaluation.kgclue import KgclueData, KgclueQuestion, Triple, score_answers
from evaluation.link_report import kbqa_predictions
from index.progress import Progress, no_progress
from models.linking import LinkingEngine

LEXICAL = "lexical (longest subject name)"


@dataclass
class KgclueReport:
    """Per split and method, :func:`~evaluation.kgclue.score_answers` on every question (``all``) and on
    the questions whose subject name is not written in them as it is (``not_verbatim``)."""

    kb: dict[str, int]
    splits: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"kb": self.kb, "splits": self.splits}


def generative_answers(
    linker: LinkingEngine,
    texts: Sequence[str],
    num_beams: int,
    batch_size: int,
    progress: Progress = no_progress,
) -> list[Triple | None]:
    """The linker's top (subject, predicate) under the KBQA trie, and the first object the KB holds for it."""
    matches = kbqa_predictions(linker, texts, num_beams, batch_size, progress)
    return [(m.subject, m.predicate, m.answers[0] if m.answers else "") if m else None for m in matches]


def _scored(answer: Callable[[Sequence[str]], list[Triple | None]], questions: Sequence[KgclueQuestion]) -> dict:
    """Answers the questions and scores the answers on every question and on the not-verbatim ones."""
    started = time.perf_counter()
    predicted = answer([q.question for q in questions])
    seconds = time.perf_counter() - started
    hidden = [(p, q) for p, q in zip(predicted, questions, strict=True) if not q.names_its_subject()]
    return {
        "all": {**score_answers(predicted, questions), "ms_per_question": 1000 * seconds / max(len(questions), 1)},
        "not_verbatim": score_answers([p for p, _ in hidden], [q for _, q in hidden]),
    }


def evaluate_kgclue(
    data: KgclueData,
    linker: LinkingEngine | None = None,
    num_beams: int = 5,
    batch_size: int = 25,
    progress: Progress = no_progress,
    generative_label: str = "generative",
) -> KgclueReport:
    """Scores the lexical baseline and, with a ``linker`` (whose index holds ``data``'s KB), generative
    KBQA on each split of ``data`` (held out of train.json, dev, test)."""
    lexical = LexicalKbqa(data.facts)
    pairs = {(fact.subject, fact.predicate) for fact in data.facts}
    report = KgclueReport({"subjects": len(data.subjects), "pairs": len(pairs), "facts": len(data.facts)})
    for name, questions in data.splits().items():
        methods = {LEXICAL: _scored(lambda texts: [lexical.answer(text) for text in texts], questions)}
        if linker is not None:
            generate = partial(
                generative_answers, linker, num_beams=num_beams, batch_size=batch_size, progress=progress
            )
            methods[generative_label] = _scored(generate, questions)
        report.splits[name] = methods
    return report
