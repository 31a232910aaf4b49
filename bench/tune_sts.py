"""`simlink tune` on STS-B train, for the default transport method and for pooled cosine tuned the same way.

Both runs use the same pairs, epochs, batch size, learning rate, schedule and seed; the cosine run is
sentence-transformers' CosineSimilarityLoss recipe, so the tuned transport is compared with a tuned
cosine. Every model (untuned, tuned for anchored-wrd, tuned for cosine) is then scored with every
method on STS-B dev and SICK trial (fp32), which are never trained on.

    python -m bench.tune_sts [--epochs 4] [--threads 1] [--out-dir runs/tune]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from bench.common import print_table
from evaluation.sts import spearman_by_method
from models.loader import load_encoder_model
from models.similarity import METHOD_NAMES, TokenEncoder
from models.similarity.gold_pairs import read_gold_pairs
from support.data import data_dir
from support.server import simlink_command

TUNED_FOR = ("anchored-wrd", "cosine")


def run_tune(method: str, out: Path, epochs: float, threads: int | None) -> float:
    """Runs ``simlink tune`` as a user would; returns its wall time in seconds."""
    command = [*simlink_command(), "tune", "--pairs", str(data_dir() / "stsb" / "sts-train.csv")]
    command += ["--out", str(out), "--method", method, "--epochs", str(epochs)]
    command += ["--threads", str(threads)] if threads else []
    started = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for tuning (default: torch's)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/tune"))
    parser.add_argument("--skip-tuning", action="store_true", help="score the models already in --out-dir")
    args = parser.parse_args()
    models = {"untuned (embedded)": "embedded"}
    minutes = {}
    for method in TUNED_FOR:
        out = args.out_dir / method
        if not args.skip_tuning:
            minutes[method] = run_tune(method, out, args.epochs, args.threads) / 60
        models[f"tuned for {method}"] = str(out)
    evaluation_sets = {
        "STS-B dev": read_gold_pairs(data_dir() / "stsb" / "sts-dev.csv"),
        "SICK trial": read_gold_pairs(data_dir() / "sick" / "SICK_trial.txt"),
    }
    for split, pairs in evaluation_sets.items():
        rows = []
        for label, model in models.items():
            encoder = TokenEncoder(load_encoder_model(model, "fp32"))
            scores = spearman_by_method(encoder, pairs, METHOD_NAMES)
            rows.append([label, *(f"{scores[method]:.2f}" for method in METHOD_NAMES)])
        print(f"\n{split} ({len(pairs)} pairs), Spearman x 100, fp32:")
        print_table(["model", *METHOD_NAMES], rows)
    if minutes:
        print(f"\ntuning wall time, {args.epochs:g} epochs of STS-B train, threads {args.threads or 'default'}:")
        print_table(["tuned for", "minutes"], [[method, f"{value:.1f}"] for method, value in minutes.items()])


if __name__ == "__main__":
    main()
