"""Name vectors in an index: one per distinct name, keyed by its trie sequence, refused when broken."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index import name_vectors
from index.builder import build_index
from index.linking_index import LinkingIndex
from index.manifest import IndexLoadError
from index.name_vectors import NameVectors
from tests.index.small_kb import write_kb
from tests.index.word_tokenizer import WordTokenizer


class HashedWords:
    """A sentence embedder without a model: each lower-cased word adds a fixed random vector."""

    identity = "hashed words, 16 dimensions"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed_sentences(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        vectors = np.stack([sum((_word_vector(w) for w in text.lower().split()), np.zeros(16)) for text in texts])
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _word_vector(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).standard_normal(16)


@pytest.fixture
def with_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LinkingIndex, WordTokenizer, HashedWords]:
    monkeypatch.setattr(name_vectors, "EMBED_BATCH", 2)  # several batches from a small KB
    tokenizer, embedder = WordTokenizer(), HashedWords()
    build_index(write_kb(tmp_path / "kb"), tmp_path / "index", tokenizer, name_vectors=embedder)
    return LinkingIndex.open(tmp_path / "index", tokenizer.identity), tokenizer, embedder


def test_each_distinct_name_has_its_own_vector_under_its_sequence_id(with_vectors) -> None:
    index, tokenizer, embedder = with_vectors
    assert index.manifest.name_vectors == {"encoder": HashedWords.identity, "dimensions": 16, "count": 3}
    assert embedder.calls == [2, 1]
    vectors = index.name_vectors
    assert vectors is not None and vectors.encoder == HashedWords.identity
    for name in ("Paris", "France"):
        (tokens,) = tokenizer.encode_names([name])
        (nearest,) = vectors.nearest(embedder.embed_sentences([name]), 1)
        assert nearest == [index.entity_trie.sequence_id([*tokens, 1])]


def test_an_index_built_without_vectors_has_none(built: tuple[Path, WordTokenizer]) -> None:
    path, tokenizer = built
    index = LinkingIndex.open(path, tokenizer.identity)
    assert index.manifest.name_vectors is None and index.name_vectors is None
    assert not (path / name_vectors.VECTORS).exists()


def test_missing_or_mismatched_vectors_are_refused_naming_the_index(with_vectors) -> None:
    index, tokenizer, _ = with_vectors
    manifest_path = index.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["name_vectors"]["count"] = 4
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match=f"name vectors in index {index.path}.*rebuild"):
        LinkingIndex.open(index.path, tokenizer.identity)
    (index.path / name_vectors.VECTORS).unlink()
    with pytest.raises(IndexLoadError, match=f"missing name vectors in index {index.path}"):
        LinkingIndex.open(index.path, tokenizer.identity)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 30),
    k=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_nearest_are_the_largest_dot_products_best_first(rows: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((rows, 8)).astype(np.float32)
    sequences = rng.permutation(1000)[:rows]
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    found = NameVectors(vectors, sequences, "random").nearest(queries, k)
    assert len(found) == 3
    for query, ids in zip(queries, found, strict=True):
        scores = dict(zip(sequences.tolist(), (vectors @ query).tolist(), strict=True))
        assert len(ids) == min(k, rows) and len(set(ids)) == len(ids)
        assert [scores[i] for i in ids] == sorted((scores[i] for i in ids), reverse=True)
        assert all(scores[i] <= min(scores[j] for j in ids) for i in scores if i not in ids) if ids else True
