"""The second stage of entity linking: entities that share the generated name, ordered by the text.

The seq2seq model writes a name; when several KB entities bear it (``Paris`` the city, ``Paris``
of Troy) the name alone cannot choose. :class:`DescriptionScorer` scores each entity's description
against the text with this project's own similarity engine, and the engine orders the entities of
one name by that score. Any callable with the :data:`Disambiguator` signature can take its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from models.similarity.engine import SimilarityEngine
from models.similarity.methods import DEFAULT_METHOD

Disambiguator = Callable[[str, Sequence[str]], list[float | None]]
"""``(text, descriptions) -> one score per description`` (higher for the entity the text means), or
None for an entity the scorer cannot judge (a blank description): such entities go last, in id order."""


class DescriptionScorer:
    """Similarity of the text to each description (``method`` of the similarity table), texts cut to
    the encoder's token limit; None for a blank description (nothing to compare)."""

    def __init__(self, similarity: SimilarityEngine, method: str = DEFAULT_METHOD) -> None:
        self.similarity = similarity
        self.method = method

    def __call__(self, text: str, descriptions: Sequence[str]) -> list[float | None]:
        written = [i for i, description in enumerate(descriptions) if description.strip()]
        if not written or not text.strip():
            return [None] * len(descriptions)
        pairs = [(text, descriptions[i]) for i in written]
        scores = self.similarity.compare(pairs, self.method, truncate=True)
        fits: list[float | None] = [None] * len(descriptions)
        for i, score in zip(written, scores, strict=True):
            fits[i] = score.similarity
        return fits
