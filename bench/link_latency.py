"""/link-entity latency on a 1M-name index, beside transformers' ``generate`` of the same model.

Builds a real index of ``--names`` entity names (the LC-QuAD KB's names, then synthetic names
made of their words) and starts a real ``simlink serve`` on it with the default settings. Then,
in alternating rounds (this machine's speed drifts), one LC-QuAD dev question at a time:

- POST /link-entity over HTTP (beam 5, default request fields);
- our trie-constrained beam search in process (``LinkingEngine.link``), with the time spent in
  trie lookups recorded (the constraint's overhead);
- ``generate`` with ``prefix_allowed_tokens_fn`` (the previous path) in process;
- unconstrained ``generate`` in process: **the reference**, the ratio's denominator, in fp32;
- the same in bf16, beside it: how much of the gap is the precision alone.

The server and our in-process search load the model as the server does by default
(``SIMLINK_LINK_DTYPE=auto``: bf16 on a CPU that computes it natively); the references and the
``generate`` + trie path run the fp32 model.

Each timing starts ``--pause-ms`` after the one before: after a parallel region, torch's OpenMP
threads spin-wait for several milliseconds before they sleep, and threads spinning in one process
(the server, or this one) would slow the next path measured in the other; a deployment has no
benchmark process beside its server. ``--pause-ms 0`` measures back to back.

It checks that our search and ``generate`` return the same names with scores within 1e-4 on
``--check`` questions (both on the fp32 model), how often the served precision finds the same
names as fp32, and measures 16 concurrent clients against 1 over HTTP on the same questions, in
alternating rounds.

    python -m bench.link_latency --model runs/lcquad-model [--names 1000000] [--questions 100] [--rounds 3]
        [--index DIR]   (build the index into DIR, or reuse the one DIR holds)  [--pause-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import torch

from bench.common import data_dir, print_table
from bench.load_client import post_all, prepare_post
from evaluation.lcquad import read_lcquad
from index.builder import KbSources, build_index
from index.trie import TokenTrie
from models.linking.engine import LinkingEngine, LinkQuery
from models.linking.generation import Hypothesis, constrained_beam_search
from models.linking.seq2seq import Seq2SeqModel, format_input, load_seq2seq_model
from support.reference import search_agreement, transformers_beam_search
from support.server import live_server

PATHS = (
    "POST /link-entity over HTTP",
    "ours, trie-constrained, in process",
    "generate + prefix_allowed_tokens_fn, in process",
    "generate, unconstrained, in process (reference)",
    "generate, unconstrained, bf16, in process",
)


def synthetic_names(real: list[str], total: int, seed: int = 0) -> list[str]:
    """The real names, then distinct 2-4 word names drawn from their vocabulary."""
    rng = random.Random(seed)
    words = sorted({word for name in real for word in name.split()})
    names = dict.fromkeys(real)
    while len(names) < total:
        names[" ".join(rng.choices(words, k=rng.randint(2, 4)))] = None
    return list(names)


def build_synthetic_index(model: Seq2SeqModel, real: list[str], total: int, index_path: Path, scratch: Path) -> None:
    """An index of ``total`` names (:func:`synthetic_names`) at ``index_path``."""
    entities = scratch / "entities.jsonl"
    with entities.open("w") as stream:
        for number, name in enumerate(synthetic_names(real, total)):
            stream.write(json.dumps({"id": f"e{number}", "name": name}) + "\n")
    begin = time.perf_counter()
    manifest = build_index(KbSources(entities), index_path, model.tokens).manifest
    print(f"index of {manifest.counts['distinct_names']:,} names built in {time.perf_counter() - begin:.0f} s")


class TimedTrie:
    """A trie whose lookups are timed (bench-only instrumentation of the constraint's cost)."""

    def __init__(self, trie: TokenTrie) -> None:
        self.trie = trie
        self.seconds = 0.0

    def next_tokens(self, prefix):
        begin = time.perf_counter()
        found = self.trie.next_tokens(prefix)
        self.seconds += time.perf_counter() - begin
        return found

    def __contains__(self, sequence) -> bool:
        return sequence in self.trie

    def __getattr__(self, name: str):
        return getattr(self.trie, name)


def unconstrained(model: Seq2SeqModel, text: str, beams: int, max_new_tokens: int) -> None:
    encoded = model.tokenizer([format_input(text, "entity")], return_tensors="pt")
    with torch.inference_mode():
        model.model.generate(
            **encoded,
            num_beams=beams,
            num_return_sequences=beams,
            max_new_tokens=max_new_tokens,
            length_penalty=0.0,
            early_stopping=True,
            do_sample=False,
        )


def timed(work: Callable[[], object], pause: float = 0.0) -> float:
    """Seconds ``work`` takes, started ``pause`` seconds from now (see the module's note on spinning threads)."""
    time.sleep(pause)
    begin = time.perf_counter()
    work()
    return time.perf_counter() - begin


def searched(
    search: Callable[..., list[list[Hypothesis]]],
    model: Seq2SeqModel,
    trie: TokenTrie,
    questions: list[str],
    beams: int,
    max_new: int,
) -> list[list[Hypothesis]]:
    """``search`` (ours or ``generate``'s) over the questions as entity inputs, 20 at a time."""
    inputs = [format_input(text, "entity") for text in questions]
    found: list[list[Hypothesis]] = []
    for start in range(0, len(inputs), 20):
        batch = inputs[start : start + 20]
        found += search(model, batch, [trie] * len(batch), beams, max_new)
    return found


def check_outputs(model: Seq2SeqModel, trie: TokenTrie, questions: list[str], beams: int, max_new: int) -> str:
    """Ours against ``generate`` on the same inputs (see ``support.reference.SearchAgreement``)."""
    ours = searched(constrained_beam_search, model, trie, questions, beams, max_new)
    theirs = searched(transformers_beam_search, model, trie, questions, beams, max_new)
    agreement = search_agreement(ours, theirs)
    pairs = [(a, b) for a, b in zip(ours, theirs, strict=True) if a and b]
    same_best = sum(a[0].tokens == b[0].tokens for a, b in pairs)
    better_best = sum(a[0].tokens != b[0].tokens and a[0].score > b[0].score for a, b in pairs)
    fewer = sum(len(b) < len(a) for a, b in zip(ours, theirs, strict=True))
    return (
        f"{agreement.inputs} questions: same best name {same_best} (where not, ours scores higher: {better_best}); "
        f"same names {agreement.identical}; every name "
        f"generate returns is ours, same order, {agreement.contained} (generate returns fewer names on {fewer}; "
        f"{agreement.placeholders} of its names scored near -1e9 left out); largest score difference "
        f"{agreement.largest_score_difference:.1e}"
    )


def check_precision(
    served: Seq2SeqModel, exact: Seq2SeqModel, trie: TokenTrie, questions: list[str], beams: int, max_new: int
) -> str:
    """Our search in the served precision against the same search in fp32, on the same inputs."""
    if served.loaded.dtype == exact.loaded.dtype:
        return f"served in {served.loaded.dtype}, as checked above"
    found = (searched(constrained_beam_search, m, trie, questions, beams, max_new) for m in (served, exact))
    pairs = [(a, b) for a, b in zip(*found, strict=True) if a and b]
    same_best = [(a[0].score, b[0].score) for a, b in pairs if a[0].tokens == b[0].tokens]
    same_names = sum([h.tokens for h in a] == [h.tokens for h in b] for a, b in pairs)
    differences = [abs(x - y) for x, y in same_best] or [float("nan")]
    return (
        f"{served.loaded.dtype} ({served.loaded.dtype_reason}) against fp32, {len(pairs)} questions: same best name "
        f"{len(same_best)}, same names in the same order {same_names}; best name's score difference median "
        f"{float(np.median(differences)):.3f}, largest {max(differences):.3f}"
    )


def concurrency(base_url: str, questions: list[str], beams: int, clients: int, repeat: int) -> tuple[float, ...]:
    """Questions/s, p50 and p99 (ms) with ``clients`` concurrent connections."""
    requests = [prepare_post(base_url, "/link-entity", {"text": q, "num_beams": beams}) for q in questions] * repeat
    latencies: list[float] = []
    begin = time.perf_counter()
    asyncio.run(post_all(base_url, requests, clients, latencies))
    elapsed = time.perf_counter() - begin
    return len(requests) / elapsed, *(float(np.percentile(latencies, p)) * 1000 for p in (50, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained linker directory (simlink train)")
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--check", type=int, default=200, help="questions for the outputs-equal check")
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--index", type=Path, help="build the index here, or reuse the one built here before")
    parser.add_argument("--pause-ms", type=float, default=50.0, help="idle time before each timing (see above)")
    args = parser.parse_args()
    if args.pause_ms < 0:
        parser.error(f"--pause-ms must be 0 or more, got {args.pause_ms:g}")

    lcquad = read_lcquad(data_dir() / "lcquad1")
    questions = [q.text for q in lcquad.dev[: args.questions]]
    model = load_seq2seq_model(args.model)
    served = load_seq2seq_model(args.model, "auto")
    bf16 = served if served.loaded.dtype == "bf16" else load_seq2seq_model(args.model, "bf16")
    with tempfile.TemporaryDirectory() as tmp:
        index_path = args.index or Path(tmp) / "index"
        if args.index is not None and (args.index / "manifest.json").exists():
            print(f"index reused from {args.index}")
        else:
            build_synthetic_index(model, lcquad.names, args.names, index_path, Path(tmp))
        engine = LinkingEngine.open(served, index_path)
        max_new = engine.index.manifest.counts["longest_entity_sequence"] + 1
        trie = engine.index.entity_trie
        check_questions = [q.text for q in (lcquad.dev + lcquad.train)[: args.check]]
        print("outputs equal:", check_outputs(model, trie, check_questions, args.beams, max_new))
        print("served precision:", check_precision(served, model, trie, check_questions, args.beams, max_new))

        env = {"SIMLINK_LINK_MODEL": args.model, "SIMLINK_LINK_INDEX": str(index_path)}
        timings: dict[str, list[list[float]]] = {path: [] for path in PATHS}
        shares: list[float] = []
        with live_server(env, timeout=600) as server, httpx.Client(timeout=120) as client:
            info = client.get(f"{server.url}/info").json()
            linker = info["linker"]
            print(f"server: linker {linker['model']['dtype']} ({linker['model']['dtype_reason']}), "
                  f"{linker['threads']} threads, encoder workers "
                  f"{info['batching']['encoder_workers']} x {info['batching']['torch_threads']} thread(s)")  # fmt: skip

            server_ms: dict[str, list[float]] = {"x-queue-time-ms": [], "x-generate-time-ms": [], "x-total-time-ms": []}

            def over_http(text: str) -> None:
                body = {"text": text, "num_beams": args.beams}
                response = client.post(f"{server.url}/link-entity", json=body)
                response.raise_for_status()
                for header, values in server_ms.items():
                    values.append(float(response.headers.get(header, "nan")))

            timed_trie = TimedTrie(trie)
            engine.index.entity_trie = timed_trie  # type: ignore[assignment]

            def ours(text: str) -> None:
                timed_trie.seconds = 0.0
                engine.link([LinkQuery(text, top_k=args.beams, num_beams=args.beams)])

            def theirs(text: str) -> None:
                transformers_beam_search(model, [format_input(text, "entity")], [trie], args.beams, max_new)

            over_http(questions[0])  # warm-up
            pause = args.pause_ms / 1000
            for _ in range(args.rounds):
                rows = {path: [] for path in PATHS}
                for text in questions:
                    rows[PATHS[0]].append(timed(lambda text=text: over_http(text), pause))
                    rows[PATHS[1]].append(seconds := timed(lambda text=text: ours(text), pause))
                    shares.append(timed_trie.seconds / seconds)
                    rows[PATHS[2]].append(timed(lambda text=text: theirs(text), pause))
                    reference = timed(lambda text=text: unconstrained(model, text, args.beams, max_new), pause)
                    rows[PATHS[3]].append(reference)
                    in_bf16 = timed(lambda text=text: unconstrained(bf16, text, args.beams, max_new), pause)
                    rows[PATHS[4]].append(in_bf16)
                for path in PATHS:
                    timings[path].append(rows[path])
            loads: dict[int, list[tuple[float, ...]]] = {1: [], 16: []}
            for _ in range(args.rounds):  # alternating, as above
                loads[1].append(concurrency(server.url, questions, args.beams, clients=1, repeat=1))
                loads[16].append(concurrency(server.url, questions, args.beams, clients=16, repeat=2))

    print(f"\n{len(questions)} LC-QuAD dev questions, one at a time, beam {args.beams}, {args.names:,}-name trie, "
          f"{args.rounds} alternating rounds, {args.pause_ms:g} ms apart: "
          "median of the rounds' percentiles [range]")  # fmt: skip

    def cell(path: str, q: int) -> str:
        values = [float(np.percentile(r, q)) * 1000 for r in timings[path]]
        return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"

    print_table(["path", "p50 ms", "p90 ms"], [[path, cell(path, 50), cell(path, 90)] for path in PATHS])

    def ratios(reference: str) -> str:
        values = [
            float(np.median(http)) / float(np.median(measured))
            for http, measured in zip(timings[PATHS[0]], timings[reference], strict=True)
        ]
        return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"

    print(
        f"\nHTTP p50 / reference p50: {ratios(PATHS[3])} (/ bf16 generate's p50: {ratios(PATHS[4])}); "
        f"trie lookups: median {100 * float(np.median(shares)):.1f} % of our in-process call"
    )

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"

    print(f"\nconcurrency, {args.rounds} alternating rounds of 1 and 16 clients: median [range]")
    print_table(
        ["clients", "questions/s", "p50 ms", "p99 ms"],
        [[n, *(spread([r[k] for r in rounds]) for k in range(3))] for n, rounds in loads.items()],
    )
    gains = [many[0] / one[0] for one, many in zip(loads[1], loads[16], strict=True)]
    print(f"16 clients / 1 client, questions/s, per round: {statistics.median(gains):.2f}x "
          f"[{min(gains):.2f}-{max(gains):.2f}]")  # fmt: skip
    inside = ", ".join(f"{header} {float(np.nanmedian(values)):.1f}" for header, values in server_ms.items())
    print(f"one at a time, medians of the server's own stage headers: {inside}")


if __name__ == "__main__":
    main()
