"""Optimal-transport distances between two texts seen as clouds of token vectors.

Pure functions on NumPy arrays; the exact solver is POT's network simplex (``ot.emd``).
Importing this module needs neither torch nor FastAPI, so the math can be used and tested
on its own.

Shapes used throughout: ``x`` is ``(n, d)`` (the n token vectors of the first text), ``y`` is
``(m, d)``, masses ``a`` are ``(n,)`` and ``b`` are ``(m,)``, each summing to 1, and cost and
plan matrices are ``(n, m)``.

Three geometries are defined:

* **WMD** (Word Mover's Distance): uniform masses, euclidean cost ``|x_i - y_j|``.
* **WRD** (Word Rotator's Distance): masses proportional to the vector norms, cost
  ``1 - cos(x_i, y_j)``; the similarity is ``1 - WRD``, and ``0 <= WRD <= 2``.
* **Anchored WRD**: WRD's masses, but each token's direction is first averaged with its sentence's
  mean direction (:func:`anchored_directions`) and the cost is squared, ``(1 - cos)^2``, so the
  distance is the square of a 2-Wasserstein distance, between 0 and 4. Anchoring puts back the
  sentence-level meaning a sentence encoder is trained to give its mean vector; squaring makes one
  badly matched token cost more than several slightly-off ones.

Each geometry comes with two lower bounds that are much cheaper than the exact solve and are
used to skip solves when ranking (Kusner et al., 2015):

* the *relaxed* distance keeps only one of the two marginal constraints, so every token moves
  all of its mass to its nearest token on the other side; the larger of the two one-sided
  relaxations is still a lower bound;
* the *centroid* distance compares the mass-weighted centroids; see each geometry's
  ``centroid_gap`` for the inequality that makes it a lower bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import ot
from scipy.spatial.distance import cdist

_EPS = 1e-12
_OPTIMAL = 1
"""POT's result code for a solve that reached the optimum (others: infeasible, unbounded, out of iterations)."""


class TransportError(ArithmeticError):
    """The exact solver did not reach an optimal plan (its message says why); never returned as a score."""


@dataclass(frozen=True)
class Transport:
    """A transport distance and the plan that achieves it.

    ``plan[i, j]`` is the mass moved from token ``i`` of the first text to token ``j`` of
    the second; ``cost[i, j]`` is the price per unit of mass of that move.
    """

    distance: float
    plan: np.ndarray
    cost: np.ndarray


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(x, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (tokens, dim) matrix, got shape {matrix.shape}")
    return matrix


def row_norms(x: np.ndarray) -> np.ndarray:
    """``(n, d) -> (n,)``: the euclidean length of each row."""
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``(n, d) -> (n, d)``: each row scaled to length 1 (zero rows stay zero)."""
    return x / np.maximum(row_norms(x), _EPS)[:, None]


def uniform_masses(x: np.ndarray) -> np.ndarray:
    """``(n, d) -> (n,)``: every token carries mass ``1 / n`` (WMD)."""
    return np.full(x.shape[0], 1.0 / x.shape[0])


def norm_masses(x: np.ndarray) -> np.ndarray:
    """``(n, d) -> (n,)``: masses proportional to the vector norms (WRD).

    Contextual embeddings put larger norms on more informative tokens, which is why WRD
    weighs tokens this way. Falls back to uniform masses if every vector is zero.
    """
    norms = row_norms(x)
    total = norms.sum()
    if total <= _EPS:
        return uniform_masses(x)
    return norms / total


def euclidean_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(n, d), (m, d) -> (n, m)``: ``|x_i - y_j|``, computed without cancellation error."""
    return cdist(x, y, metric="euclidean")


def cosine_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(n, d), (m, d) -> (n, m)``: ``cos(x_i, y_j)``."""
    return unit_rows(np.asarray(x, dtype=np.float64)) @ unit_rows(np.asarray(y, dtype=np.float64)).T


def cosine_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(n, d), (m, d) -> (n, m)``: ``1 - cos(x_i, y_j)``, clipped to ``[0, 2]``."""
    cost = unit_rows(x) @ unit_rows(y).T
    np.subtract(1.0, cost, out=cost)
    return np.clip(cost, 0.0, 2.0, out=cost)


def anchored_directions(x: np.ndarray) -> np.ndarray:
    """``(n, d) -> (n, d)``: each token's unit direction plus its sentence's unit mean direction.

    The mean of the token vectors is what sentence encoders are trained on (sentence-transformers'
    mean pooling), so adding its direction to every token gives each token the sentence's context;
    only directions matter to the cosine cost, so the sum is not rescaled. A token pointing exactly
    against its sentence's mean would sum to zero and keeps its own direction instead.
    """
    directions = unit_rows(x)
    mean = x.mean(axis=0)
    anchored = directions + mean / max(float(np.linalg.norm(mean)), _EPS)
    cancelled = row_norms(anchored) < 1e-6
    anchored[cancelled] = directions[cancelled]
    return anchored


def anchored_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(n, d), (m, d) -> (n, m)``: ``(1 - cos(x'_i, y'_j))^2`` between anchored directions, in ``[0, 4]``."""
    cost = cosine_cost(anchored_directions(x), anchored_directions(y))
    return np.square(cost, out=cost)


def _euclidean_centroid(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=0)


def _euclidean_centroid_gap(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """WMD >= |mean(x) - mean(y)|.

    For any plan T with marginals a, b (uniform): sum T_ij |x_i - y_j| >= |sum T_ij (x_i - y_j)|
    by the triangle inequality, and sum_ij T_ij (x_i - y_j) = mean(x) - mean(y).
    """
    return np.linalg.norm(targets - source[None, :], axis=1)


def _rotator_centroid(x: np.ndarray) -> np.ndarray:
    return norm_masses(x) @ unit_rows(x)


def _rotator_centroid_gap(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """WRD >= |c(x) - c(y)|^2 / 2 with c(x) = sum_i a_i x_i/|x_i| (= sum_i x_i / sum_i |x_i|).

    The cost is 1 - <u_i, v_j> = |u_i - v_j|^2 / 2 for unit vectors u, v. For any plan T with
    marginals a, b, Jensen's inequality (T sums to 1, |.|^2 is convex) gives
    sum T_ij |u_i - v_j|^2 / 2 >= |sum T_ij (u_i - v_j)|^2 / 2 = |c(x) - c(y)|^2 / 2.
    """
    return 0.5 * np.sum((targets - source[None, :]) ** 2, axis=1)


def _anchored_centroid(x: np.ndarray) -> np.ndarray:
    return norm_masses(x) @ unit_rows(anchored_directions(x))


def _anchored_centroid_gap(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Anchored WRD >= (|c(x') - c(y')|^2 / 2)^2 with c(x') = sum_i a_i x'_i/|x'_i| over the anchored directions.

    With unit vectors u_i, v_j the cost is (|u_i - v_j|^2 / 2)^2. For any plan T with marginals a, b,
    Jensen's inequality for the convex t -> t^2 gives sum T_ij c_ij^2 >= (sum T_ij c_ij)^2, and the WRD
    argument (see ``_rotator_centroid_gap``) bounds sum T_ij c_ij below by |c(x') - c(y')|^2 / 2 >= 0.
    """
    return np.square(_rotator_centroid_gap(source, targets))


@dataclass(frozen=True)
class Geometry:
    """How a text becomes a transport problem: token masses, the cost, and a centroid bound.

    ``centroid(x)`` maps ``(n, d) -> (d,)``; ``centroid_gap(c_x, c_ys)`` maps ``(d,), (k, d)
    -> (k,)`` lower bounds of the exact distance, vectorised so a ranking can bound every
    candidate at once.
    """

    name: str
    masses: Callable[[np.ndarray], np.ndarray]
    cost: Callable[[np.ndarray, np.ndarray], np.ndarray]
    centroid: Callable[[np.ndarray], np.ndarray]
    centroid_gap: Callable[[np.ndarray, np.ndarray], np.ndarray]


WMD = Geometry("wmd", uniform_masses, euclidean_cost, _euclidean_centroid, _euclidean_centroid_gap)
WRD = Geometry("wrd", norm_masses, cosine_cost, _rotator_centroid, _rotator_centroid_gap)
ANCHORED_WRD = Geometry("anchored-wrd", norm_masses, anchored_cost, _anchored_centroid, _anchored_centroid_gap)


def solve_exact(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> Transport:
    """The exact optimal transport between masses ``a (n,)`` and ``b (m,)`` under ``cost (n, m)``.

    POT's result code is checked: a solve that stops short of the optimum (iteration limit,
    non-finite costs) raises :class:`TransportError` instead of returning a wrong distance."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    plan, log = ot.emd(a, b, cost, log=True)
    if log["result_code"] != _OPTIMAL:
        raise TransportError(f"exact transport ({a.size} x {b.size}) was not solved: {log['warning']}")
    return Transport(float(np.sum(plan * cost)), plan, cost)


def solve_relaxed(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> Transport:
    """The relaxed transport: a lower bound of :func:`solve_exact` for any cost.

    Dropping the constraint on ``b`` lets each source token send all its mass to its cheapest
    target, costing ``sum_i a_i min_j cost_ij``; dropping the constraint on ``a`` instead gives
    ``sum_j b_j min_i cost_ij``. Each relaxed problem has a larger feasible set than the exact
    one, so both values, and so their maximum, are <= the exact distance.
    """
    rows = np.arange(cost.shape[0])
    cols = np.arange(cost.shape[1])
    nearest_target = cost.argmin(axis=1)
    nearest_source = cost.argmin(axis=0)
    forward = float(a @ cost[rows, nearest_target])
    backward = float(b @ cost[nearest_source, cols])
    plan = np.zeros_like(cost)
    if forward >= backward:
        plan[rows, nearest_target] = a
    else:
        plan[nearest_source, cols] = b
    return Transport(max(forward, backward), plan, cost)


def transport_distance(x: np.ndarray, y: np.ndarray, geometry: Geometry) -> Transport:
    """Exact transport distance between token vectors ``x (n, d)`` and ``y (m, d)``."""
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    return solve_exact(geometry.masses(x), geometry.masses(y), geometry.cost(x, y))


def relaxed_distance(x: np.ndarray, y: np.ndarray, geometry: Geometry) -> Transport:
    """Relaxed lower bound of :func:`transport_distance` (see :func:`solve_relaxed`)."""
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    return solve_relaxed(geometry.masses(x), geometry.masses(y), geometry.cost(x, y))


def centroid_distance(x: np.ndarray, y: np.ndarray, geometry: Geometry) -> float:
    """Centroid lower bound of :func:`transport_distance` (see the geometry's ``centroid_gap``)."""
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    return float(geometry.centroid_gap(geometry.centroid(x), geometry.centroid(y)[None, :])[0])


def pooled_cosine_distance(x: np.ndarray, y: np.ndarray) -> float:
    """``1 - cos(mean(x), mean(y))``: the sentence encoder's own score (mean pooling, then cosine), in ``[0, 2]``.

    Not a transport distance: the single-vector reference the transport methods are measured against.
    """
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    return float(cosine_cost(x.mean(axis=0)[None, :], y.mean(axis=0)[None, :])[0, 0])


def greedy_matching(x: np.ndarray, y: np.ndarray) -> Transport:
    """BERTScore-style greedy cosine matching; ``distance`` is ``1 - F1``.

    Recall matches every token of ``x`` to its most similar token of ``y``, precision every
    token of ``y`` to its most similar token of ``x``; F1 is their harmonic mean. It is not a
    transport distance (no bound relation to WRD), but it is the fast peer to compare with.
    The plan returned is the recall matching, each ``x`` token carrying mass ``1 / n``.
    """
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    similarity = unit_rows(x) @ unit_rows(y).T
    recall = similarity.max(axis=1).mean()
    precision = similarity.max(axis=0).mean()
    total = precision + recall
    f1 = float(2.0 * precision * recall / total) if total > _EPS else 0.0
    plan = np.zeros_like(similarity)
    plan[np.arange(x.shape[0]), similarity.argmax(axis=1)] = 1.0 / x.shape[0]
    return Transport(1.0 - f1, plan, np.clip(1.0 - similarity, 0.0, 2.0))
