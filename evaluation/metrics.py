"""Entity-linking metrics: micro precision, recall and F1 over (question, entity) pairs, and more."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from evaluation.lcquad import LcQuad


@dataclass
class LinkScores:
    """Micro precision/recall/F1 over (question, entity) pairs, exact match per question, valid-name share."""

    true_positive: int = 0
    predicted: int = 0
    gold: int = 0
    exact: int = 0
    questions: int = 0
    valid: int = 0
    seen_hits: list[int] = field(default_factory=lambda: [0, 0])
    unseen_hits: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, predicted: Sequence[str], gold: Sequence[str], kb: set[str], seen: set[str]) -> None:
        predicted_set, gold_set = set(predicted), set(gold)
        self.true_positive += len(predicted_set & gold_set)
        self.predicted += len(predicted_set)
        self.gold += len(gold_set)
        self.exact += predicted_set == gold_set
        self.questions += 1
        self.valid += sum(name in kb for name in predicted_set)
        for name in gold_set:
            bucket = self.seen_hits if name in seen else self.unseen_hits
            bucket[0] += name in predicted_set
            bucket[1] += 1

    def summary(self) -> dict[str, float]:
        precision = self.true_positive / max(self.predicted, 1)
        recall = self.true_positive / max(self.gold, 1)
        return {
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-12),
            "exact_match": self.exact / max(self.questions, 1),
            "valid_names": self.valid / max(self.predicted, 1),
            "recall_seen": self.seen_hits[0] / max(self.seen_hits[1], 1),
            "recall_unseen": self.unseen_hits[0] / max(self.unseen_hits[1], 1),
        }


def score_predictions(data: LcQuad, predicted: Sequence[Sequence[str]], seconds: float) -> dict[str, float]:
    """:class:`LinkScores` summary of one method's dev predictions, plus its time per question."""
    kb, seen = set(data.names), {name for question in data.train for name in question.entities}
    scores = LinkScores()
    for names, question in zip(predicted, data.dev, strict=True):
        scores.add(names, question.entities, kb, seen)
    return {**scores.summary(), "ms_per_question": 1000 * seconds / max(len(data.dev), 1)}
