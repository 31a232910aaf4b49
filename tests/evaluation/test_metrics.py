"""Linking metrics on hand-counted predictions."""

from __future__ import annotations

import pytest

from evaluation.metrics import LinkScores


def test_scores_are_micro_averaged() -> None:
    scores = LinkScores()
    kb, seen = {"A", "B", "C"}, {"A"}
    scores.add(["A", "B"], ["A"], kb, seen)
    scores.add(["Z"], ["C"], kb, seen)
    summary = scores.summary()
    assert summary["precision"] == pytest.approx(1 / 3) and summary["recall"] == pytest.approx(1 / 2)
    assert summary["f1"] == pytest.approx(0.4) and summary["exact_match"] == 0
    assert summary["valid_names"] == pytest.approx(2 / 3)
    assert (summary["recall_seen"], summary["recall_unseen"]) == (1.0, 0.0)
