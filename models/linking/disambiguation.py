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

Disambiguator = Callable[[str, Sequence[str]], list[float]]
"""``(text, descriptions) -> one score per description``, higher for the entity the text means."""


class DescriptionScorer:
    """Similarity of the text to each description (``method`` of the similarity table), texts cut to
    the encoder's token limit. An entity without a description scores as an empty text does."""

    def __init__(self, similarity: SimilarityEngine, method: str = DEFAULT_METHOD) -> None:
        self.similarity = similarity
        self.method = method

    def __call__(self, text: str, descriptions: Sequence[str]) -> list[float]:
        pairs = [(text, description or " ") for description in descriptions]
        return [score.similarity for score in self.similarity.compare(pairs, self.method, truncate=True)]
