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
    record = {"encoder": HashedWords.identity, "dimensions": 16, "count": 3, "without_vector": 0}
    assert index.manifest.name_vectors == record
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


def _edit_record(index: LinkingIndex, record: object) -> None:
    manifest_path = index.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["name_vectors"] = record
    manifest_path.write_text(json.dumps(manifest))


def test_missing_or_mismatched_vectors_are_refused_naming_the_index(with_vectors) -> None:
    index, tokenizer, _ = with_vectors
    record = dict(index.manifest.name_vectors)
    for broken, problem in [
        ({**record, "count": 4}, f"name vectors in index {index.path} are float32 \\(3, 16\\).*rebuild"),
        ({"encoder": "x"}, f"corrupt name_vectors record in the manifest of index {index.path}: KeyError"),
        ("yes", f"corrupt index manifest {index.path / 'manifest.json'}"),
    ]:
        _edit_record(index, broken)
        with pytest.raises(IndexLoadError, match=problem):
            LinkingIndex.open(index.path, tokenizer.identity)
    _edit_record(index, record)
    np.save(index.path / name_vectors.SEQUENCES, np.array([0, 1, 10**6]))
    with pytest.raises(IndexLoadError, match=f"name vectors in index {index.path} name sequences its trie lacks"):
        LinkingIndex.open(index.path, tokenizer.identity)
    (index.path / name_vectors.VECTORS).unlink()
    with pytest.raises(IndexLoadError, match=f"missing name vectors in index {index.path}"):
        LinkingIndex.open(index.path, tokenizer.identity)


class RefusesSome(HashedWords):
    """Refuses a text holding "curie" (as an encoder refuses a name it reduces to nothing), or, when
    ``short``, returns one vector too few."""

    def __init__(self, short: bool = False) -> None:
        super().__init__()
        self.short = short

    def embed_sentences(self, texts: Sequence[str]) -> np.ndarray:
        if not self.short and any("curie" in text.lower() for text in texts):
            raise ValueError("text 0 has no tokens")
        vectors = super().embed_sentences(texts)
        return vectors[:-1] if self.short else vectors


def test_a_name_the_encoder_refuses_gets_a_zero_vector_and_is_counted(tmp_path: Path) -> None:
    tokenizer = WordTokenizer()
    build_index(write_kb(tmp_path / "kb"), tmp_path / "index", tokenizer, name_vectors=RefusesSome())
    index = LinkingIndex.open(tmp_path / "index", tokenizer.identity)
    assert index.manifest.name_vectors["without_vector"] == 1
    vectors = index.name_vectors
    (curie,) = tokenizer.encode_names(["Marie Curie"])
    row = list(vectors.sequences).index(index.entity_trie.sequence_id([*curie, 1]))
    assert not vectors.vectors[row].any() and np.count_nonzero(np.abs(vectors.vectors).sum(axis=1)) == 2


def test_an_encoder_that_miscounts_stops_the_build_and_keeps_the_previous_index(built, tmp_path: Path) -> None:
    path, tokenizer = built
    before = (path / "manifest.json").read_text()
    with pytest.raises(RuntimeError, match="the encoder returned vectors of shape \\(2, 16\\) for 3 names"):
        build_index(write_kb(tmp_path / "kb2"), path, tokenizer, name_vectors=RefusesSome(short=True))
    assert (path / "manifest.json").read_text() == before and not (path / name_vectors.VECTORS).exists()


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
