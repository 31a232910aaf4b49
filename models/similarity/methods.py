"""The one table of similarity methods: everything the service knows about a method is its row.

A row names the method, says in one line what it computes, gives the function from two token-vector
clouds to a :class:`~models.similarity.transport.Transport` (or to a bare distance, for methods
without a plan), the map from distance to similarity, whether it has a token alignment, and, for
exact transport methods, the geometry whose lower bounds let ranking skip solves.

The HTTP schema's allowed values, ``/info``'s method list, the README's method table (checked by a
test) and the ranking's pruning rule are all read from :data:`METHODS`. Adding a method means adding
a row here, and its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.similarity import transport
from models.similarity.transport import Geometry, Transport

DistanceFunction = Callable[[np.ndarray, np.ndarray], "Transport | float"]


def _one_minus(distance: float) -> float:
    return 1.0 - distance


def _one_minus_root(distance: float) -> float:
    return 1.0 - max(distance, 0.0) ** 0.5  # operators only, so that tuning can apply it to torch scalars


def _inverse_one_plus(distance: float) -> float:
    return 1.0 / (1.0 + distance)


@dataclass(frozen=True)
class Method:
    """One similarity method.

    ``distance(x, y)`` maps token vectors ``(n, d), (m, d)`` to a :class:`Transport` (distance and
    plan) or to a float when the method has no plan. ``weights(x)`` is the mass each token carries
    (``(n,)``, summing to 1), shown beside the plan. ``bounds`` is set for exact transport methods
    only: the geometry whose centroid and relaxed distances are lower bounds of ``distance``, which
    is what makes pruning a ranking safe (see :func:`models.similarity.scoring.rank_candidates`).
    """

    name: str
    description: str
    distance: DistanceFunction
    similarity: Callable[[float], float]
    similarity_rule: str
    alignment: bool
    weights: Callable[[np.ndarray], np.ndarray]
    bounds: Geometry | None = None

    @property
    def prunable(self) -> bool:
        """Whether a ranking may skip exact solves with this method's lower bounds."""
        return self.bounds is not None


def _exact(geometry: Geometry) -> DistanceFunction:
    return lambda x, y: transport.transport_distance(x, y, geometry)


def _relaxed(geometry: Geometry) -> DistanceFunction:
    return lambda x, y: transport.relaxed_distance(x, y, geometry)


def _centroid(geometry: Geometry) -> DistanceFunction:
    return lambda x, y: transport.centroid_distance(x, y, geometry)


_ROWS = (
    Method(
        "anchored-wrd",
        "WRD's masses with each token's direction averaged with its sentence's mean direction, "
        "cost (1 − cosine)², solved exactly",
        _exact(transport.ANCHORED_WRD),
        _one_minus_root,
        "1 − √distance",
        alignment=True,
        weights=transport.norm_masses,
        bounds=transport.ANCHORED_WRD,
    ),
    Method(
        "wrd",
        "Word Rotator's Distance, solved exactly: masses ∝ vector norms, cost 1 − cosine",
        _exact(transport.WRD),
        _one_minus,
        "1 − distance",
        alignment=True,
        weights=transport.norm_masses,
        bounds=transport.WRD,
    ),
    Method(
        "wmd",
        "Word Mover's Distance, solved exactly: uniform masses, euclidean cost",
        _exact(transport.WMD),
        _inverse_one_plus,
        "1 / (1 + distance)",
        alignment=True,
        weights=transport.uniform_masses,
        bounds=transport.WMD,
    ),
    Method(
        "rwmd",
        "relaxed WMD: every token moves all its mass to its nearest token; a lower bound of WMD",
        _relaxed(transport.WMD),
        _inverse_one_plus,
        "1 / (1 + distance)",
        alignment=True,
        weights=transport.uniform_masses,
    ),
    Method(
        "wcd",
        "word centroid distance: between the mean token vectors; a lower bound of WMD",
        _centroid(transport.WMD),
        _inverse_one_plus,
        "1 / (1 + distance)",
        alignment=False,
        weights=transport.uniform_masses,
    ),
    Method(
        "cosine",
        "pooled cosine: the cosine of the two mean token vectors (the sentence encoder's own score); no plan",
        transport.pooled_cosine_distance,
        _one_minus,
        "1 − distance",
        alignment=False,
        weights=transport.uniform_masses,
    ),
    Method(
        "greedy",
        "greedy cosine matching (BERTScore F1); distance is 1 − F1",
        lambda x, y: transport.greedy_matching(x, y),
        _one_minus,
        "1 − distance",
        alignment=True,
        weights=transport.uniform_masses,
    ),
)

METHODS: dict[str, Method] = {method.name: method for method in _ROWS}
"""Every method by name, in the order documentation lists them."""

METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
DEFAULT_METHOD = "anchored-wrd"


def method_named(name: str) -> Method:
    """The row of ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHOD_NAMES)}") from None
