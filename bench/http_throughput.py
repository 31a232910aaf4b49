"""End-to-end /similarity throughput over HTTP vs the encoder's raw forward-pass limit, in one run.

Three things are measured on the same STS-B dev sentences:

1. **Reference, the encoder's limit**: the bare Hugging Face forward pass (no code of ours, no
   server), sentences tokenized in advance, sorted by length, padded per batch, torch's default
   threads. A first sweep picks the best batch size; later measurements use it.
2. **Our encoder alone**: :class:`models.encoder.TokenEncoder` with the server's default settings
   (packed rows, as many threads embedding at once as the server has encoder workers), on batches
   of what 16 requests carry; no HTTP, no transport.
3. **Ours over HTTP**: a real ``simlink serve`` on 127.0.0.1 with the same dtype; 16 concurrent
   keep-alive clients (``bench/load_client.py``) send STS-B dev pairs, 8 pairs per request, and
   then 1 pair per request, and check every answer.

The machine is shared and its speed drifts by up to 2x within minutes, so the three are measured
in rounds, with the reference measured before and after each of them; each rate is divided by
the mean of the two references around it, and the table gives medians over the rounds. Also printed: the mean texts per encoder batch the
server formed (from its /metrics).

    python bench/http_throughput.py [--dtype bf16] [--clients 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, stsb_pairs
from bench.load_client import post_all, prepare_post
from tests.e2e.server import running_server

BATCH_SIZES = (8, 16, 32, 64, 128)


def reference_forward(texts: list[str], dtype: str) -> Callable[[int], float]:
    """A function ``batch size -> sentences/s`` of the bare Hugging Face forward pass over ``texts``
    (tokenized in advance, sorted by length, padded per batch to a multiple of 8)."""
    import torch

    from models.loader import load_encoder_model

    loaded = load_encoder_model("embedded", dtype)
    ids = sorted(loaded.tokenizer(texts, truncation=True, max_length=256)["input_ids"], key=len)
    threads = torch.get_num_threads()

    def sentences_per_second(batch_size: int) -> float:
        torch.set_num_threads(threads)
        started = time.perf_counter()
        for start in range(0, len(ids), batch_size):
            batch = loaded.tokenizer.pad(
                {"input_ids": ids[start : start + batch_size]}, pad_to_multiple_of=8, return_tensors="pt"
            )
            with torch.inference_mode():
                loaded.model(**batch)
        return len(ids) / (time.perf_counter() - started)

    return sentences_per_second


def our_encoder(texts: list[str], dtype: str, batch_texts: int) -> Callable[[], float]:
    """A function ``() -> sentences/s`` of our encoder alone with the server's default settings:
    batches of ``batch_texts`` in arrival order, embedded by as many threads at once as the server
    runs encoder workers, each with the server's torch threads."""
    from models.encoder import TokenEncoder
    from models.loader import load_encoder_model, set_torch_threads
    from service.runtime import threads_per_worker
    from service.settings import Settings

    settings = Settings()
    encoder = TokenEncoder(
        load_encoder_model("embedded", dtype), batch_tokens=settings.encoder_batch_tokens, pack_texts=settings.pack_texts
    )
    tokenized = encoder.tokenize(texts, truncate=True)
    batches = [tokenized[start : start + batch_texts] for start in range(0, len(tokenized), batch_texts)]
    workers = settings.encoder_workers

    def sentences_per_second() -> float:
        set_torch_threads(settings.torch_threads or threads_per_worker(workers))
        threads = [
            threading.Thread(target=lambda share: [encoder.embed(batch) for batch in share], args=(batches[k::workers],))
            for k in range(workers)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(tokenized) / (time.perf_counter() - started)

    return sentences_per_second


def http_rate(base_url: str, pairs: list[tuple[str, str]], per_request: int, clients: int) -> float:
    """Pairs per second over HTTP with ``clients`` concurrent clients, ``per_request`` pairs per request."""
    bodies = [
        {"pairs": [{"a": a, "b": b} for a, b in pairs[start : start + per_request]], "method": "wrd"}
        for start in range(0, len(pairs), per_request)
    ]
    requests = [prepare_post(base_url, "/similarity", body) for body in bodies]
    started = time.perf_counter()
    answers = asyncio.run(post_all(base_url, requests, clients))
    elapsed = time.perf_counter() - started
    scored = sum(len(answer["results"]) for answer in answers)
    assert scored == len(pairs)
    return scored / elapsed


def encoder_batches(base_url: str) -> tuple[float, float]:
    """(texts, batches) the server's encoder batcher has run so far, from its Prometheus metrics."""
    values = {}
    for line in httpx.get(f"{base_url}/metrics").text.splitlines():
        for name in ("sum", "count"):
            if line.startswith(f'simlink_model_batch_items_{name}{{model="encoder"}}'):
                values[name] = float(line.split()[-1])
    return values["sum"], values["count"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pairs = stsb_pairs("dev")
    texts = [text for pair in pairs for text in pair]
    print(f"STS-B dev: {len(pairs)} pairs; dtype {args.dtype}; {args.clients} concurrent clients", flush=True)

    reference = reference_forward(texts, args.dtype)
    sweep = {}
    for batch_size in BATCH_SIZES:
        reference(batch_size)  # unmeasured: bf16 kernels are built on the first sight of each shape
        sweep[batch_size] = reference(batch_size)
        print(f"  reference, batch {batch_size:4d}: {sweep[batch_size]:7.1f} sentences/s", flush=True)
    best_batch = max(sweep, key=sweep.__getitem__)
    ours_alone = our_encoder(texts, args.dtype, batch_texts=args.clients * 8 * 2)
    ours_alone()  # unmeasured warm-up

    rows: dict[str, list[tuple[float, float]]] = {"ours alone": [], "http 8": [], "http 1": []}
    with running_server({"SIMLINK_DTYPE": args.dtype, "SIMLINK_LOG_LEVEL": "warning"}) as base_url:
        http_rate(base_url, pairs, 8, args.clients)  # unmeasured warm-up
        for round_number in range(1, args.rounds + 1):
            limit_before = reference(best_batch) / 2  # two sentences per pair
            measured = {}
            for key, measure in (
                ("http 8", lambda: http_rate(base_url, pairs, 8, args.clients)),
                ("ours alone", lambda: ours_alone() / 2),
                ("http 1", lambda: http_rate(base_url, pairs, 1, args.clients)),
            ):
                texts_before, batches_before = encoder_batches(base_url)
                measured[key] = measure()
                texts_after, batches_after = encoder_batches(base_url)
                if key == "http 8":
                    mean_batch = (texts_after - texts_before) / (batches_after - batches_before)
                limit_after = reference(best_batch) / 2
                rows[key].append((measured[key], (limit_before + limit_after) / 2))
                limit_before = limit_after
            print(
                f"  round {round_number}: HTTP 8/request {measured['http 8']:.1f} pairs/s "
                f"(limit {rows['http 8'][-1][1]:.1f}; {mean_batch:.0f} texts per encoder batch); "
                f"ours alone {measured['ours alone']:.1f} (limit {rows['ours alone'][-1][1]:.1f}); "
                f"HTTP 1/request {measured['http 1']:.1f} (limit {rows['http 1'][-1][1]:.1f})",
                flush=True,
            )

    def median_row(label: str, key: str) -> tuple[str, str, str, str]:
        rates = [rate for rate, _ in rows[key]]
        ratios = [rate / limit for rate, limit in rows[key]]
        return (label, f"{statistics.median(rates):.1f}", f"{statistics.median(ratios):.2f}", f"{min(ratios):.2f}–{max(ratios):.2f}")

    limits = [limit for _, limit in rows["http 8"]]
    print()
    print_table(
        [f"path (wrd, {args.dtype}), median of {args.rounds} rounds", "pairs/s", "ratio to limit", "ratio range"],
        [
            (f"Hugging Face forward alone, batch {best_batch}, length-sorted: the limit", f"{statistics.median(limits):.1f}", "1.00", ""),
            median_row(f"our encoder alone, batches of {args.clients} x 8 pairs (no HTTP, no transport)", "ours alone"),
            median_row("POST /similarity over HTTP, 8 pairs/request", "http 8"),
            median_row("POST /similarity over HTTP, 1 pair/request", "http 1"),
        ],
    )


if __name__ == "__main__":
    main()
