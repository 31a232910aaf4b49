"""Small helpers shared by the benchmark scripts: timing, STS-B sentences, table printing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from support.data import data_dir


def stsb_pairs(split: str = "dev") -> list[tuple[str, str]]:
    """The sentence pairs of STS-B ``split``, in file order."""
    from models.similarity.gold_pairs import read_gold_pairs

    return [(p.a, p.b) for p in read_gold_pairs(data_dir() / "stsb" / f"sts-{split}.csv")]


def median_seconds(work: Callable[[], object], repeats: int, min_seconds: float = 0.0) -> float:
    """Median wall time of ``work()`` over ``repeats`` runs (more while under ``min_seconds``)."""
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - started < min_seconds:
        begin = time.perf_counter()
        work()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Prints a Markdown table (ready to paste into the README)."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def lookup_latencies_us(lookup: Callable[[list[int]], object], probes: Sequence[list[int]]) -> tuple[float, float]:
    """p50 and p99 in microseconds of ``lookup(prefix)`` over ``probes``, each timed alone."""
    import numpy as np

    times = []
    for prefix in probes:
        begin = time.perf_counter_ns()
        lookup(prefix)
        times.append(time.perf_counter_ns() - begin)
    return float(np.percentile(times, 50)) / 1000, float(np.percentile(times, 99)) / 1000
