"""The similarity engine on the real embedded model, and ranking with pruning."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.encoder import EncodedText, TokenEncoder
from models.similarity import METHODS, SimilarityEngine, rank_candidates, score_pair

PARAPHRASES = [
    ("A man is playing a guitar.", "A person plays the guitar."),
    ("The cat sleeps on the sofa.", "A cat is napping on the couch."),
    ("Stocks fell sharply on Monday.", "Share prices dropped steeply on Monday."),
]
UNRELATED = [
    ("A man is playing a guitar.", "Stocks fell sharply on Monday."),
    ("The cat sleeps on the sofa.", "The committee approved the budget."),
    ("Stocks fell sharply on Monday.", "A woman is slicing an onion."),
]


@pytest.fixture(scope="module")
def engine(encoder: TokenEncoder) -> SimilarityEngine:
    return SimilarityEngine(encoder)


@pytest.mark.parametrize("method", METHODS)
def test_paraphrases_score_above_unrelated_pairs(engine: SimilarityEngine, method: str) -> None:
    close = [s.similarity for s in engine.compare(PARAPHRASES, method)]
    far = [s.similarity for s in engine.compare(UNRELATED, method)]
    assert min(close) > max(far)


def test_alignment_lists_the_heaviest_plan_cells(engine: SimilarityEngine) -> None:
    (score,) = engine.compare([PARAPHRASES[0]], "wrd", alignment=5)
    cells = score.alignment
    assert cells is not None and len(cells) == 5
    assert [c.mass for c in cells] == sorted((c.mass for c in cells), reverse=True)
    assert sum(c.mass for c in cells) <= 1 + 1e-9
    assert ("guitar", "guitar") in {(c.a_token, c.b_token) for c in cells}
    a = PARAPHRASES[0][0]
    for cell in cells:
        if cell.a_span != (0, 0):
            assert a[slice(*cell.a_span)].lower() == cell.a_token


def test_centroid_method_has_no_alignment(engine: SimilarityEngine) -> None:
    with pytest.raises(ValueError, match="no token alignment"):
        engine.compare([PARAPHRASES[0]], "wcd", alignment=3)


def test_leaving_out_special_tokens_changes_the_score(encoder: TokenEncoder) -> None:
    a, b = encoder.encode(list(PARAPHRASES[0]))
    with_special = score_pair(a, b, "wrd").distance
    without = score_pair(a, b, "wrd", skip_special_tokens=True).distance
    assert with_special != pytest.approx(without, abs=1e-6)


def _cloud(vectors: np.ndarray) -> EncodedText:
    n = vectors.shape[0]
    return EncodedText(vectors, tuple(f"t{i}" for i in range(n)), ((0, 0),) * n, np.zeros(n, bool), False)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 12), st.sampled_from(["wrd", "wmd"]))
def test_pruned_ranking_equals_exhaustive_ranking(seed: int, count: int, top_k: int, method: str) -> None:
    rng = np.random.default_rng(seed)
    source = _cloud(rng.normal(size=(rng.integers(1, 8), 5)))
    candidates = [_cloud(rng.normal(size=(rng.integers(1, 8), 5))) for _ in range(count)]
    candidates += candidates[: count // 4]  # exact ties must be ordered the same way too
    pruned = rank_candidates(source, candidates, method, top_k)
    exhaustive = rank_candidates(source, candidates, method, top_k, prune=False)
    assert pruned.results == exhaustive.results
    assert pruned.exact_solves + pruned.pruned == len(candidates)


def test_pruning_on_real_sentences_skips_solves_and_keeps_the_answer(encoder: TokenEncoder, data_dir) -> None:
    lines = (data_dir / "stsb" / "sts-dev.csv").read_text(encoding="utf-8").splitlines()[:200]
    sentences = [line.split("\t")[5] for line in lines]
    encoded = encoder.encode(sentences)
    for method in ("wrd", "wmd"):
        pruned = rank_candidates(encoded[0], encoded[1:], method, 10)
        exhaustive = rank_candidates(encoded[0], encoded[1:], method, 10, prune=False)
        assert pruned.results == exhaustive.results
        assert pruned.pruned > 0
