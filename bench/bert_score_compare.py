"""/similarity over HTTP with default settings beside the `bert_score` package, same model, same pairs.

The reference is what a user could run instead: ``bert_score.BERTScorer`` computing greedy-matching F1
in process with the embedded all-MiniLM-L6-v2 (all 6 layers, its defaults otherwise: fp32, batch 64,
length-sorted). Ours is a real ``simlink serve`` with default settings (so the precision ``auto`` picks
and the default method, an exact transport solve per pair), fed the same 1,500 STS-B dev pairs
by ``--clients`` keep-alive clients, ``--per-request`` pairs per request; a request refused with 429
(the default admission budget) is sent again after its Retry-After, and the wait counts. The two are
measured in alternating rounds because this machine's speed drifts; the table gives medians, the
ratio of each round and their range.

Needs the benchmark-only extra: ``pip install -e '.[bench]'``.

    python -m bench.bert_score_compare [--rounds 5] [--clients 2] [--per-request 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.common import print_table, stsb_pairs
from bench.load_client import post_all, prepare_post
from models.loader import embedded_model_dir
from support.server import running_server


def bert_score_rate(pairs: list[tuple[str, str]]) -> float:
    """Pairs per second of ``bert_score`` F1 over ``pairs`` (the scorer is built once, outside the timing)."""
    from bert_score import BERTScorer

    scorer = bert_score_rate.__dict__.setdefault(
        "scorer", BERTScorer(model_type=str(embedded_model_dir()), num_layers=6, batch_size=64)
    )
    candidates, references = [a for a, _ in pairs], [b for _, b in pairs]
    started = time.perf_counter()
    _, _, f1 = scorer.score(candidates, references)
    elapsed = time.perf_counter() - started
    assert len(f1) == len(pairs)
    return len(pairs) / elapsed


def http_rate(base_url: str, pairs: list[tuple[str, str]], per_request: int, clients: int) -> tuple[float, str]:
    """Pairs per second over HTTP with default request fields, and the method the server applied."""
    bodies = [
        {"pairs": [{"a": a, "b": b} for a, b in pairs[start : start + per_request]]}
        for start in range(0, len(pairs), per_request)
    ]
    requests = [prepare_post(base_url, "/similarity", body) for body in bodies]
    started = time.perf_counter()
    answers = asyncio.run(post_all(base_url, requests, clients, retry_busy=True))
    elapsed = time.perf_counter() - started
    assert sum(len(answer["results"]) for answer in answers) == len(pairs)
    return len(pairs) / elapsed, answers[0]["method"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--per-request", type=int, default=64)
    args = parser.parse_args()
    pairs = stsb_pairs("dev")
    ours: list[float] = []
    theirs: list[float] = []
    with running_server({"SIMLINK_LOG_LEVEL": "warning"}) as url:
        import httpx

        encoder = httpx.get(f"{url}/info").json()["encoder"]
        print(f"server: {encoder['name']}, {encoder['dtype']} ({encoder['dtype_reason']})", flush=True)
        bert_score_rate(pairs[:64])  # unmeasured warm-ups
        _, method = http_rate(url, pairs[:256], args.per_request, args.clients)
        for round_number in range(1, args.rounds + 1):
            first, second = (theirs, ours) if round_number % 2 else (ours, theirs)
            for series in (first, second):
                series.append(
                    bert_score_rate(pairs)
                    if series is theirs
                    else http_rate(url, pairs, args.per_request, args.clients)[0]
                )
            print(
                f"  round {round_number}: ours {ours[-1]:.1f} pairs/s, bert_score {theirs[-1]:.1f}, "
                f"ratio {ours[-1] / theirs[-1]:.2f}",
                flush=True,
            )
        refused = sum(
            float(line.split()[-1])
            for line in httpx.get(f"{url}/metrics").text.splitlines()
            if line.startswith('simlink_http_requests_total{route="/similarity",status="429"}')
        )
        print(f"  requests refused with 429 and sent again: {refused:.0f}")
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    print()
    print_table(
        [f"{len(pairs)} STS-B dev pairs, median of {args.rounds} alternating rounds", "pairs/s", "ratio", "range"],
        [
            (
                "bert_score.BERTScorer F1 in process (fp32, batch 64): the reference",
                f"{statistics.median(theirs):.1f}",
                "1.00",
                "",
            ),
            (
                f"POST /similarity over HTTP, default settings ({method}, exact transport), "
                f"{args.clients} clients x {args.per_request} pairs/request",
                f"{statistics.median(ours):.1f}",
                f"{statistics.median(ratios):.2f}",
                f"{min(ratios):.2f}–{max(ratios):.2f}",
            ),
        ],
    )


if __name__ == "__main__":
    main()
