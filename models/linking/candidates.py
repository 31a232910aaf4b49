"""Candidate names for the generative linker: which KB names a text mentions, and where.

The generative linker writes names under a trie; these heuristics narrow each text's trie to the
names the text mentions (:class:`LexicalCandidates`, :class:`NgramCandidates`) or whose vectors are
nearest its own (:class:`DenseCandidates`), and find where the text writes a generated name
(:func:`find_mention`), which is how the engine picks several entities out of one beam search.
:class:`LexicalCandidates` and :func:`find_mention` work in any script (Chinese is written without
spaces); :class:`NgramCandidates` works on words: runs of letters and digits, lower-cased.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import marisa_trie
import numpy as np
from rapidfuzz.distance import LCSseq

from index.name_vectors import NameVectors
from models.similarity.encoder import TextError

WORD = re.compile(r"\w+(?:['’.]\w+)*")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
_PLURAL_FROM = 4  # surfaces this long or longer may be written with a plural ending


def writes_chinese(text: str) -> bool:
    """Whether ``text`` holds a Chinese character (a CJK ideograph)."""
    return _HAN.search(text) is not None


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (``O'Brien`` and ``U.S.`` stay whole)."""
    return WORD.findall(text.lower())


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


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence of two strings' characters (rapidfuzz's
    bit-parallel LCS: it runs for every hypothesis of every request when a copy weight is set)."""
    return int(LCSseq.similarity(a, b))


def copied_characters(target: str, text: str) -> int:
    """How much of a generated target the text writes: the longest common subsequence of the two,
    folded (:func:`fold`). Answers are mostly copied from the question, so this favours the longest
    name the question writes and, between names that share it, the one whose qualifier it echoes."""
    folded_target = fold(target)
    present = set(folded_target)
    return lcs_length(folded_target, "".join(char for char in fold(text) if char in present))


def fold(text: str) -> str:
    """``text`` for matching, one character for one: NFKC (full-width ``（`` is ``(``) and case-folded,
    except where that would change the length (``ß``), so that offsets in the result are offsets in ``text``.

    Character by character, as :func:`_fold_each` does; a text NFKC leaves as it is and whose case
    folding keeps its length (most texts, all of ASCII) is folded whole, in one call, to the same result."""
    if unicodedata.is_normalized("NFKC", text):
        folded = text.casefold()
        if len(folded) == len(text):
            return folded
    return _fold_each(text)


def _fold_each(text: str) -> str:
    folded = (unicodedata.normalize("NFKC", char).casefold() for char in text)
    return "".join(new if len(new) == 1 else old for new, old in zip(folded, text, strict=True))


@dataclass(frozen=True)
class MatchingForm:
    """A text as names are matched in it (:func:`matching_form`), with the offset in the original
    text of each of its characters, so that a match is reported where the original writes it."""

    text: str
    offsets: tuple[int, ...]
    folded: str  # the original text, folded (:func:`fold`): one character for one

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original text's span of ``self.text[start:end]`` (``end > start``), with the combining
        accents written after its last letter that the matching form dropped (a mark it keeps, after
        a letter of another script, is a character of its own, outside the span)."""
        last = self.offsets[end - 1] + 1
        bound = self.offsets[end] if end < len(self.offsets) else len(self.folded)
        while last < bound and unicodedata.category(self.folded[last]).startswith("M"):
            last += 1
        return self.offsets[start], last


def matching_form(text: str) -> MatchingForm:
    """``text`` as names are matched in it: folded (:func:`fold`), accents of Latin letters dropped
    (``José`` is ``jose``), a ``.`` or apostrophe between two letters dropped (``U.S.`` is ``US``,
    ``O'Brien`` is ``OBrien``), a possessive ``'s`` set apart (``Ada's`` writes ``Ada``), other
    punctuation read as a space (``Behave Yourself!``, ``Front-engine``), runs of white space as one."""
    folded = fold(text)
    chars: list[str] = []
    offsets: list[int] = []

    def space(position: int) -> None:
        if chars and chars[-1] != " ":
            chars.append(" ")
            offsets.append(position)

    for position, char in enumerate(folded):
        if char.isascii() and char.isalnum():  # most characters of most texts: kept as they are
            chars.append(char)
            offsets.append(position)
            continue
        category = unicodedata.category(char)
        if category.startswith("M") and chars and chars[-1].isascii():
            continue  # a combining accent written apart from its Latin letter
        if char in _JOINERS and _between_letters(folded, position):
            if char != "." and _possessive(folded, position):
                space(position)
            continue
        if char.isspace() or (category.startswith("P") and char not in _KEPT_PUNCTUATION):
            space(position)
            continue
        chars.append(_without_accent(char))
        offsets.append(position)
    return MatchingForm("".join(chars), tuple(offsets), folded)


_JOINERS = frozenset(".'’")
_KEPT_PUNCTUATION = frozenset("#&@%*")  # part of names: C#, AT&T


def _between_letters(text: str, position: int) -> bool:
    return 0 < position < len(text) - 1 and text[position - 1].isalpha() and text[position + 1].isalpha()


def _possessive(text: str, position: int) -> bool:
    """Whether the apostrophe at ``position`` starts a word-final ``'s``."""
    after = position + 2
    return text[position + 1] == "s" and (after == len(text) or not text[after].isalnum())


def _without_accent(char: str) -> str:
    """A Latin letter without its accents (``é`` -> ``e``); any other character as it is."""
    decomposed = unicodedata.normalize("NFD", char)
    if len(decomposed) > 1 and decomposed[0].isascii() and all(unicodedata.combining(c) for c in decomposed[1:]):
        return decomposed[0]
    return char


def surfaces(name: str) -> set[str]:
    """How a text may write ``name``, in :func:`matching_form`: the name, the name before a trailing
    qualifier in parentheses (``刘晓华`` for ``刘晓华（广东工业大学教授）``, ``Python`` for ``Python
    (programming language)``) and the name before a comma's qualifier in capitalised words
    (``Cohoes`` for ``Cohoes, New York``; not ``Tyler, the Creator`` or ``Earth, Wind & Fire``)."""
    whole = name.strip()
    found = {fold(whole), _QUALIFIER.sub("", fold(whole)), fold(_without_comma_qualifier(whole))}
    found = {matching_form(surface).text.strip() for surface in found}
    return {surface for surface in found if surface and "\x00" not in surface}  # marisa keys end at NUL


def _without_comma_qualifier(name: str) -> str:
    """``name`` before its one comma, when a space and capitalised words follow it (Wikipedia's
    ``Place, Region`` titles); otherwise ``name``."""
    head, comma, qualifier = name.partition(", ")
    words = qualifier.split()
    if not comma or "," in head + qualifier or not words or not all(word[:1].isupper() for word in words):
        return name
    return head


@dataclass(frozen=True)
class LexicalMatch:
    """A name's surface found in a text: its character span and the key (entity id, or subject) behind it."""

    start: int
    end: int
    key: str

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def _joined(left: str, right: str) -> bool:
    """Whether a word runs on from ``left`` to ``right``: both letters or digits, neither Chinese
    (Chinese needs no spaces between words)."""
    return left.isalnum() and right.isalnum() and not (writes_chinese(left) or writes_chinese(right))


def _word_end(text: str, start: int, end: int) -> int | None:
    """Where a surface found at ``text[start:end]`` ends as whole words: ``end``, or after a plural
    ending (``screenwriters`` for ``Screenwriter``, ``churches`` for ``Church``; surfaces of at least
    ``_PLURAL_FROM`` characters ending in a letter); None when a letter or digit runs on across
    either end."""

    def free_after(position: int) -> bool:
        return position == len(text) or not _joined(text[position - 1], text[position])

    if start > 0 and _joined(text[start - 1], text[start]):
        return None
    if free_after(end):
        return end
    if end - start >= _PLURAL_FROM and text[end - 1].isalpha():
        for ending in _plural_endings(text[start:end]):
            if text.startswith(ending, end) and free_after(end + len(ending)):
                return end + len(ending)
    return None


def _plural_endings(surface: str) -> tuple[str, ...]:
    """English plural endings a surface may take: ``es`` only after s, x, z, ch or sh."""
    return ("s", "es") if surface.endswith(("s", "x", "z", "ch", "sh")) else ("s",)


def find_mention(
    name: str,
    text: str,
    within: tuple[int, int] | None = None,
    avoid: Sequence[tuple[int, int]] = (),
    form: MatchingForm | None = None,
) -> tuple[int, int] | None:
    """The character span where ``text`` writes ``name`` (one of its :func:`surfaces`, in
    :func:`matching_form`, as whole words except next to Chinese), or None: the first place that
    overlaps no span of ``avoid``, preferring one inside ``within`` (a mention the request marks).
    Longer surfaces (the whole name) come before shorter ones (the name without its qualifier).
    ``form`` is ``matching_form(text)``, when the caller already has it."""
    form = matching_form(text) if form is None else form
    closing = fold(name).rstrip()[-1:]  # a name ending in punctuation (U.S.) keeps it in its span
    closing = closing if closing and unicodedata.category(closing).startswith("P") else ""
    found = []
    for surface in sorted(surfaces(name), key=len, reverse=True):
        start = form.text.find(surface)
        while start >= 0:
            end = _word_end(form.text, start, start + len(surface))
            if end is not None:
                span = form.original(start, end)
                if closing and form.folded.startswith(closing, span[1]):
                    span = (span[0], span[1] + 1)
                if not any(_overlap(span, other) for other in avoid):
                    found.append(span)
            start = form.text.find(surface, start + 1)
    inside = [span for span in found if within is not None and _inside(span, within)]
    return (inside or found or [None])[0]


def _overlap(span: tuple[int, int], other: tuple[int, int]) -> bool:
    return span[0] < other[1] and other[0] < span[1]


def _inside(span: tuple[int, int], outer: tuple[int, int]) -> bool:
    return outer[0] <= span[0] and span[1] <= outer[1]


class LexicalCandidates:
    """Every KB name written in a text, in any script: a trie of the names' :func:`surfaces`, walked
    from each character of the text's :func:`matching_form`, so a text of n characters costs n prefix walks.

    Built from ``(key, name)`` pairs: a key is what the caller wants back (an entity id, a subject).
    """

    def __init__(self, named: Iterable[tuple[str, str]]) -> None:
        self._trie = marisa_trie.BytesTrie((surface, key.encode()) for key, name in named for surface in surfaces(name))

    def __len__(self) -> int:
        return len(self._trie)

    def matches(self, text: str) -> list[LexicalMatch]:
        """Every occurrence of a surface as whole words (:func:`find_mention`'s rule), in text order,
        at the original text's offsets."""
        form = matching_form(text.replace("\x00", "\ufffe"))  # no surface holds NUL (see surfaces)
        found = []
        for start in range(len(form.text)):
            for surface in self._trie.prefixes(form.text[start:]):
                end = _word_end(form.text, start, start + len(surface))
                if end is not None:
                    span = form.original(start, end)
                    found.extend(LexicalMatch(*span, key.decode()) for key in self._trie[surface])
        return found

    def __call__(self, text: str, mention: tuple[int, int] | None = None) -> tuple[str, ...] | None:
        """Keys of the longest matches: a match inside a longer one is dropped (``中国`` in
        ``中国人民大学``, ``Amazon`` in ``Amazon Web Services``); with a ``mention`` span, only
        matches inside it count (those overlapping it if none is inside); None when nothing matches."""
        found = self.matches(text)
        if mention is not None:
            inside = [match for match in found if _inside(match.span, mention)]
            found = inside or [match for match in found if _overlap(match.span, mention)]
        longest = [match for match in found if not any(_inside_longer(match, other) for other in found)]
        return tuple(dict.fromkeys(match.key for match in longest)) or None


def _inside_longer(match: LexicalMatch, other: LexicalMatch) -> bool:
    return _inside(match.span, other.span) and other.end - other.start > match.end - match.start


@dataclass(frozen=True, eq=False)
class DenseCandidates:
    """The ``k`` KB names whose sentence vectors are nearest a text's (an index's
    :class:`index.name_vectors.NameVectors`, ``embed`` from the encoder that made them): the names a
    text means but writes its own way (a typo, a paraphrase, words in another order), which
    :class:`LexicalCandidates` cannot reach."""

    vectors: NameVectors
    embed: Callable[[Sequence[str]], np.ndarray]
    k: int

    def __call__(self, texts: Sequence[str]) -> list[list[int]]:
        """Entity-trie sequence ids per text, nearest first; none for a text the encoder refuses (one
        it reduces to nothing, such as a lone combining accent)."""
        if not texts:
            return []
        try:
            return self.vectors.nearest(self.embed(list(texts)), self.k)
        except TextError:  # one refused text fails the call; each text alone, so the others get theirs
            return [[]] if len(texts) == 1 else [self([text])[0] for text in texts]
