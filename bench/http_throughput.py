"""End-to-end /similarity throughput over HTTP vs the encoder's raw forward-pass limit, in one run.

1. Reference: the encoder alone (no server), on the same STS-B dev sentences, tokenized in
   advance and length-sorted, at each batch size; the best is the encoder's limit.
2. Ours: a real `simlink serve` on 127.0.0.1 with the same dtype; 16 concurrent clients send
   STS-B dev pairs, 8 pairs per request (and then 1 pair per request).

Prints pairs/s for each and their ratio to the encoder's limit.

    python bench/http_throughput.py [--dtype bf16] [--clients 16] [--passes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, stsb_pairs
from tests.e2e.server import running_server

BATCH_SIZES = (8, 16, 32, 64, 128)


def encoder_limit(texts: list[str], dtype: str) -> tuple[int, float]:
    """(best batch size, sentences/s) of the bare forward pass on length-sorted batches."""
    from models.encoder import TokenEncoder
    from models.loader import load_encoder_model

    encoder = TokenEncoder(load_encoder_model("embedded", dtype))
    tokenized = sorted(encoder.tokenize(texts, truncate=True), key=len)
    encoder.warm_up()
    best = (0, 0.0)
    for batch_size in BATCH_SIZES:
        started = time.perf_counter()
        for start in range(0, len(tokenized), batch_size):
            encoder._forward(tokenized[start : start + batch_size])
        rate = len(tokenized) / (time.perf_counter() - started)
        print(f"  encoder alone, batch {batch_size:4d}: {rate:7.1f} sentences/s", flush=True)
        best = max(best, (batch_size, rate), key=lambda item: item[1])
    del encoder
    gc.collect()
    return best


def server_like_rate(texts: list[str], dtype: str, clients: int, per_request: int) -> float:
    """Sentences/s of the encoder alone fed as the server feeds it: batches of what ``clients``
    requests carry, in arrival order, length-sorted only within each batch, in chunks of the
    server's default encoder batch size. Second pass timed (bf16 kernels built in the first)."""
    from models.encoder import TokenEncoder
    from models.loader import load_encoder_model
    from service.settings import Settings

    encoder = TokenEncoder(load_encoder_model("embedded", dtype), batch_size=Settings().encoder_batch_size)
    tokenized = encoder.tokenize(texts, truncate=True)
    batch = clients * per_request * 2
    for _ in range(2):
        started = time.perf_counter()
        for start in range(0, len(tokenized), batch):
            encoder.embed(tokenized[start : start + batch])
        rate = len(tokenized) / (time.perf_counter() - started)
    del encoder
    gc.collect()
    return rate


async def http_rate(base_url: str, pairs: list[tuple[str, str]], per_request: int, clients: int, passes: int) -> float:
    """Pairs per second with ``clients`` concurrent clients, ``per_request`` pairs per request."""
    bodies = [
        {"pairs": [{"a": a, "b": b} for a, b in pairs[start : start + per_request]], "method": "wrd"}
        for start in range(0, len(pairs), per_request)
    ] * passes
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    scored = 0

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal scored
        while not queue.empty():
            body = queue.get_nowait()
            response = await session.post(f"{base_url}/similarity", json=body)
            response.raise_for_status()
            scored += len(response.json()["results"])

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as session:
        await asyncio.gather(*(session.post(f"{base_url}/similarity", json=b) for b in bodies[:clients]))  # warm pool
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    assert scored == sum(len(b["pairs"]) for b in bodies)
    return scored / elapsed


async def warm_up(base_url: str, pairs: list[tuple[str, str]], clients: int) -> None:
    """One unmeasured pass at 8 pairs per request, so the measured passes see the steady state
    (bf16 CPU kernels are built on the first sight of each batch shape; see bench/bf16.py)."""
    await http_rate(base_url, pairs, 8, clients, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    pairs = stsb_pairs("dev")
    texts = [text for pair in pairs for text in pair]
    print(f"STS-B dev: {len(pairs)} pairs; dtype {args.dtype}; {args.clients} concurrent clients", flush=True)
    batch_size, sentences_per_second = encoder_limit(texts, args.dtype)
    limit = sentences_per_second / 2
    rows = [(f"encoder forward alone (batch {batch_size}, length-sorted)", f"{limit:.1f}", "1.00")]
    server_like = server_like_rate(texts, args.dtype, args.clients, 8) / 2
    rows.append(
        (
            "encoder alone, batched as the server batches 16 x 8 pairs (no HTTP, no transport)",
            f"{server_like:.1f}",
            f"{server_like / limit:.2f}",
        )
    )
    with running_server({"SIMLINK_DTYPE": args.dtype, "SIMLINK_LOG_LEVEL": "warning"}) as base_url:
        asyncio.run(warm_up(base_url, pairs, args.clients))
        for per_request in (8, 1):
            rate = asyncio.run(http_rate(base_url, pairs, per_request, args.clients, args.passes))
            rows.append(
                (f"POST /similarity over HTTP, {per_request} pair(s)/request", f"{rate:.1f}", f"{rate / limit:.2f}")
            )
            print(f"  HTTP, {per_request} pair(s)/request: {rate:.1f} pairs/s", flush=True)
    print()
    print_table(["path (wrd, " + args.dtype + ")", "pairs/s", "ratio to encoder limit"], rows)


if __name__ == "__main__":
    main()
