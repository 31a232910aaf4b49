"""Scoring encoded texts: pairs, and rankings whose pruning keeps the exhaustive answer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.similarity.encoder import EncodedText, TokenEncoder
from models.similarity.methods import METHODS
from models.similarity.scoring import ALL_CELLS, rank_candidates, score_pair, score_pairs

PRUNABLE = sorted(name for name, method in METHODS.items() if method.prunable)


def test_leaving_out_special_tokens_changes_the_score(encoder: TokenEncoder) -> None:
    a, b = encoder.encode(["A man is playing a guitar.", "A person plays the guitar."])
    with_special = score_pair(a, b, "wrd").distance
    without = score_pair(a, b, "wrd", skip_special_tokens=True).distance
    assert with_special != pytest.approx(without, abs=1e-6)


def _cloud(vectors: np.ndarray) -> EncodedText:
    n = vectors.shape[0]
    return EncodedText(vectors, tuple(f"t{i}" for i in range(n)), ((0, 0),) * n, np.zeros(n, bool), False)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 12), st.sampled_from(PRUNABLE))
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
    for method in PRUNABLE:
        pruned = rank_candidates(encoded[0], encoded[1:], method, 10)
        exhaustive = rank_candidates(encoded[0], encoded[1:], method, 10, prune=False)
        assert pruned.results == exhaustive.results
        assert pruned.pruned > 0


@pytest.mark.parametrize("method", METHODS)
def test_score_pairs_takes_texts_two_at_a_time(method: str) -> None:
    rng = np.random.default_rng(7)
    texts = [_cloud(rng.normal(size=(rng.integers(1, 6), 4))) for _ in range(6)]
    expected = [score_pair(texts[k], texts[k + 1], method).distance for k in (0, 2, 4)]
    assert [score.distance for score in score_pairs(texts, method)] == expected
    with pytest.raises(ValueError, match="even number"):
        score_pairs(texts[:3], method)


def test_unknown_method_is_refused_with_the_known_names() -> None:
    cloud = _cloud(np.ones((2, 3)))
    with pytest.raises(ValueError, match="known methods: anchored-wrd, wrd, wmd"):
        score_pair(cloud, cloud, "jaccard")


@pytest.mark.parametrize("method", METHODS)
def test_tokens_carry_the_methods_weights_and_cosine_is_the_matrix(method: str) -> None:
    rng = np.random.default_rng(11)
    a, b = _cloud(rng.normal(size=(4, 5))), _cloud(rng.normal(size=(3, 5)))
    score = score_pair(a, b, method, tokens=True, cosine=True)
    assert [t.weight for t in score.a_tokens] == pytest.approx(METHODS[method].weights(a.vectors).tolist())
    assert sum(t.weight for t in score.b_tokens) == pytest.approx(1)
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(score.cosine, unit(a.vectors) @ unit(b.vectors).T, atol=1e-12)
    assert score_pair(a, b, method).cosine is None and score_pair(a, b, method).a_tokens is None


def test_all_cells_returns_every_cell_that_carries_mass() -> None:
    rng = np.random.default_rng(13)
    a, b = _cloud(rng.normal(size=(6, 5))), _cloud(rng.normal(size=(7, 5)))
    cells = score_pair(a, b, "wrd", alignment=ALL_CELLS).alignment
    assert sum(cell.mass for cell in cells) == pytest.approx(1)
    assert len(cells) <= 6 + 7 - 1  # an optimal vertex of the transport polytope
