"""Reference computations that ours are checked and timed against."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog


def linprog_transport(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> float:
    """Exact transport as a plain linear program (HiGHS): min <T, C> s.t. T 1 = a, T^T 1 = b, T >= 0."""
    n, m = cost.shape
    rows = np.kron(np.eye(n), np.ones((1, m)))  # sum over j of T_ij
    cols = np.kron(np.ones((1, n)), np.eye(m))  # sum over i of T_ij
    result = linprog(
        cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs"
    )
    if not result.success:
        raise ArithmeticError(f"linprog did not solve the transport problem: {result.message}")
    return float(result.fun)
