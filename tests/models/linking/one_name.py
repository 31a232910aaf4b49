"""A test embedder for dense candidates that puts every text nearest one chosen name."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from index.name_vectors import NameVectors
from models.linking.engine import LinkingEngine


class OneName:
    """An embedder that puts every text nearest one name, and records the texts it was given."""

    def __init__(self, engine: LinkingEngine, name: str) -> None:
        trie = engine.index.entity_trie
        self.sequences = np.array(sorted(trie.sequence_id(s) for s in _sequences(engine)))
        self.target = engine.index.entity_trie.sequence_id([*engine.model.tokens.encode_names([name])[0], _end(engine)])
        self.texts: list[str] = []

    def vectors(self) -> NameVectors:
        return NameVectors(np.eye(len(self.sequences), dtype=np.float32), self.sequences, "one-hot")

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        row = np.zeros(len(self.sequences), dtype=np.float32)
        row[list(self.sequences).index(self.target)] = 1.0
        return np.tile(row, (len(texts), 1))


def _end(engine: LinkingEngine) -> int:
    return engine.model.tokens.special_tokens.end


def _sequences(engine: LinkingEngine) -> list[list[int]]:
    names = {name for _, name in engine.index.store.entity_names()}
    return [[*tokens, _end(engine)] for tokens in engine.model.tokens.encode_names(sorted(names))]
