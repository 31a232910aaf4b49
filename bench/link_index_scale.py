"""/link-entity latency on a 10M-name index beside the same model on a 1M-name index, in one run.

Both indexes hold the LC-QuAD KB's names, then synthetic names made of their words (as in
``bench/link_latency.py``), and are built by the real ``simlink build-index`` (timed, with its
peak RSS) unless given. Two real servers with default settings, one per index, are started side
by side; LC-QuAD dev questions go one at a time to each in turn (question by question, so both
see the same drift of this machine's speed), beam 5, for ``--rounds`` rounds. Printed: p50/p90 per
index, the ratio of the p50s (10M ÷ 1M), and each server's resident memory once loaded and after
the rounds.

    python -m bench.link_index_scale --model runs/lcquad-model [--large 10000000] [--small 1000000]
        [--large-index DIR --small-index DIR] [--questions 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.common import data_dir, print_table
from bench.link_latency import synthetic_names
from evaluation.lcquad import read_lcquad
from support.server import live_server, simlink_command


def build(model: str, real: list[str], count: int, folder: Path) -> tuple[Path, float, float]:
    """Writes ``count`` names and builds their index with the CLI; returns (index, seconds, peak RSS GB)."""
    entities = folder / f"entities-{count}.jsonl"
    with entities.open("w") as stream:
        for number, name in enumerate(synthetic_names(real, count)):
            stream.write(json.dumps({"id": f"e{number}", "name": name}) + "\n")
    index = folder / f"index-{count}"
    begin = time.perf_counter()
    command = [*simlink_command(), "build-index", "--entities", str(entities), "--out", str(index), "--model", model]
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - begin
    entities.unlink()
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return index, seconds, peak_gb


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained linker directory (simlink train)")
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--large-index", type=Path, help="an index built before (skips the build)")
    parser.add_argument("--small-index", type=Path, help="an index built before (skips the build)")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--beams", type=int, default=5)
    args = parser.parse_args()

    lcquad = read_lcquad(data_dir() / "lcquad1")
    questions = [q.text for q in lcquad.dev[: args.questions]]
    with tempfile.TemporaryDirectory(prefix="simlink-index-scale-") as folder:
        indexes = {}
        for label, count, given in (("small", args.small, args.small_index), ("large", args.large, args.large_index)):
            if given is not None:
                indexes[label] = given
                continue
            indexes[label], seconds, peak = build(args.model, lcquad.names, count, Path(folder))
            print(
                f"{count:,}-name index built by simlink build-index in {seconds:.0f} s (peak RSS so far {peak:.2f} GB)"
            )
        counts = {
            label: json.loads((path / "manifest.json").read_text())["counts"]["distinct_names"]
            for label, path in indexes.items()
        }
        env = {
            label: {"SIMLINK_LINK_MODEL": args.model, "SIMLINK_LINK_INDEX": str(path)}
            for label, path in indexes.items()
        }
        with (
            live_server(env["small"], timeout=600) as small,
            live_server(env["large"], timeout=600) as large,
            httpx.Client(timeout=120) as client,
        ):
            servers = {"small": small, "large": large}
            loaded = {label: rss_mb(server.process.pid) for label, server in servers.items()}

            def ask(label: str, text: str) -> float:
                begin = time.perf_counter()
                response = client.post(
                    f"{servers[label].url}/link-entity", json={"text": text, "num_beams": args.beams}
                )
                response.raise_for_status()
                return time.perf_counter() - begin

            for label in servers:
                ask(label, questions[0])  # warm-up
            timings: dict[str, list[list[float]]] = {"small": [], "large": []}
            for round_number in range(args.rounds):
                order = ("small", "large") if round_number % 2 == 0 else ("large", "small")
                rows: dict[str, list[float]] = {"small": [], "large": []}
                for text in questions:
                    for label in order:
                        rows[label].append(ask(label, text))
                for label in rows:
                    timings[label].append(rows[label])
            after = {label: rss_mb(server.process.pid) for label, server in servers.items()}

    def cell(label: str, q: int) -> str:
        values = [float(np.percentile(r, q)) * 1000 for r in timings[label]]
        return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"

    print(f"\n{len(questions)} LC-QuAD dev questions, one at a time to each server in turn, beam {args.beams}, "
          f"{args.rounds} rounds: median of the rounds' percentiles [range]")  # fmt: skip
    print_table(
        ["index", "names", "p50 ms", "p90 ms", "server RSS loaded MB", "after the rounds MB"],
        [
            [
                label,
                f"{counts[label]:,}",
                cell(label, 50),
                cell(label, 90),
                f"{loaded[label]:.0f}",
                f"{after[label]:.0f}",
            ]
            for label in ("small", "large")
        ],
    )
    ratios = [
        float(np.median(big)) / float(np.median(little))
        for big, little in zip(timings["large"], timings["small"], strict=True)
    ]
    print(f"\np50 large / p50 small: {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")


if __name__ == "__main__":
    main()
