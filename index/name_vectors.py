"""Sentence vectors of an index's entity names, for dense candidates.

A question that writes a name its own way (a typo, a paraphrase, a name split differently) reaches
no name by its words; the name whose vector is nearest the question's often is the one meant. An
index built with ``--name-vectors`` holds one unit vector per distinct entity name (entity-trie
sequence), from a sentence encoder that the manifest names, so that a linker can refuse vectors
from another encoder. This module imports no model code: the builder takes any
:class:`SentenceEmbedder`.

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


def write_name_vectors(
    db: sqlite3.Connection, directory: Path, count: int, embedder: SentenceEmbedder, progress: Progress
) -> dict[str, Any]:
    """Embeds each of the ``count`` distinct names stored in ``db`` into ``directory``, a batch at
    a time; returns the manifest's record of them."""
    sequences = np.empty(count, dtype=np.int64)
    vectors: np.ndarray | None = None
    rows = _distinct_names(db)
    written = 0
    batches = range(0, count, EMBED_BATCH)
    for _ in progress(batches, f"embedding entity names ({EMBED_BATCH:,} per step)", total=len(batches)):
        batch = [row for _, row in zip(range(EMBED_BATCH), rows, strict=False)]
        embedded = np.asarray(embedder.embed_sentences([name for _, name in batch]), dtype=np.float32)
        if vectors is None:
            shape = (count, embedded.shape[1])
            vectors = np.lib.format.open_memmap(directory / VECTORS, mode="w+", dtype=np.float32, shape=shape)
        vectors[written : written + len(batch)] = embedded
        sequences[written : written + len(batch)] = [sequence_id for sequence_id, _ in batch]
        written += len(batch)
    if vectors is None or written != count:
        raise ValueError(f"expected {count} distinct names to embed, found {written}")
    vectors.flush()
    np.save(directory / SEQUENCES, sequences)
    return {"encoder": embedder.identity, "dimensions": int(vectors.shape[1]), "count": count}


@dataclass(frozen=True)
class NameVectors:
    """An index's name vectors, memory-mapped: :meth:`nearest` finds the names nearest a text."""

    vectors: np.ndarray
    sequences: np.ndarray
    encoder: str

    @classmethod
    def open(cls, directory: Path, record: dict[str, Any]) -> NameVectors:
        """The vectors the manifest's ``record`` describes; :class:`IndexLoadError` naming the file
        when they are missing or do not match it."""
        try:
            vectors = np.load(directory / VECTORS, mmap_mode="r")
            sequences = np.load(directory / SEQUENCES)
        except (OSError, ValueError) as error:
            raise IndexLoadError(f"corrupt or missing name vectors in index {directory}: {error}") from error
        expected = (int(record["count"]), int(record["dimensions"]))
        if vectors.shape != expected or sequences.shape != expected[:1]:
            raise IndexLoadError(
                f"name vectors in index {directory} have shape {vectors.shape} (sequences {sequences.shape}), "
                f"the manifest says {expected}; rebuild the index"
            )
        return cls(vectors, sequences, str(record["encoder"]))

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
