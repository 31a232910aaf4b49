"""Lexical help for the generative linker: which KB names a text mentions, and where.

The generative linker writes names under a trie; these heuristics narrow each text's trie to the
names its words mention (:class:`NgramCandidates`) and pick several entities out of one beam
search (:func:`several_entities`). Both work on words: runs of letters and digits, lower-cased.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

WORD = re.compile(r"\w+(?:['’.]\w+)*")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (``O'Brien`` and ``U.S.`` stay whole)."""
    return WORD.findall(text.lower())


def mention_span(name: str, text: str, whole: bool = True) -> tuple[int, int] | None:
    """Word span of the name in the text (case-insensitive): all its words, or with ``whole=False``
    the longest prefix of them that occurs (``John Forbes`` for ``John Forbes (British Army officer)``)."""
    text_words, name_words = words(text), words(name)
    for size in range(len(name_words), 0 if not whole else len(name_words) - 1, -1):
        for start in range(len(text_words) - size + 1):
            if text_words[start : start + size] == name_words[:size]:
                return start, start + size
    return None


def mentioned(name: str, text: str) -> bool:
    """Whether the name's words occur consecutively in the text (case-insensitive)."""
    return bool(words(name)) and mention_span(name, text) is not None


def several_entities(names: Sequence[str], text: str) -> list[str]:
    """The top beam, then every other beam whose name the text mentions verbatim at words that no
    name already chosen covers (so ``John`` does not join ``John Forbes (British Army officer)``)."""
    if not names:
        return []
    chosen = [names[0]]
    covered = [mention_span(names[0], text, whole=False)]
    for name in names[1:]:
        span = mention_span(name, text)
        if span and all(other is None or span[1] <= other[0] or other[1] <= span[0] for other in covered):
            chosen.append(name)
            covered.append(span)
    return chosen


class NgramCandidates:
    """A per-question candidate set for the trie: KB names equal to an n-gram of the question, and
    names that start with an n-gram of two or more words (``John Forbes`` in the question admits
    ``John Forbes (British Army officer)``)."""

    def __init__(self, names: Iterable[str], entity_id: Callable[[str], str]) -> None:
        self.exact: dict[tuple[str, ...], list[str]] = {}
        self.by_prefix: dict[tuple[str, ...], list[str]] = {}
        for name in names:
            name_words = tuple(words(name))
            self.exact.setdefault(name_words, []).append(entity_id(name))
            for end in range(2, len(name_words) + 1):
                self.by_prefix.setdefault(name_words[:end], []).append(entity_id(name))
        self.longest = max(map(len, self.exact))

    def __call__(self, text: str) -> tuple[str, ...] | None:
        """Candidate ids, or None (use the full trie) when no n-gram matches."""
        text_words = words(text)
        found: dict[str, None] = {}
        for size in range(1, min(self.longest, len(text_words)) + 1):
            for start in range(len(text_words) - size + 1):
                ngram = tuple(text_words[start : start + size])
                found.update(dict.fromkeys(self.exact.get(ngram, ())))
                found.update(dict.fromkeys(self.by_prefix.get(ngram, ())))
        return tuple(found) or None
