"""End-to-end /similarity throughput over HTTP vs the encoder's raw forward-pass limit, in one run.

1. Reference: the bare Hugging Face forward pass (no code of ours, no server) on the same STS-B
   dev sentences, tokenized in advance and length-sorted, at each batch size; the best is the
   encoder's limit. It is measured before and after the server runs, and the higher of the two
   is used, so noise on the shared machine cannot flatter the ratio.
2. Our encoder alone, fed in the batches the server would form (no HTTP, no transport).
3. Ours: a real `simlink serve` on 127.0.0.1 with the same dtype; 16 concurrent clients send
   STS-B dev pairs, 8 pairs per request (and then 1 pair per request).

Prints pairs/s for each and their ratio to the encoder's limit, and the mean texts per encoder
batch the server formed (from its /metrics).

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
    """(best batch size, sentences/s) of the bare Hugging Face forward pass, no code of ours: the
    sentences tokenized in advance, sorted by length, padded per batch (to a multiple of 8)."""
    import torch

    from models.loader import load_encoder_model

    loaded = load_encoder_model("embedded", dtype)
    ids = sorted(loaded.tokenizer(texts, truncation=True, max_length=256)["input_ids"], key=len)

    def forward_all(batch_size: int) -> float:
        started = time.perf_counter()
        for start in range(0, len(ids), batch_size):
            batch = loaded.tokenizer.pad(
                {"input_ids": ids[start : start + batch_size]}, pad_to_multiple_of=8, return_tensors="pt"
            )
            with torch.inference_mode():
                loaded.model(**batch)
        return len(ids) / (time.perf_counter() - started)

    best = (0, 0.0)
    for batch_size in BATCH_SIZES:
        forward_all(batch_size)  # unmeasured: bf16 kernels are built on the first sight of each shape
        rate = forward_all(batch_size)
        print(f"  encoder alone, batch {batch_size:4d}: {rate:7.1f} sentences/s", flush=True)
        best = max(best, (batch_size, rate), key=lambda item: item[1])
    del loaded
    gc.collect()
    return best


def server_like_rate(texts: list[str], dtype: str, clients: int, per_request: int) -> float:
    """Sentences/s of our encoder alone (no HTTP, no transport) fed as the server feeds it:
    batches of what ``clients`` requests carry, in arrival order, with the server's default
    settings (packing, token slots per forward pass). Second pass timed."""
    from models.encoder import TokenEncoder
    from models.loader import load_encoder_model
    from service.settings import Settings

    settings = Settings()
    loaded = load_encoder_model("embedded", dtype)
    encoder = TokenEncoder(loaded, batch_tokens=settings.encoder_batch_tokens, pack_texts=settings.pack_texts)
    tokenized = encoder.tokenize(texts, truncate=True)
    batch = clients * per_request * 2
    for _ in range(2):
        started = time.perf_counter()
        for start in range(0, len(tokenized), batch):
            encoder.embed(tokenized[start : start + batch])
        rate = len(tokenized) / (time.perf_counter() - started)
    del encoder, loaded
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
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    pairs = stsb_pairs("dev")
    texts = [text for pair in pairs for text in pair]
    print(f"STS-B dev: {len(pairs)} pairs; dtype {args.dtype}; {args.clients} concurrent clients", flush=True)
    print("reference, before the server runs:", flush=True)
    limits = [encoder_limit(texts, args.dtype)]
    server_like = server_like_rate(texts, args.dtype, args.clients, 8) / 2
    http_rows = []
    with running_server({"SIMLINK_DTYPE": args.dtype, "SIMLINK_LOG_LEVEL": "warning"}) as base_url:
        asyncio.run(warm_up(base_url, pairs, args.clients))
        for per_request in (8, 1):
            texts_before, batches_before = encoder_batches(base_url)
            rate = asyncio.run(http_rate(base_url, pairs, per_request, args.clients, args.passes))
            texts_after, batches_after = encoder_batches(base_url)
            mean_batch = (texts_after - texts_before) / (batches_after - batches_before)
            http_rows.append((per_request, rate))
            print(f"  HTTP, {per_request} pair(s)/request: {rate:.1f} pairs/s; {mean_batch:.0f} texts per encoder batch")
    print("reference again, after the server stopped:", flush=True)
    limits.append(encoder_limit(texts, args.dtype))
    batch_size, sentences_per_second = max(limits, key=lambda item: item[1])
    limit = sentences_per_second / 2  # two sentences per pair
    rows = [
        (f"Hugging Face forward alone, batch {batch_size}, length-sorted: the limit (best of 2)", f"{limit:.1f}", "1.00"),
        (
            f"our encoder alone, batched as the server batches {args.clients} x 8 pairs (no HTTP, no transport)",
            f"{server_like:.1f}",
            f"{server_like / limit:.2f}",
        ),
    ]
    for per_request, rate in http_rows:
        rows.append((f"POST /similarity over HTTP, {per_request} pair(s)/request", f"{rate:.1f}", f"{rate / limit:.2f}"))
    print()
    print_table(["path (wrd, " + args.dtype + ")", "pairs/s", "ratio to encoder limit"], rows)


if __name__ == "__main__":
    main()
