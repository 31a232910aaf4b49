"""Ranking one source against 1,000 candidates: prefetch-and-prune vs solving every candidate.

Sources and candidates are STS-B dev sentences, encoded once with the embedded model; both
rankings run on the same encoded vectors and must return the same top k. Prints the transport
time of each, the ratio, and how many exact solves pruning skipped.

    python -m bench.ranking [--sources 10] [--candidates 1000] [--top-k 10]
"""

from __future__ import annotations

import argparse
import time

from bench.common import print_table, stsb_pairs
from models.loader import load_encoder_model
from models.similarity.encoder import TokenEncoder
from models.similarity.scoring import rank_candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()
    sentences = list(dict.fromkeys(text for pair in stsb_pairs("dev") for text in pair))
    sources = sentences[: args.sources]
    candidates = sentences[args.sources : args.sources + args.candidates]
    encoder = TokenEncoder(load_encoder_model("embedded", "fp32"))
    encoded_sources, encoded_candidates = encoder.encode(sources), encoder.encode(candidates)
    started = time.perf_counter()
    encoder.encode(candidates)
    encode_seconds = time.perf_counter() - started
    rows = []
    for method in ("wrd", "wmd"):
        pruned_time = exhaustive_time = 0.0
        skipped = 0
        for source in encoded_sources:
            started = time.perf_counter()
            pruned = rank_candidates(source, encoded_candidates, method, args.top_k)
            pruned_time += time.perf_counter() - started
            started = time.perf_counter()
            exhaustive = rank_candidates(source, encoded_candidates, method, args.top_k, prune=False)
            exhaustive_time += time.perf_counter() - started
            assert pruned.results == exhaustive.results, "pruning changed the answer"
            skipped += pruned.pruned
        n = len(encoded_sources)
        rows.append(
            (
                method,
                f"{1e3 * pruned_time / n:.1f}",
                f"{1e3 * exhaustive_time / n:.1f}",
                f"{exhaustive_time / pruned_time:.1f}x",
                f"{skipped / n:.0f} of {len(candidates)} ({100 * skipped / n / len(candidates):.0f} %)",
            )
        )
    print(f"{len(sources)} sources x {len(candidates)} candidates, top {args.top_k}; same top k in every case")
    print(f"encoding the {len(candidates)} candidates (fp32, not included below): {encode_seconds:.2f} s")
    print_table(["method", "pruned (ms/query)", "exhaustive (ms/query)", "speed-up", "exact solves skipped"], rows)


if __name__ == "__main__":
    main()
