"""A whitespace tokenizer for index tests: the index takes any tokenizer, not only a model's."""

from __future__ import annotations

import time
from collections.abc import Sequence

from index.manifest import SpecialTokens, TokenizerIdentity


class WordTokenizer:
    """Each distinct lower-cased word gets the next id (ids 0-2 are reserved for specials)."""

    special_tokens = SpecialTokens(end=1, separator=2)

    def __init__(self, name: str = "words", delay: float = 0.0) -> None:
        self.vocab: dict[str, int] = {}
        self.delay = delay
        self.identity = TokenizerIdentity(name, f"{name}-hash", 1000)

    def encode_names(self, texts: Sequence[str]) -> list[list[int]]:
        time.sleep(self.delay)
        return [[self.vocab.setdefault(word, len(self.vocab) + 3) for word in text.lower().split()] for text in texts]
