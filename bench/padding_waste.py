"""Share of token slots left empty on STS-B dev: padded length-sorted batches vs packed rows.

A count, not a timing: the texts are tokenized with the embedded model's tokenizer; padded
batches are sorted by length and padded to a multiple of 8 (as the throughput benchmark's
reference feeds the model); packed batches take the texts in file order, 64 at a time, in rows
of ``models.similarity.encoder.PACKED_ROW_LENGTH`` slots (as the server does).

    python -m bench.padding_waste [--batch 64]
"""

from __future__ import annotations

import argparse

from bench.common import stsb_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="texts per batch")
    args = parser.parse_args()
    from models.loader import load_encoder_model
    from models.similarity.encoder import PACKED_ROW_LENGTH
    from models.similarity.packing import pack

    tokenizer = load_encoder_model("embedded").tokenizer
    ids = tokenizer([text for pair in stsb_pairs("dev") for text in pair], truncation=True, max_length=256)["input_ids"]
    tokens = sum(len(text) for text in ids)
    by_length = sorted(ids, key=len)
    padded = sum(
        len(batch) * -(-max(map(len, batch)) // 8) * 8
        for batch in (by_length[start : start + args.batch] for start in range(0, len(ids), args.batch))
    )
    packed = sum(
        pack(ids[start : start + args.batch], PACKED_ROW_LENGTH, pad_id=0).rows * PACKED_ROW_LENGTH
        for start in range(0, len(ids), args.batch)
    )
    print(f"STS-B dev: {len(ids)} texts, {tokens} tokens, batches of {args.batch}")
    print(f"padded, length-sorted: {padded} slots, {1 - tokens / padded:.1%} empty")
    print(f"packed, file order:    {packed} slots, {1 - tokens / packed:.1%} empty")


if __name__ == "__main__":
    main()
