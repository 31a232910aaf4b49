"""Baselines a user could write in an afternoon, measured beside the generative linker on the same split."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from evaluation.kgclue import Triple, normalize, subject_name
from index.kb import Fact
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


def character_dice(a: str, b: str) -> float:
    """Dice coefficient of two strings' sets of characters (white space left out)."""
    first, second = set(a) - {" "}, set(b) - {" "}
    return 2 * len(first & second) / max(len(first) + len(second), 1)


class LexicalKbqa:
    """Baseline (a): the longest KB subject whose name (before any qualifier) is written in the
    question, and of that subject's predicates the one whose characters overlap most with the rest of
    the question (:func:`character_dice`; the first in KB order on a tie); its first object.

    Subjects sharing the longest name found compete by their predicates. Case and white space are
    compared normalized."""

    def __init__(self, facts: Iterable[Fact]) -> None:
        self.by_name: dict[str, list[str]] = {}
        self.predicates: dict[str, list[str]] = {}
        self.objects: dict[tuple[str, str], str] = {}
        for fact in facts:
            if fact.subject not in self.predicates:
                self.by_name.setdefault(normalize(subject_name(fact.subject)), []).append(fact.subject)
            known = self.predicates.setdefault(fact.subject, [])
            if fact.predicate not in known:
                known.append(fact.predicate)
            self.objects.setdefault((fact.subject, fact.predicate), fact.object)
        self.longest = max(map(len, self.by_name), default=0)

    def longest_name(self, text: str) -> str | None:
        """The longest subject name written in ``text`` (normalized), the leftmost among equals."""
        for size in range(min(self.longest, len(text)), 0, -1):
            for start in range(len(text) - size + 1):
                if text[start : start + size] in self.by_name:
                    return text[start : start + size]
        return None

    def answer(self, question: str) -> Triple | None:
        """The (subject, predicate, object) the baseline answers, or None if no subject name is written."""
        text = normalize(question)
        name = self.longest_name(text)
        if name is None:
            return None
        rest = text.replace(name, " ", 1)
        pairs = [(subject, predicate) for subject in self.by_name[name] for predicate in self.predicates[subject]]
        subject, predicate = max(pairs, key=lambda pair: character_dice(normalize(pair[1]), rest))
        return subject, predicate, self.objects[(subject, predicate)]
