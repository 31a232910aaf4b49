"""What a restricted output vocabulary buys a search: one trained linker, two output layers.

``simlink train`` (``--output-vocabulary kb``) lets a bert2bert decoder write only its knowledge
base's tokens. This benchmark loads such a linker twice: as it is, and with a row for every token
of the tokenizer (``restrict_output_vocabulary`` over the whole vocabulary: the kept rows unchanged,
the others from the encoder's embeddings), which is what the same decoder costs with a full output
layer (**the reference**). Both search the same index for the same LC-QuAD dev questions in
process, one at a time, in alternating order, ``--pause-ms`` apart (see ``bench/link_latency.py``
on spinning threads), through the trie-constrained beam search itself (beam 5, the index's whole
entity trie). It prints the median of each round's p50, the ratio, and the output-layer product
alone for 1 and 5 rows. The two differ only in the normaliser of each step's log-probabilities,
so they search alike; only the product's size differs.

    python -m bench.output_vocabulary --model runs/lcquad-model-kb --index runs/lcquad-index-kb
        [--questions 60] [--rounds 3] [--pause-ms 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.common import data_dir, median_seconds, print_table
from evaluation.lcquad import read_lcquad
from index.linking_index import LinkingIndex
from models.linking import fused_bert
from models.linking.generation import Hypothesis, constrained_beam_search
from models.linking.seq2seq import Seq2SeqModel, format_input, load_seq2seq_model, restrict_output_vocabulary


def with_every_token(model_dir: str) -> Seq2SeqModel:
    """The linker at ``model_dir`` with an output row for every token of its tokenizer."""
    model = load_seq2seq_model(model_dir)
    restrict_output_vocabulary(model, range(len(model.tokenizer)))
    return model


def output_layer_ms(model: Seq2SeqModel, rows: int) -> float:
    """Median milliseconds of the fused prediction head over ``rows`` decoder states."""
    fused = fused_bert.FusedBert.of(model.model)
    states = torch.randn(rows, model.model.config.decoder.hidden_size)
    with torch.inference_mode():
        return 1000 * median_seconds(lambda: fused.log_probabilities(states), repeats=200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a linker trained with --output-vocabulary kb")
    parser.add_argument("--index", required=True, help="an index built with that model")
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pause-ms", type=float, default=50.0)
    args = parser.parse_args()

    restricted = load_seq2seq_model(args.model)
    if restricted.output is None:
        parser.error(f"{args.model} writes every token already; train it with --output-vocabulary kb")
    every = with_every_token(args.model)
    questions = [q.text for q in read_lcquad(data_dir() / "lcquad1").dev[: args.questions]]
    index = LinkingIndex.open(Path(args.index), restricted.tokens.identity)
    trie = index.entity_trie
    longest = index.manifest.counts["longest_entity_sequence"] + 1

    def search(model: Seq2SeqModel) -> Callable[[str], list[list[Hypothesis]]]:
        return lambda text: constrained_beam_search(model, [format_input(text, "entity")], [trie], 5, longest)

    searches = {
        f"decoder writes {len(restricted.output):,} tokens (ours)": search(restricted),
        f"decoder writes all {len(every.tokenizer):,} (reference)": search(every),
    }
    rounds: dict[str, list[float]] = {name: [] for name in searches}
    best: dict[str, list[object]] = {name: [] for name in searches}
    for _ in range(args.rounds):
        seconds: dict[str, list[float]] = {name: [] for name in searches}
        for text in questions:
            for name, run in searches.items():
                time.sleep(args.pause_ms / 1000)
                begin = time.perf_counter()
                found = run(text)
                seconds[name].append(time.perf_counter() - begin)
                best[name].append(found[0][0].tokens if found[0] else None)
        for name in searches:
            rounds[name].append(1000 * float(np.median(seconds[name])))
    rows = []
    for name, values in rounds.items():
        rows.append([name, f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"])
    print(f"{len(questions)} LC-QuAD dev questions, one at a time, beam 5, index {args.index}, {args.rounds} "
          f"alternating rounds: median of the rounds' p50 [range]")  # fmt: skip
    print_table(["linker", "p50 ms"], rows)
    ours, reference = rounds.values()
    ratios = [a / b for a, b in zip(ours, reference, strict=True)]
    print(f"ours / reference, p50: {statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]")
    same = sum(a == b for a, b in zip(*best.values(), strict=True)) // args.rounds
    print(f"same best name on {same} of {len(questions)} questions (the normalisers differ)")
    print_table(
        ["output layer alone", "1 row ms", "5 rows ms"],
        [
            [f"{len(m.output or [])} rows", *(f"{output_layer_ms(m, n):.2f}" for n in (1, 5))]
            for m in (restricted, every)
        ],
    )


if __name__ == "__main__":
    main()
