"""Scoring encoded texts: pairs (:func:`score_pairs`) and rankings with pruning (:func:`rank_candidates`).

These functions work on already encoded texts (:class:`EncodedText`), so a server can encode many
requests in one batch and score each one afterwards. What each method computes is its row in
:mod:`models.similarity.methods`.
"""

from __future__ import annotations

import heapq
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.batching import check_stop
from models.similarity import transport
from models.similarity.encoder import EncodedText
from models.similarity.methods import DEFAULT_METHOD, Method, method_named
from models.similarity.transport import Transport

ALL_CELLS = sys.maxsize
"""``alignment=ALL_CELLS`` returns every cell of the plan that carries mass (the sparse plan)."""

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
class WeightedToken:
    """A token as the transport saw it: its text, character span and the mass it carries."""

    token: str
    span: tuple[int, int]
    weight: float


@dataclass(frozen=True)
class PairScore:
    """The score of one pair, and what was asked for beside it: ``alignment`` (the heaviest plan
    cells), ``a_tokens``/``b_tokens`` (every token with its weight, in the plan's row and column
    order) and ``cosine`` (the token-by-token cosine matrix, rows = tokens of a)."""

    distance: float
    similarity: float
    alignment: list[AlignedTokens] | None = None
    a_tokens: list[WeightedToken] | None = None
    b_tokens: list[WeightedToken] | None = None
    cosine: np.ndarray | None = None


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


def weighted_tokens(text: EncodedText, row: Method) -> list[WeightedToken]:
    """Every token of ``text`` with the mass the method gives it."""
    weights = row.weights(text.vectors.astype(np.float64))
    return [
        WeightedToken(token, span, float(weight))
        for token, span, weight in zip(text.tokens, text.offsets, weights, strict=True)
    ]


def score_pair(
    a: EncodedText,
    b: EncodedText,
    method: str = DEFAULT_METHOD,
    alignment: int = 0,
    skip_special_tokens: bool = False,
    tokens: bool = False,
    cosine: bool = False,
) -> PairScore:
    """Scores one pair of encoded texts. ``alignment > 0`` returns that many plan cells
    (:data:`ALL_CELLS`: all that carry mass), ``tokens`` every token with its weight, ``cosine``
    the cosine matrix."""
    row = method_named(method)
    if alignment and not row.alignment:
        raise ValueError(f"method {method!r} has no token alignment")
    a, b = _select(a, skip_special_tokens), _select(b, skip_special_tokens)
    result = row.distance(a.vectors, b.vectors)
    distance = result.distance if isinstance(result, Transport) else result
    return PairScore(
        distance,
        row.similarity(distance),
        alignment=heaviest_cells(result, a, b, alignment) if alignment and isinstance(result, Transport) else None,
        a_tokens=weighted_tokens(a, row) if tokens else None,
        b_tokens=weighted_tokens(b, row) if tokens else None,
        cosine=transport.cosine_matrix(a.vectors, b.vectors) if cosine else None,
    )


def score_pairs(
    encoded: Sequence[EncodedText],
    method: str = DEFAULT_METHOD,
    alignment: int = 0,
    skip_special_tokens: bool = False,
    tokens: bool = False,
    cosine: bool = False,
    stop: threading.Event | None = None,
) -> list[PairScore]:
    """Scores texts taken two at a time (``encoded[0]`` with ``encoded[1]``, ...), in order: how
    pairs come out of one batch of ``[a0, b0, a1, b1, ...]``. Options as in :func:`score_pair`;
    a set ``stop`` ends the work between pairs (:class:`models.batching.WorkCancelledError`)."""
    if len(encoded) % 2:
        raise ValueError(f"pairs need an even number of texts, got {len(encoded)}")
    scores = []
    for k in range(0, len(encoded), 2):
        check_stop(stop)
        scores.append(score_pair(encoded[k], encoded[k + 1], method, alignment, skip_special_tokens, tokens, cosine))
    return scores


def _best_first(scored: list[tuple[float, int]], row: Method, top_k: int) -> list[RankedCandidate]:
    return [RankedCandidate(i, d, row.similarity(d)) for d, i in sorted(scored)[:top_k]]


def rank_candidates(
    source: EncodedText,
    candidates: Sequence[EncodedText],
    method: str = DEFAULT_METHOD,
    top_k: int = 10,
    prune: bool = True,
    skip_special_tokens: bool = False,
    stop: threading.Event | None = None,
) -> Ranking:
    """The ``top_k`` candidates closest to ``source``, ordered by (distance, input index).

    For methods with lower bounds (:attr:`Method.prunable`: the exact transport methods) and
    ``prune=True`` this is prefetch-and-prune (Kusner et al., 2015): candidates are visited by
    increasing centroid bound, the first ``top_k`` are solved exactly, and a later candidate is
    solved only if neither its centroid bound nor its relaxed bound already exceeds the current
    k-th best distance. Both are lower bounds of the exact distance, so the result is exactly the
    exhaustive one. A set ``stop`` ends the work between candidates.
    """
    row = method_named(method)
    source = _select(source, skip_special_tokens)
    candidates = [_select(c, skip_special_tokens) for c in candidates]
    if row.bounds is None or not prune:
        scored = []
        for i, candidate in enumerate(candidates):
            check_stop(stop)
            scored.append((score_pair(source, candidate, method).distance, i))
        exact = len(candidates) if row.prunable else 0
        return Ranking(_best_first(scored, row, top_k), exact_solves=exact, pruned=0)
    return _prefetch_and_prune(source, candidates, row, top_k, stop)


def _prefetch_and_prune(
    source: EncodedText, candidates: Sequence[EncodedText], row: Method, top_k: int, stop: threading.Event | None
) -> Ranking:
    geometry = row.bounds
    assert geometry is not None
    x = source.vectors.astype(np.float64)
    x_masses = geometry.masses(x)
    centroids = np.stack([geometry.centroid(c.vectors.astype(np.float64)) for c in candidates])
    centroid_bounds = geometry.centroid_gap(geometry.centroid(x), centroids)
    best: list[tuple[float, int]] = []  # max-heap of (distance, index) via negation
    exact_solves = 0
    for i in np.lexsort((np.arange(len(candidates)), centroid_bounds)):
        check_stop(stop)
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
    return Ranking(_best_first(scored, row, top_k), exact_solves, len(candidates) - exact_solves)
