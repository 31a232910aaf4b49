"""/link-entity latency on a 1M-name index: constrained vs unconstrained beam search, same model, same inputs.

Builds a real index of ``--names`` entity names (the LC-QuAD KB's names, then synthetic names
made of their words), starts a real ``simlink serve`` on it and times POST /link-entity one
question at a time (LC-QuAD dev questions). In-process, with the same model and questions, it
then times ``generate`` with the trie constraint and without any constraint, and the time spent
inside the constraint function itself.

    python -m bench.link_latency --model runs/lcquad-model [--names 1000000] [--questions 100]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.common import data_dir, print_table
from evaluation.lcquad import read_lcquad
from index.builder import KbSources, build_index
from models.linking import generation
from models.linking.engine import LinkingEngine, LinkQuery
from models.linking.seq2seq import format_input, load_seq2seq_model
from support.server import running_server


def synthetic_names(real: list[str], total: int, seed: int = 0) -> list[str]:
    """The real names, then distinct 2-4 word names drawn from their vocabulary."""
    rng = random.Random(seed)
    words = sorted({word for name in real for word in name.split()})
    names = dict.fromkeys(real)
    while len(names) < total:
        names[" ".join(rng.choices(words, k=rng.randint(2, 4)))] = None
    return list(names)


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return float(np.percentile(seconds, 50)) * 1000, float(np.percentile(seconds, 90)) * 1000


def time_constraint() -> list[float]:
    """Wraps the constraint function so every call's duration is recorded (bench-only instrumentation)."""
    spent: list[float] = []
    original = generation.TrieConstraint.__call__

    def timed(self, batch_id, input_ids):
        begin = time.perf_counter()
        result = original(self, batch_id, input_ids)
        spent.append(time.perf_counter() - begin)
        return result

    generation.TrieConstraint.__call__ = timed
    return spent


def unconstrained(engine: LinkingEngine, text: str, beams: int, max_new_tokens: int) -> None:
    model = engine.model
    encoded = model.tokenizer([format_input(text, "entity")], return_tensors="pt")
    model.model.generate(
        **encoded,
        num_beams=beams,
        num_return_sequences=beams,
        max_new_tokens=max_new_tokens,
        length_penalty=0.0,
        early_stopping=True,
        do_sample=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained linker directory (simlink train)")
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--beams", type=int, default=5)
    args = parser.parse_args()

    lcquad = read_lcquad(data_dir() / "lcquad1")
    questions = [q.text for q in lcquad.dev[: args.questions]]
    model = load_seq2seq_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = synthetic_names(lcquad.names, args.names)
        with (root / "entities.jsonl").open("w") as stream:
            for number, name in enumerate(names):
                stream.write(json.dumps({"id": f"e{number}", "name": name}) + "\n")
        begin = time.perf_counter()
        manifest = build_index(KbSources(root / "entities.jsonl"), root / "index", model.tokens).manifest
        print(f"index of {manifest.counts['distinct_names']:,} names built in {time.perf_counter() - begin:.0f} s")

        env = {"SIMLINK_LINK_MODEL": args.model, "SIMLINK_LINK_INDEX": str(root / "index")}
        http: list[float] = []
        with running_server(env, timeout=600) as base_url, httpx.Client(timeout=120) as client:
            for text in [questions[0], *questions]:  # the first request warms up
                begin = time.perf_counter()
                response = client.post(f"{base_url}/link-entity", json={"text": text, "num_beams": args.beams})
                response.raise_for_status()
                http.append(time.perf_counter() - begin)
        http = http[1:]

        engine = LinkingEngine.open(model, root / "index")
        spent = time_constraint()
        constrained, constraint_share, free = [], [], []
        max_new = manifest.counts["longest_entity_sequence"] + 1
        for text in questions:
            spent.clear()
            begin = time.perf_counter()
            engine.link([LinkQuery(text, top_k=args.beams, num_beams=args.beams)])
            constrained.append(time.perf_counter() - begin)
            constraint_share.append(sum(spent) / constrained[-1])
            begin = time.perf_counter()
            unconstrained(engine, text, args.beams, max_new)
            free.append(time.perf_counter() - begin)

    print(f"\n{len(questions)} LC-QuAD dev questions, one at a time, beam {args.beams}, {args.names:,}-name trie")
    rows = [
        ["POST /link-entity over HTTP (constrained)", *percentiles(http)],
        ["generate, trie-constrained (in process)", *percentiles(constrained)],
        ["generate, unconstrained (in process)", *percentiles(free)],
    ]
    print_table(["path", "p50 ms", "p90 ms"], [[r[0], f"{r[1]:.1f}", f"{r[2]:.1f}"] for r in rows])
    print(
        f"\nconstrained / unconstrained (p50): {rows[1][1] / rows[2][1]:.2f}x; time inside the constraint "
        f"function: median {100 * float(np.median(constraint_share)):.1f} % of a constrained call"
    )


if __name__ == "__main__":
    main()
