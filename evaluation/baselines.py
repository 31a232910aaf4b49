"""Baselines a user could write in an afternoon, measured beside the generative linker on the same split."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from models.linking.candidates import words


class DictionaryLinker:
    """Greedy longest match: the longest n-grams of the question that equal a KB name, left to right."""

    def __init__(self, names: Iterable[str]) -> None:
        self.by_words: dict[tuple[str, ...], str] = {}
        for name in names:
            self.by_words.setdefault(tuple(words(name)), name)
        self.longest = max(map(len, self.by_words))

    def link(self, text: str) -> list[str]:
        text_words = words(text)
        used = [False] * len(text_words)
        found = []
        for size in range(min(self.longest, len(text_words)), 0, -1):
            for start in range(len(text_words) - size + 1):
                if any(used[start : start + size]):
                    continue
                name = self.by_words.get(tuple(text_words[start : start + size]))
                if name is not None:
                    found.append(name)
                    used[start : start + size] = [True] * size
        return found


class DenseLinker:
    """Top-1 cosine between the question's and every name's mean-pooled MiniLM vector."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], names: Sequence[str]) -> None:
        self.names = list(names)
        self.embed = embed
        self.matrix = embed(self.names)

    def link_all(self, texts: Sequence[str]) -> list[list[str]]:
        best = (self.embed(texts) @ self.matrix.T).argmax(axis=1)
        return [[self.names[i]] for i in best]
