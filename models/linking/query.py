"""A link query as the engine takes it, in a module that loads no model code: the server's route,
the bulk job's row reader and :mod:`models.linking.limits` build and check queries without
importing PyTorch or transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Task = Literal["entity", "kbqa"]
MENTION_START = "[START_ENT]"
MENTION_END = "[END_ENT]"


class UnknownCandidatesError(ValueError):
    """Candidate entity ids that the index does not hold."""

    def __init__(self, unknown: Sequence[str]) -> None:
        shown = ", ".join(repr(entity_id) for entity_id in unknown[:10])
        super().__init__(f"{len(unknown)} unknown entity id(s): {shown}")
        self.unknown = list(unknown)


AUTO: Literal["auto"] = "auto"
"""``LinkQuery.candidates`` value: the names the text writes (:class:`LexicalCandidates`) and, where the
index holds name vectors, the names nearest its vector (:class:`DenseCandidates`); every name if it
writes none."""


@dataclass(frozen=True)
class LinkQuery:
    """One linking request: a text (with an optional mention span) and how many answers to return.

    ``candidates`` narrows the trie: entity ids to choose from (entity task), or :data:`AUTO` for the
    KB names the text writes (either task) and the names nearest its vector (entity task, where the
    index holds name vectors), falling back to the whole trie when it writes none.

    ``several`` asks for every entity the text mentions instead of the beam's ranking: the best
    result, then each further beam whose name the text writes where no name already chosen is
    written (and that is not part of a chosen name the text does not write as such), one entity
    per name (at most ``top_k``)."""

    text: str
    task: Task = "entity"
    mention: tuple[int, int] | None = None
    top_k: int = 5
    num_beams: int = 5
    candidates: tuple[str, ...] | Literal["auto"] | None = None
    several: bool = False

    def __post_init__(self) -> None:
        """A span or candidate list given as a list (as JSON gives them) is kept as a tuple, so that
        every caller builds a query the same way and queries compare and hash by value."""
        if self.mention is not None and not isinstance(self.mention, tuple):
            object.__setattr__(self, "mention", tuple(self.mention))
        if self.candidates is not None and self.candidates != AUTO and not isinstance(self.candidates, tuple):
            object.__setattr__(self, "candidates", tuple(self.candidates))
