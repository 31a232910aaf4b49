"""Trie benchmark: our CSR-over-marisa TokenTrie vs a nested-dict trie (GENRE's default), same sequences.

For 100k and 1M synthetic names (token sequences shaped like tokenized entity names: a wide
first level, 2-8 tokens, then the end token) it prints build time, on-disk size, resident
memory after loading in a fresh process, and next-token lookup latency (p50/p99) by depth.

    python -m bench.trie [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import lookup_latencies_us, print_table
from support.data import REPO

END = 102
VOCAB = 30_000
DEPTHS = (0, 1, 2, 3, 4)
PROBES = 3000


def synthetic_sequences(count: int, seed: int = 0) -> list[list[int]]:
    """Zipf-distributed tokens (a few very common first tokens, a long tail), lengths 2-8, end token last."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, size=count)
    tokens = (rng.zipf(1.3, size=int(lengths.sum())) % VOCAB) + 1000
    sequences, start = [], 0
    for length in lengths:
        sequences.append([*tokens[start : start + length].tolist(), END])
        start += length
    return sequences


def dict_trie(sequences: list[list[int]]) -> dict:
    root: dict = {}
    for sequence in sequences:
        node = root
        for token in sequence:
            node = node.setdefault(token, {})
    return root


def dict_next_tokens(root: dict, prefix: list[int]) -> list[int]:
    node = root
    for token in prefix:
        node = node.get(token)
        if node is None:
            return []
    return list(node.keys())


def rss_mb() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * resource.getpagesize() / 2**20


def _probes(sequences: list[list[int]], depth: int, rng: np.random.Generator) -> list[list[int]]:
    eligible = [s for s in sequences if len(s) > depth]
    picks = rng.choice(len(eligible), size=min(PROBES, len(eligible)), replace=False)
    return [eligible[i][:depth] for i in picks]


def measure_loaded(kind: str, path: str, count: int) -> dict:
    """Runs in a fresh process: load the saved trie, report RSS growth and lookup latency by depth."""
    from index.trie import TokenTrie

    baseline = rss_mb()
    if kind == "ours":
        trie = TokenTrie.load(Path(path))
        lookup = trie.next_tokens
    else:
        with open(path, "rb") as stream:
            root = pickle.load(stream)

        def lookup(prefix: list[int]) -> list[int]:
            return dict_next_tokens(root, prefix)

    loaded = rss_mb() - baseline
    sequences = synthetic_sequences(count)
    after_sequences = rss_mb()
    rng = np.random.default_rng(1)
    by_depth = {}
    for depth in DEPTHS:
        probes = _probes(sequences, depth, rng)
        lookup_latencies_us(lookup, probes[:200])  # warm caches and page in what the lookups touch
        by_depth[depth] = lookup_latencies_us(lookup, probes)
    paged_in = rss_mb() - after_sequences
    return {"rss_mb": loaded, "latency_us": by_depth, "rss_after_lookups_mb": loaded + paged_in}


def build_and_save(kind: str, sequences: list[list[int]], directory: Path) -> tuple[float, int, str]:
    from index.trie import TokenTrie

    begin = time.perf_counter()
    if kind == "ours":
        TokenTrie.build(sequences).save(directory)
        path = str(directory)
    else:
        path = str(directory / "trie.pkl")
        with open(path, "wb") as stream:
            pickle.dump(dict_trie(sequences), stream, protocol=pickle.HIGHEST_PROTOCOL)
    seconds = time.perf_counter() - begin
    size = sum(f.stat().st_size for f in directory.iterdir())
    return seconds, size, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kind, path, count = args.measure
        print(json.dumps(measure_loaded(kind, path, int(count))))
        return
    summary, latency_rows = [], []
    for count in args.sizes:
        sequences = synthetic_sequences(count)
        results = {}
        for kind in ("ours", "dict"):
            with tempfile.TemporaryDirectory() as tmp:
                seconds, size, path = build_and_save(kind, sequences, Path(tmp))
                command = [sys.executable, "-m", "bench.trie", "--measure", kind, path, str(count)]
                run = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
                loaded = json.loads(run.stdout)
            results[kind] = (seconds, size, loaded)
            summary.append(
                [
                    f"{count:,}",
                    kind,
                    f"{seconds:.1f}",
                    f"{size / 2**20:.0f}",
                    f"{loaded['rss_mb']:.0f}",
                    f"{loaded['rss_after_lookups_mb']:.0f}",
                ]
            )
        for depth in DEPTHS:
            ours = results["ours"][2]["latency_us"][str(depth)]
            ref = results["dict"][2]["latency_us"][str(depth)]
            latency_rows.append(
                [
                    f"{count:,}",
                    depth,
                    f"{ours[0]:.1f}",
                    f"{ours[1]:.1f}",
                    f"{ref[0]:.1f}",
                    f"{ref[1]:.1f}",
                    f"{ref[1] / ours[1]:.1f}x",
                ]
            )
    print("Build, disk and memory (RSS growth after loading in a fresh process; after 15k lookups)")
    print_table(["names", "trie", "build s", "disk MB", "loaded RSS MB", "RSS after lookups MB"], summary)
    print("\nNext-token lookup latency (µs) by prefix depth, 3,000 prefixes per depth")
    print_table(["names", "depth", "ours p50", "ours p99", "dict p50", "dict p99", "dict p99 / ours p99"], latency_rows)


if __name__ == "__main__":
    main()
