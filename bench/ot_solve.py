"""Exact OT solve per pair: POT's network simplex (ours) vs the same problem as a scipy linear program.

Problem: WRD between two random clouds of n = m token vectors of dimension 384 (masses from the
norms, cosine cost), as in Su Jianlin's linprog formulation of WMD. Prints the median time per
solve, the ratio, and the largest difference between the two optimal values.

    python -m bench.ot_solve
"""

from __future__ import annotations

import numpy as np

from bench.common import median_seconds, print_table
from models.similarity.transport import WRD, solve_exact
from support.reference import linprog_transport

SIZES = (16, 32, 64, 128)
PROBLEMS = 5


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for n in SIZES:
        problems = []
        for _ in range(PROBLEMS):
            x, y = rng.normal(size=(n, 384)), rng.normal(size=(n, 384))
            problems.append((WRD.masses(x), WRD.masses(y), WRD.cost(x, y)))
        ours = (
            median_seconds(lambda problems=problems: [solve_exact(*p) for p in problems], repeats=5, min_seconds=0.5)
            / PROBLEMS
        )
        reference = (
            median_seconds(lambda problems=problems: [linprog_transport(*p) for p in problems], repeats=1) / PROBLEMS
        )
        gap = max(abs(solve_exact(*p).distance - linprog_transport(*p)) for p in problems)
        rows.append((n, f"{ours * 1e3:.3f}", f"{reference * 1e3:.1f}", f"{reference / ours:.0f}x", f"{gap:.1e}"))
    print_table(["n = m", "POT ot.emd (ms)", "scipy linprog HiGHS (ms)", "speed-up", "max |value difference|"], rows)


if __name__ == "__main__":
    main()
