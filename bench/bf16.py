"""bf16 vs fp32 for the embedded encoder: agreement, speed, and the cost of a first-seen shape.

Agreement: token-vector cosine and |similarity difference| on the first 300 STS-B dev pairs.
Speed: forward time of a (64, L) batch the first time its shape is seen vs when repeated.

    python bench/bf16.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.common import print_table, stsb_pairs
from models.loader import load_encoder_model
from models.similarity.encoder import TokenEncoder
from models.similarity.scoring import score_pairs

LENGTHS = (13, 17, 21, 25)


def forward_ms(encoder: TokenEncoder, length: int) -> float:
    ids = torch.randint(1000, 2000, (64, length))
    started = time.perf_counter()
    with torch.inference_mode():
        encoder.loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return 1e3 * (time.perf_counter() - started)


def main() -> None:
    texts = [text for pair in stsb_pairs("dev")[:300] for text in pair]
    encoders = {dtype: TokenEncoder(load_encoder_model("embedded", dtype)) for dtype in ("fp32", "bf16")}
    exact, approx = (encoders[d].encode(texts) for d in ("fp32", "bf16"))
    cosines = np.concatenate(
        [
            np.sum(x.vectors * y.vectors, 1) / np.linalg.norm(x.vectors, axis=1) / np.linalg.norm(y.vectors, axis=1)
            for x, y in zip(exact, approx, strict=True)
        ]
    )
    print(f"token-vector cosine bf16 vs fp32 over {cosines.size} tokens: min {cosines.min():.5f}")
    rows = []
    for method in ("wrd", "wmd", "greedy"):
        pairs = zip(score_pairs(exact, method), score_pairs(approx, method), strict=True)
        gaps = [abs(fp32.similarity - bf16.similarity) for fp32, bf16 in pairs]
        rows.append((method, f"{max(gaps):.4f}", f"{np.mean(gaps):.5f}"))
    print_table(["method", "max |similarity difference|", "mean"], rows)
    print()
    rows = []
    for dtype, encoder in encoders.items():
        encoder.warm_up()
        first = [forward_ms(encoder, n) for n in LENGTHS]
        again = [forward_ms(encoder, n) for n in LENGTHS]
        rows.append((dtype, " / ".join(f"{t:.0f}" for t in first), " / ".join(f"{t:.0f}" for t in again)))
    print_table([f"dtype (batch 64, lengths {LENGTHS})", "first-seen shape (ms)", "repeated shape (ms)"], rows)


if __name__ == "__main__":
    main()
