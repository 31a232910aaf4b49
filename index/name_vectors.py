"""Sentence vectors of an index's entity names, for dense candidates.

A question that writes a name its own way (a typo, a paraphrase, a name split differently) reaches
no name by its words; the name whose vector is nearest the question's often is the one meant. An
index built with ``--name-vectors`` holds one unit vector per distinct entity name (entity-trie
sequence), from a sentence encoder that the manifest names, so that a linker can refuse vectors
from another encoder. This module imports no model code: the builder takes any
:class:`SentenceEmbedder`.

A name the encoder refuses (one it reduces to nothing) gets a zero vector, counted in the manifest
as ``without_vector``.

Files (float32, memory-mapped when served)::

    name_vectors.npy             [names, dimensions] unit vectors
    name_vector_sequences.npy    [names] the entity-trie sequence id of each row
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from index.manifest import IndexLoadError
from index.progress import Progress
from index.trie import TokenTrie

VECTORS = "name_vectors.npy"
SEQUENCES = "name_vector_sequences.npy"
EMBED_BATCH = 2048


class SentenceEmbedder(Protocol):
    """What the builder needs of a sentence encoder: an identity and unit vectors of texts."""

    @property
    def identity(self) -> str:
        """Names the encoder and everything that shapes its vectors (model, layer, pooling)."""
        ...

    def embed_sentences(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), dimensions]`` float32 unit vectors."""
        ...


def _distinct_names(db: sqlite3.Connection) -> Iterator[tuple[int, str]]:
    """``(sequence id, name)`` per entity-trie sequence, in sequence order (one name of those that
    tokenize alike)."""
    yield from db.execute(
        "SELECT n.sequence_id, MIN(e.name) FROM entity_names n JOIN entities e ON e.id = n.entity_id "
        "GROUP BY n.sequence_id ORDER BY n.sequence_id"
    )


def _embedded(embedder: SentenceEmbedder, names: list[str]) -> tuple[np.ndarray, int]:
    """The names' vectors and how many the encoder refused (a name it reduces to nothing, such as a
    lone zero-width character): those get a zero vector, which scores 0 against every text."""
    try:
        return _checked(embedder.embed_sentences(names), len(names)), 0
    except ValueError as error:  # one refused name fails its batch; embed the batch name by name
        rows, refused = [], 0
        for name in names:
            try:
                rows.append(_checked(embedder.embed_sentences([name]), 1)[0])
            except ValueError:
                rows.append(None)
                refused += 1
        width = next((len(row) for row in rows if row is not None), 0)
        if not width:
            raise RuntimeError(f"the encoder refused every name of a batch, such as {names[0]!r}") from error
        return np.stack([np.zeros(width, np.float32) if row is None else row for row in rows]), refused


def _checked(vectors: np.ndarray, count: int) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != count:
        raise RuntimeError(f"the encoder returned vectors of shape {vectors.shape} for {count} names")
    return vectors


def write_name_vectors(
    db: sqlite3.Connection, directory: Path, count: int, embedder: SentenceEmbedder, progress: Progress
) -> dict[str, Any]:
    """Embeds each of the ``count`` distinct names stored in ``db`` into ``directory``, a batch at
    a time; returns the manifest's record of them."""
    sequences = np.empty(count, dtype=np.int64)
    vectors: np.ndarray | None = None
    rows = _distinct_names(db)
    written = refused = 0
    batches = range(0, count, EMBED_BATCH)
    for _ in progress(batches, f"embedding entity names ({EMBED_BATCH:,} per step)", total=len(batches)):
        batch = [row for _, row in zip(range(EMBED_BATCH), rows, strict=False)]
        embedded, batch_refused = _embedded(embedder, [name for _, name in batch])
        if vectors is None:
            shape = (count, embedded.shape[1])
            vectors = np.lib.format.open_memmap(directory / VECTORS, mode="w+", dtype=np.float32, shape=shape)
        vectors[written : written + len(batch)] = embedded
        sequences[written : written + len(batch)] = [sequence_id for sequence_id, _ in batch]
        written += len(batch)
        refused += batch_refused
    if vectors is None or written != count:
        raise ValueError(f"expected {count} distinct names to embed, found {written}")
    vectors.flush()
    np.save(directory / SEQUENCES, sequences)
    return {
        "encoder": embedder.identity,
        "dimensions": int(vectors.shape[1]),
        "count": count,
        "without_vector": refused,
    }


@dataclass(frozen=True, eq=False)
class NameVectors:
    """An index's name vectors, memory-mapped: :meth:`nearest` finds the names nearest a text."""

    vectors: np.ndarray
    sequences: np.ndarray
    encoder: str

    @classmethod
    def open(cls, directory: Path, record: Any, trie: TokenTrie) -> NameVectors:
        """The vectors the manifest's ``record`` describes, for the names of ``trie``;
        :class:`IndexLoadError` naming the index when they are missing or do not match."""
        try:
            expected, encoder = (int(record["count"]), int(record["dimensions"])), str(record["encoder"])
        except (KeyError, TypeError, ValueError) as error:
            raise IndexLoadError(
                f"corrupt name_vectors record in the manifest of index {directory}: {error!r}"
            ) from error
        try:
            vectors = np.load(directory / VECTORS, mmap_mode="r")
            sequences = np.load(directory / SEQUENCES)
        except (OSError, ValueError) as error:
            raise IndexLoadError(f"corrupt or missing name vectors in index {directory}: {error}") from error
        if vectors.shape != expected or vectors.dtype != np.float32 or sequences.shape != expected[:1]:
            raise IndexLoadError(
                f"name vectors in index {directory} are {vectors.dtype} {vectors.shape} (sequences "
                f"{sequences.shape}), the manifest says float32 {expected}; rebuild the index"
            )
        if not np.issubdtype(sequences.dtype, np.integer) or not trie.are_sequence_ids(sequences):
            raise IndexLoadError(f"name vectors in index {directory} name sequences its trie lacks; rebuild the index")
        return cls(vectors, sequences, encoder)

    def nearest(self, queries: np.ndarray, k: int) -> list[list[int]]:
        """The sequence ids of the ``k`` names nearest each query vector (rows of ``queries``, unit
        length), nearest first."""
        k = min(k, len(self.sequences))
        if k <= 0 or not len(queries):
            return [[] for _ in range(len(queries))]
        scores = np.asarray(queries, dtype=np.float32) @ self.vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)
        return self.sequences[order].tolist()
