"""Index build at scale: the real ``simlink build-index`` over N synthetic entity names, beside 1M.

For each size (``--reference``, 1M by default, then ``--names``, 10M by default) it writes an
entity JSONL of real-text names (see :func:`synthetic_names`), runs ``simlink build-index
--model embedded`` on it as a subprocess and records its wall time and peak RSS (``wait4``), and
the index's size on disk. Then a fresh process opens the index as the server does
(:meth:`LinkingIndex.open`) and reports its RSS growth, its RSS after the lookups, and next-token
lookup latency (p50/p99) at prefix depths 0-4, 3,000 prefixes of real names per depth.

    python -m bench.index_scale [--names 10000000] [--reference 1000000] [--out bench/results/index_scale.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np

from bench.common import lookup_latencies_us
from bench.trie import rss_mb
from support.data import REPO

DEPTHS = (0, 1, 2, 3, 4)
PROBES = 3000
WORDS_PER_NAME = (0.10, 0.35, 0.30, 0.13, 0.08, 0.04)  # 1-6 words
SHARED = 0.03  # share of names that repeat a recent name (another entity of the same name)
ZIPF = 1.1


def word_pool(seed: int = 0) -> list[str]:
    """Words for names, most common first: the embedded tokenizer's whole English words (one token
    each), shuffled, then twice as many compounds of two of them (several tokens each, like rare
    proper names)."""
    from tokenizers import Tokenizer

    from models.loader import embedded_model_dir

    vocab = Tokenizer.from_file(str(embedded_model_dir() / "tokenizer.json")).get_vocab()
    words = sorted(word for word in vocab if word.isascii() and word.isalpha() and len(word) > 1)
    rng = random.Random(seed)
    compounds = sorted({rng.choice(words) + rng.choice(words) for _ in range(2 * len(words))})
    rng.shuffle(words)
    rng.shuffle(compounds)
    return [word.capitalize() for word in words + compounds]


def synthetic_names(count: int, seed: int = 0, batch: int = 100_000) -> Iterator[str]:
    """``count`` names of 1-6 Zipf-distributed words (a few very common, a long tail); a few
    percent repeat a name shortly before them. Deterministic for a seed; made a batch at a time."""
    pool = word_pool(seed)
    rng = np.random.default_rng(seed)
    for start in range(0, count, batch):
        size = min(batch, count - start)
        lengths = rng.choice(len(WORDS_PER_NAME), size=size, p=WORDS_PER_NAME) + 1
        picks = ((rng.zipf(ZIPF, size=int(lengths.sum())) - 1) % len(pool)).tolist()
        repeats = (rng.random(size) < SHARED).tolist()
        back = rng.integers(1, 1000, size=size).tolist()
        ends = np.cumsum(lengths).tolist()
        names: list[str] = []
        for number, (begin, end) in enumerate(zip([0, *ends][:-1], ends, strict=True)):
            if repeats[number] and number >= back[number]:
                names.append(names[number - back[number]])
            else:
                names.append(" ".join(pool[i] for i in picks[begin:end]))
        yield from names


def write_entities(path: Path, count: int, seed: int = 0) -> None:
    """An entity JSONL of ``count`` synthetic names, ids ``Q0``, ``Q1``, ... (Wikidata-like)."""
    with path.open("w", encoding="utf-8") as stream:
        for number, name in enumerate(synthetic_names(count, seed)):
            stream.write(f'{{"id": "Q{number}", "name": {json.dumps(name)}}}\n')


def run_build(entities: Path, out: Path, log: Path) -> dict:
    """Runs ``simlink build-index`` as a subprocess; its wall time and peak RSS."""
    command = [sys.executable, "-c", "from service.cli import main; main()", "build-index"]
    command += ["--entities", str(entities), "--out", str(out), "--model", "embedded"]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    begin = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - begin
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"build-index failed ({status}):\n{log.read_text()[-3000:]}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "output": log.read_text().strip()}


def disk_mb(directory: Path) -> dict[str, float]:
    """Sizes of an index's parts on disk."""
    sizes = {path: path.stat().st_size / 2**20 for path in directory.rglob("*") if path.is_file()}
    return {
        "tries": sum(size for path, size in sizes.items() if path.parent != directory),
        "sqlite": sum(size for path, size in sizes.items() if path.suffix == ".sqlite"),
        "total": sum(sizes.values()),
    }


def _probe_sequences(index, rng: np.random.Generator, count: int) -> list[list[int]]:
    """Token sequences of ``count`` random entities' names, through the store as the server finds them."""
    db = index.store._db
    (rows,) = db.execute("SELECT max(rowid) FROM entity_names").fetchone()
    picks = rng.choice(rows, size=min(count, rows), replace=False) + 1
    sequence_ids: list[int] = []
    for start in range(0, picks.size, 500):
        chunk = picks[start : start + 500].tolist()
        marks = ",".join("?" * len(chunk))
        sequence_ids += [
            row[0] for row in db.execute(f"SELECT sequence_id FROM entity_names WHERE rowid IN ({marks})", chunk)
        ]
    return [index.entity_trie.sequence(sequence_id) for sequence_id in sequence_ids]


def measure_loaded(path: str) -> dict:
    """Runs in a fresh process: open the index as the server does, then RSS and lookup latency by depth."""
    from index.linking_index import LinkingIndex

    baseline = rss_mb()
    index = LinkingIndex.open(Path(path))
    loaded = rss_mb() - baseline
    rng = np.random.default_rng(1)
    sequences = _probe_sequences(index, rng, 10 * PROBES)
    before_lookups = rss_mb()
    by_depth = {}
    for depth in DEPTHS:
        eligible = [sequence for sequence in sequences if len(sequence) > depth]
        picks = rng.choice(len(eligible), size=min(PROBES, len(eligible)), replace=False)
        probes = [eligible[i][:depth] for i in picks]
        lookup_latencies_us(index.entity_trie.next_tokens, probes[:200])  # page in what the lookups touch
        by_depth[depth] = lookup_latencies_us(index.entity_trie.next_tokens, probes)
    after = rss_mb()
    return {
        "rss_mb": loaded,
        "rss_after_lookups_mb": loaded + after - before_lookups,
        "rss_process_mb": after,
        "latency_us": by_depth,
        "counts": index.manifest.counts,
    }


def measure(count: int, directory: Path) -> dict:
    """Writes ``count`` names, builds their index with the CLI, measures it loaded; one row of figures."""
    entities = directory / f"entities-{count}.jsonl"
    begin = time.perf_counter()
    write_entities(entities, count)
    print(f"{count:,} names written in {time.perf_counter() - begin:.0f} s ({entities.stat().st_size / 2**20:.0f} MB)")
    out = directory / f"index-{count}"
    load = os.getloadavg()[0]
    build = run_build(entities, out, directory / f"build-{count}.log")
    print(f"built in {build['seconds']:.0f} s: {build['output'].splitlines()[-1]}")
    command = [sys.executable, "-m", "bench.index_scale", "--measure", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    result = {"names": count, "load": load, "build": build, "disk_mb": disk_mb(out), **json.loads(run.stdout)}
    entities.unlink()
    return result


def _summary_row(result: dict) -> list[object]:
    counts = result["counts"]
    return [
        f"{result['names']:,}",
        f"{counts['distinct_names']:,}",
        f"{result['build']['seconds']:.0f}",
        f"{result['build']['peak_rss_mb']:.0f}",
        f"{result['disk_mb']['total']:.0f} ({result['disk_mb']['tries']:.0f} + {result['disk_mb']['sqlite']:.0f})",
        f"{result['rss_mb']:.0f}",
        f"{result['rss_after_lookups_mb']:.0f}",
        f"{result['rss_process_mb']:.0f}",
        f"{result['load']:.2f}",
    ]


def report(results: list[dict]) -> str:
    """The printed tables: one summary row per size, then latency by depth, with the ratio to the first."""
    lines: list[str] = []

    def table(headers: list[str], rows: list[list[object]]) -> None:
        lines.extend(_table_lines(headers, rows))

    lines.append("Build (the CLI, a subprocess) and the loaded index (a fresh process, LinkingIndex.open)")
    headers = ["names", "distinct names", "build s", "build peak RSS MB", "disk MB (tries + sqlite)"]
    headers += ["loaded RSS MB", "RSS after lookups MB", "process RSS MB", "load avg at start"]
    table(headers, [_summary_row(result) for result in results])
    first, last = results[0], results[-1]
    if len(results) > 1:
        ratio = [
            f"{last['build']['seconds'] / first['build']['seconds']:.1f}x",
            f"{last['build']['peak_rss_mb'] / first['build']['peak_rss_mb']:.1f}x",
            f"{last['disk_mb']['total'] / first['disk_mb']['total']:.1f}x",
        ]
        lines.append(
            f"\n{last['names']:,} / {first['names']:,}: build time {ratio[0]}, peak RSS {ratio[1]}, disk {ratio[2]}"
        )
    lines.append(f"\nNext-token lookup latency (µs) by prefix depth, {PROBES:,} prefixes of indexed names per depth")
    rows = []
    for depth in DEPTHS:
        row: list[object] = [depth]
        for result in results:
            p50, p99 = result["latency_us"][str(depth)]
            row += [f"{p50:.1f}", f"{p99:.1f}"]
        if len(results) > 1:
            row.append(f"{last['latency_us'][str(depth)][1] / first['latency_us'][str(depth)][1]:.1f}x")
        rows.append(row)
    headers = ["depth"] + [f"{r['names']:,} {q}" for r in results for q in ("p50", "p99")]
    table(headers + (["p99 ratio"] if len(results) > 1 else []), rows)
    return "\n".join(lines)


def _table_lines(headers: list[str], rows: list[list[object]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"] + [
        "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=10_000_000)
    parser.add_argument("--reference", type=int, default=1_000_000, help="the smaller build beside it (0: none)")
    parser.add_argument("--out", type=Path, help="also write the tables (with the command) to this Markdown file")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_loaded(args.measure)))
        return
    sizes = [size for size in (args.reference, args.names) if size]
    with tempfile.TemporaryDirectory(prefix="index-scale-") as tmp:
        results = [measure(count, Path(tmp)) for count in sizes]
    text = report(results)
    print(text)
    if args.out:
        command = "python -m bench.index_scale " + " ".join(sys.argv[1:])
        header = f"# Index build at scale\n\n`{command}` ({date.today().isoformat()}, {os.cpu_count()} cores)\n\n"
        args.out.write_text(header + text + "\n")


if __name__ == "__main__":
    main()
