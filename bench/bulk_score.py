"""``simlink score`` on 100,000 STS-style pairs, here and on Ray, beside the HTTP server at its best.

The pairs are STS-B's train and dev pairs, then random pairings of their sentences (seed 0) up to
``--pairs``. Measured, with the same model and dtype:

1. **The whole file**: ``simlink score`` (local threads) and ``simlink score --engine ray`` (a
   local Ray on this machine's cores) as a user runs them, wall time including start-up; the two
   outputs must be byte-identical (checked).
2. **Steady rate, in alternating rounds** on a ``--slice`` of the pairs: each bulk run's rate is
   taken from its first written row to its last (start-up excluded, as the server's is); the
   reference is a real ``simlink serve`` with default settings receiving the same pairs from 16
   concurrent keep-alive clients, 8 and 64 pairs per request; its better median is "the server at
   its best". The table gives medians and ranges over the rounds and each bulk rate as a ratio
   to the server's in the same round.

    python -m bench.bulk_score [--pairs 100000] [--slice 20000] [--rounds 3] [--dtype fp32]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench.common import print_table, stsb_pairs
from bench.load_client import post_all, prepare_post
from support.server import live_server, simlink_command

CLIENTS = 16


def sts_style_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """STS-B train and dev pairs, then random pairings of their sentences, ``count`` in all."""
    pairs = stsb_pairs("train") + stsb_pairs("dev")
    sentences = sorted({text for pair in pairs for text in pair})
    rng = random.Random(seed)
    while len(pairs) < count:
        pairs.append((rng.choice(sentences), rng.choice(sentences)))
    return pairs[:count]


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    return path


class RowClock:
    """Watches a job's ``.partial`` output and notes when its first row appeared."""

    def __init__(self, out: Path) -> None:
        self.partial = out.with_name(out.name + ".partial")
        self.first_row_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set() and self.first_row_at is None:
            if self.partial.exists() and self.partial.stat().st_size > 0:
                self.first_row_at = time.perf_counter()
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_score(source: Path, out: Path, dtype: str, engine: str) -> tuple[float, float]:
    """Runs ``simlink score``; returns (wall seconds, seconds from its first written row to the end)."""
    command = [*simlink_command(), "score", "--input", str(source), "--out", str(out), "--dtype", dtype]
    begin = time.perf_counter()
    clock = RowClock(out)
    subprocess.run([*command, "--engine", engine], check=True, capture_output=True)
    end = time.perf_counter()
    clock.stop()
    return end - begin, end - (clock.first_row_at or begin)


def http_rate(url: str, pairs: list[tuple[str, str]], per_request: int) -> float:
    """Pairs/s of the live server for ``pairs`` sent ``per_request`` at a time by 16 clients."""
    requests = [
        prepare_post(url, "/similarity", {"pairs": [{"a": a, "b": b} for a, b in pairs[i : i + per_request]]})
        for i in range(0, len(pairs), per_request)
    ]
    begin = time.perf_counter()
    answers = asyncio.run(post_all(url, requests, CLIENTS))
    seconds = time.perf_counter() - begin
    assert sum(len(answer["results"]) for answer in answers) == len(pairs)
    return len(pairs) / seconds


def _range(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--slice", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="fp32")
    args = parser.parse_args()
    pairs = sts_style_pairs(args.pairs)
    rounds_pairs = pairs[: args.slice]
    with tempfile.TemporaryDirectory(prefix="simlink-bulk-") as folder:
        root = Path(folder)
        whole, part = write_tsv(root / "pairs.tsv", pairs), write_tsv(root / "slice.tsv", rounds_pairs)
        print(f"{len(pairs):,} STS-style pairs; dtype {args.dtype}; {args.rounds} rounds on {len(rounds_pairs):,}")

        walls = {}
        for engine in ("local", "ray"):
            walls[engine], _ = run_score(whole, root / f"whole-{engine}.jsonl", args.dtype, engine)
            print(f"  whole file, {engine}: {walls[engine]:.0f} s, {len(pairs) / walls[engine]:.0f} pairs/s")
        identical = (root / "whole-local.jsonl").read_bytes() == (root / "whole-ray.jsonl").read_bytes()
        print(f"  outputs identical: {identical}")
        assert identical, "local and Ray outputs differ"

        rates: dict[str, list[float]] = {key: [] for key in ("local", "ray", "http 8", "http 64")}
        ratios: dict[str, list[float]] = {"local": [], "ray": []}
        with live_server({"SIMLINK_DTYPE": args.dtype, "SIMLINK_QUEUE_BUDGET_TOKENS": "65536"}) as server:
            http_rate(server.url, rounds_pairs[:2000], 8)  # warm-up
            for round_number in range(args.rounds):
                order = ["local", "http", "ray"] if round_number % 2 == 0 else ["ray", "http", "local"]
                for path in order:
                    if path == "http":
                        for per_request in (8, 64):
                            rates[f"http {per_request}"].append(http_rate(server.url, rounds_pairs, per_request))
                    else:
                        out = root / f"round{round_number}-{path}.jsonl"
                        _, steady = run_score(part, out, args.dtype, path)
                        rates[path].append(len(rounds_pairs) / steady)
                best_http = max(rates["http 8"][-1], rates["http 64"][-1])
                for path in ("local", "ray"):
                    ratios[path].append(rates[path][-1] / best_http)
                print(f"  round {round_number + 1}: " + "; ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()))

    print()
    rows = [
        [
            f"POST /similarity over HTTP, {n} pairs/request, {CLIENTS} clients",
            f"{statistics.median(rates[f'http {n}']):.0f}",
            _range(rates[f"http {n}"]),
            "",
            "",
        ]
        for n in (8, 64)
    ]
    for path, label in (("local", "simlink score (local threads)"), ("ray", "simlink score --engine ray (local Ray)")):
        rows.append(
            [
                label,
                f"{statistics.median(rates[path]):.0f}",
                _range(rates[path]),
                f"{statistics.median(ratios[path]):.2f}",
                _range(ratios[path]),
            ]
        )
    print_table(
        ["path (steady rate, medians of rounds)", "pairs/s", "range", "÷ server at its best", "ratio range"], rows
    )
    print()
    print_table(
        ["whole file, wall time with start-up", "seconds", "pairs/s"],
        [[engine, f"{walls[engine]:.0f}", f"{len(pairs) / walls[engine]:.0f}"] for engine in walls],
    )


if __name__ == "__main__":
    main()
