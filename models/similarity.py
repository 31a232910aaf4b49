"""Sentence similarity by optimal transport over token vectors, and ranking with pruning.

The scoring functions work on already encoded texts (:class:`EncodedText`), so a server can
encode many requests in one batch and score each one afterwards; :class:`SimilarityEngine`
puts encoding and scoring together for use from Python.

Methods, each giving a distance and a similarity (higher is more similar):

=========  ==========================================  ======================
method     distance                                    similarity
=========  ==========================================  ======================
``wrd``    Word Rotator's Distance (exact)             ``1 - distance``
``wmd``    Word Mover's Distance (exact)               ``1 / (1 + distance)``
``rwmd``   relaxed WMD, a lower bound of WMD           ``1 / (1 + distance)``
``wcd``    word centroid distance, a lower bound of    ``1 / (1 + distance)``
           WMD
``greedy`` ``1 - F1`` of greedy cosine matching        F1
=========  ==========================================  ======================
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from models import transport
from models.encoder import EncodedText, TokenEncoder
from models.transport import Transport

Method = Literal["wrd", "wmd", "rwmd", "wcd", "greedy"]
METHODS: tuple[str, ...] = get_args(Method)
METHODS_WITH_ALIGNMENT: tuple[str, ...] = ("wrd", "wmd", "rwmd", "greedy")

_GEOMETRY = {"wrd": transport.WRD, "wmd": transport.WMD, "rwmd": transport.WMD, "wcd": transport.WMD}
_PRUNE_TOLERANCE = 1e-9
"""Bounds are compared with this slack so that rounding can never prune a true top-k result."""


@dataclass(frozen=True)
class AlignedTokens:
    """One cell of the transport plan: ``mass`` moved from token ``a_index`` to ``b_index``."""

    a_index: int
    b_index: int
    a_token: str
    b_token: str
    a_span: tuple[int, int]
    b_span: tuple[int, int]
    mass: float
    cost: float


@dataclass(frozen=True)
class PairScore:
    """The score of one pair; ``alignment`` lists the heaviest plan cells when asked for."""

    distance: float
    similarity: float
    alignment: list[AlignedTokens] | None = None


@dataclass(frozen=True)
class RankedCandidate:
    """A candidate's position in the input list and its score against the source."""

    index: int
    distance: float
    similarity: float


@dataclass(frozen=True)
class Ranking:
    """The best candidates, best first, and how much exact work pruning saved."""

    results: list[RankedCandidate]
    exact_solves: int
    pruned: int


def similarity_from_distance(method: Method, distance: float) -> float:
    """Maps a method's distance to a similarity where higher means more alike."""
    if method in ("wrd", "greedy"):
        return 1.0 - distance
    return 1.0 / (1.0 + distance)


def _transport(x: np.ndarray, y: np.ndarray, method: Method) -> Transport | float:
    if method == "greedy":
        return transport.greedy_matching(x, y)
    if method == "wcd":
        return transport.centroid_distance(x, y, _GEOMETRY[method])
    if method == "rwmd":
        return transport.relaxed_distance(x, y, _GEOMETRY[method])
    return transport.transport_distance(x, y, _GEOMETRY[method])


def heaviest_cells(result: Transport, a: EncodedText, b: EncodedText, limit: int) -> list[AlignedTokens]:
    """The ``limit`` plan cells carrying the most mass, heaviest first (ties: lowest cost)."""
    rows, cols = np.nonzero(result.plan > 0)
    masses = result.plan[rows, cols]
    order = np.lexsort((result.cost[rows, cols], -masses))[:limit]
    return [
        AlignedTokens(
            a_index=int(rows[k]),
            b_index=int(cols[k]),
            a_token=a.tokens[rows[k]],
            b_token=b.tokens[cols[k]],
            a_span=a.offsets[rows[k]],
            b_span=b.offsets[cols[k]],
            mass=float(masses[k]),
            cost=float(result.cost[rows[k], cols[k]]),
        )
        for k in order
    ]


def _select(text: EncodedText, skip_special_tokens: bool) -> EncodedText:
    return text.without_special_tokens() if skip_special_tokens else text


def score_pair(
    a: EncodedText,
    b: EncodedText,
    method: Method = "wrd",
    alignment: int = 0,
    skip_special_tokens: bool = False,
) -> PairScore:
    """Scores one pair of encoded texts; ``alignment > 0`` returns that many plan cells."""
    if alignment and method not in METHODS_WITH_ALIGNMENT:
        raise ValueError(f"method {method!r} has no token alignment")
    a, b = _select(a, skip_special_tokens), _select(b, skip_special_tokens)
    result = _transport(a.vectors, b.vectors, method)
    if isinstance(result, float):
        return PairScore(result, similarity_from_distance(method, result))
    cells = heaviest_cells(result, a, b, alignment) if alignment else None
    return PairScore(result.distance, similarity_from_distance(method, result.distance), cells)


def _best_first(scored: list[tuple[float, int]], method: Method, top_k: int) -> list[RankedCandidate]:
    return [RankedCandidate(i, d, similarity_from_distance(method, d)) for d, i in sorted(scored)[:top_k]]


def rank_candidates(
    source: EncodedText,
    candidates: Sequence[EncodedText],
    method: Method = "wrd",
    top_k: int = 10,
    prune: bool = True,
    skip_special_tokens: bool = False,
) -> Ranking:
    """The ``top_k`` candidates closest to ``source``, ordered by (distance, input index).

    For the exact methods (``wrd``, ``wmd``) and ``prune=True`` this is prefetch-and-prune
    (Kusner et al., 2015): candidates are visited by increasing centroid bound, the first
    ``top_k`` are solved exactly, and a later candidate is solved only if neither its centroid
    bound nor its relaxed bound already exceeds the current k-th best distance. Both are lower
    bounds of the exact distance, so the result is exactly the exhaustive one.
    """
    source = _select(source, skip_special_tokens)
    candidates = [_select(c, skip_special_tokens) for c in candidates]
    if method not in ("wrd", "wmd") or not prune:
        scored = [(score_pair(source, c, method).distance, i) for i, c in enumerate(candidates)]
        exact = len(candidates) if method in ("wrd", "wmd") else 0
        return Ranking(_best_first(scored, method, top_k), exact_solves=exact, pruned=0)
    return _prefetch_and_prune(source, candidates, method, top_k)


def _prefetch_and_prune(source: EncodedText, candidates: Sequence[EncodedText], method: Method, top_k: int) -> Ranking:
    geometry = _GEOMETRY[method]
    x = source.vectors.astype(np.float64)
    x_masses = geometry.masses(x)
    centroids = np.stack([geometry.centroid(c.vectors.astype(np.float64)) for c in candidates])
    centroid_bounds = geometry.centroid_gap(geometry.centroid(x), centroids)
    best: list[tuple[float, int]] = []  # max-heap of (distance, index) via negation
    exact_solves = 0
    for i in np.lexsort((np.arange(len(candidates)), centroid_bounds)):
        kth = -best[0][0] if len(best) == top_k else np.inf
        if centroid_bounds[i] > kth + _PRUNE_TOLERANCE:
            break  # every later candidate has a centroid bound at least as large
        y = candidates[i].vectors.astype(np.float64)
        y_masses, cost = geometry.masses(y), geometry.cost(x, y)
        if transport.solve_relaxed(x_masses, y_masses, cost).distance > kth + _PRUNE_TOLERANCE:
            continue
        exact_solves += 1
        distance = transport.solve_exact(x_masses, y_masses, cost).distance
        heapq.heappush(best, (-distance, -int(i)))
        if len(best) > top_k:
            heapq.heappop(best)
    scored = [(-d, -i) for d, i in best]
    return Ranking(_best_first(scored, method, top_k), exact_solves, len(candidates) - exact_solves)


class SimilarityEngine:
    """Encodes texts and scores them: the whole similarity job, usable without a server."""

    def __init__(self, encoder: TokenEncoder, skip_special_tokens: bool = False) -> None:
        self.encoder = encoder
        self.skip_special_tokens = skip_special_tokens

    def compare(
        self,
        pairs: Sequence[tuple[str, str]],
        method: Method = "wrd",
        alignment: int = 0,
        truncate: bool = False,
    ) -> list[PairScore]:
        """Scores each ``(a, b)`` pair, in order."""
        encoded = self.encoder.encode([text for pair in pairs for text in pair], truncate=truncate)
        return [
            score_pair(encoded[2 * k], encoded[2 * k + 1], method, alignment, self.skip_special_tokens)
            for k in range(len(pairs))
        ]

    def rank(
        self,
        source: str,
        candidates: Sequence[str],
        method: Method = "wrd",
        top_k: int = 10,
        truncate: bool = False,
        prune: bool = True,
    ) -> Ranking:
        """The ``top_k`` candidates most similar to ``source``, best first."""
        encoded = self.encoder.encode([source, *candidates], truncate=truncate)
        return rank_candidates(encoded[0], encoded[1:], method, top_k, prune, self.skip_special_tokens)
