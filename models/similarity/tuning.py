"""Fine-tunes the encoder on a user's scored pairs so that a similarity method tracks their scores.

The objective is sentence-transformers' ``CosineSimilarityLoss`` with the method's similarity in
place of the cosine: the mean squared error between the method's similarity of each pair and its
gold score rescaled to ``[0, 1]``. For the transport methods the similarity is the *exact*
optimal transport, solved by POT's network simplex; POT's ``emd2`` on torch tensors is
differentiable, because the optimal cost's gradient with respect to the cost matrix is the optimal
plan and with respect to the masses the dual potentials (the plan is held fixed: the envelope
theorem). So the model is tuned for exactly the score the service computes; no entropic surrogate
is needed.

The same loop with ``method="cosine"`` is the reference: pooled cosine fine-tuned the way
sentence-transformers fine-tunes it, so that a tuned transport method is compared with a tuned
cosine, not an untuned one.

The output directory is a plain Hugging Face encoder directory (``SIMLINK_MODEL`` serves it) with
``tune_config.json`` and ``tune_report.json``; a ``checkpoint/`` inside it lets ``resume`` continue
a stopped run (:mod:`models.training`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ot
import torch

from models.loader import LoadedModel, load_encoder_model
from models.similarity.gold_pairs import GoldPair
from models.similarity.methods import DEFAULT_METHOD, METHODS
from models.training import Schedule, StepCallback, latest_checkpoint, readable_as_umask, run_training_steps

_EPS = 1e-12


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(_EPS)


def _norm_masses(x: torch.Tensor) -> torch.Tensor:
    norms = x.norm(dim=1)
    return norms / norms.sum().clamp_min(_EPS)


def _anchored_directions(x: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`models.similarity.transport.anchored_directions` (a test holds them equal)."""
    directions = _unit_rows(x)
    mean = x.mean(dim=0)
    anchored = directions + mean / mean.norm().clamp_min(_EPS)
    cancelled = anchored.norm(dim=1, keepdim=True) < 1e-6
    return torch.where(cancelled, directions, anchored)


def _cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1.0 - _unit_rows(x) @ _unit_rows(y).T).clamp(0.0, 2.0)


def _exact_transport(a: torch.Tensor, b: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """The exact optimal cost, differentiable in ``a``, ``b`` and ``cost`` (POT's ``emd2``)."""
    return ot.emd2(a, b, cost)


def _anchored_wrd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    cost = _cosine_cost(_anchored_directions(x), _anchored_directions(y)).square()
    return _exact_transport(_norm_masses(x), _norm_masses(y), cost)


def _wrd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _exact_transport(_norm_masses(x), _norm_masses(y), _cosine_cost(x, y))


def _pooled_cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _cosine_cost(x.mean(dim=0, keepdim=True), y.mean(dim=0, keepdim=True))[0, 0]


DIFFERENTIABLE_DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "anchored-wrd": _anchored_wrd,
    "wrd": _wrd,
    "cosine": _pooled_cosine,
}
"""The methods ``simlink tune`` can tune for: torch twins of their rows in the method table, with the
similarity map of the row applied on top (a test holds each twin equal to its row)."""


def differentiable_similarity(method: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The method's similarity of token vectors ``x (n, d)`` and ``y (m, d)`` as a differentiable scalar.

    The row's similarity rule is applied to the distance; a distance of exactly zero is nudged up so
    that a square root keeps a finite gradient.
    """
    distance = DIFFERENTIABLE_DISTANCES[method](x.double(), y.double())
    return METHODS[method].similarity(distance.clamp_min(_EPS))


@dataclass
class TuneConfig:
    """How to tune; saved beside the model as ``tune_config.json``.

    The defaults are sentence-transformers' STS-B recipe: 4 epochs of batches of 16, AdamW at 2e-5
    with a linear warm-up over the first 10 % of steps and a linear decay to zero. ``bf16`` runs the
    encoder under bf16 autocast (weights and optimizer stay fp32; the transport is solved in float64).
    """

    method: str = DEFAULT_METHOD
    epochs: float = 4.0
    max_minutes: float | None = None
    batch_size: int = 16
    learning_rate: float = 2e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    max_tokens: int = 128
    layer: int = -1
    bf16: bool = True
    checkpoint_every: int = 200


@dataclass
class TuneReport:
    """What a run did: steps (resumed ones included), time, and the training loss at both ends."""

    steps: int
    steps_this_run: int
    seconds: float
    pairs_per_second: float
    first_loss: float
    last_loss: float
    stopped_by: str
    gold_range: tuple[float, float]


def gold_targets(pairs: Sequence[GoldPair]) -> tuple[list[float], tuple[float, float]]:
    """The gold scores rescaled to ``[0, 1]`` by the lowest and highest score in the file (STS-B's
    0-5 becomes score / 5, SICK's 1-5 becomes (score - 1) / 4), and that range."""
    scores = [pair.gold for pair in pairs]
    low, high = min(scores), max(scores)
    if high <= low:
        raise ValueError(f"every pair has the score {low}; tuning needs pairs scored differently")
    return [(score - low) / (high - low) for score in scores], (low, high)


def tuning_fingerprint(pairs: Sequence[GoldPair], config: TuneConfig) -> str:
    """What a resumed run must share with the run it continues: the pairs and every option that shapes steps."""
    options = {key: value for key, value in asdict(config).items() if key not in ("max_minutes", "checkpoint_every")}
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for pair in pairs:
        digest.update(f"{pair.a}\t{pair.b}\t{pair.gold}\n".encode())
    return digest.hexdigest()


def load_for_tuning(model: str | None, out_dir: Path, resume: bool) -> LoadedModel:
    """The encoder a run starts from, in fp32 and training mode: ``model``, or with ``resume`` the latest
    checkpoint under ``out_dir`` (``ValueError`` if there is none)."""
    if resume:
        checkpoint = latest_checkpoint(out_dir)
        if checkpoint is None:
            raise ValueError(f"nothing to resume: no checkpoint in {out_dir}")
        model = str(checkpoint)
    loaded = load_encoder_model(model, "fp32")
    loaded.model.train()
    return loaded


class _PairBatches:
    """Token vectors of a batch of pairs: one padded forward pass over all their texts."""

    def __init__(self, loaded: LoadedModel, config: TuneConfig) -> None:
        self.loaded = loaded
        self.config = config

    def vectors(self, texts: Sequence[str]) -> list[torch.Tensor]:
        inputs = self.loaded.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.config.max_tokens, return_tensors="pt"
        )
        output = self.loaded.model(**inputs, output_hidden_states=self.config.layer != -1)
        hidden = output.last_hidden_state if self.config.layer == -1 else output.hidden_states[self.config.layer]
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return [hidden[row, :length] for row, length in enumerate(lengths)]

    def loss(self, pairs: Sequence[GoldPair], targets: Sequence[float]) -> torch.Tensor:
        vectors = self.vectors([text for pair in pairs for text in (pair.a, pair.b)])
        similarities = torch.stack(
            [
                differentiable_similarity(self.config.method, vectors[2 * k], vectors[2 * k + 1])
                for k in range(len(pairs))
            ]
        )
        return torch.nn.functional.mse_loss(similarities, torch.tensor(targets, dtype=similarities.dtype))


def _learning_rate(step: int, total: int, config: TuneConfig) -> float:
    warmup = max(1, int(config.warmup_fraction * total))
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    return config.learning_rate * max(0.0, (total - step) / max(1, total - warmup))


def _optimizer(model: Any, config: TuneConfig) -> torch.optim.Optimizer:
    """AdamW with sentence-transformers' grouping: no weight decay on biases and LayerNorm weights."""
    decayed, plain = [], []
    for name, parameter in model.named_parameters():
        (plain if "bias" in name or "LayerNorm" in name else decayed).append(parameter)
    groups = [{"params": decayed, "weight_decay": config.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def tune(
    loaded: LoadedModel,
    pairs: Sequence[GoldPair],
    out_dir: Path,
    config: TuneConfig,
    resume: bool = False,
    on_step: StepCallback | None = None,
) -> TuneReport:
    """Fine-tunes ``loaded`` (from :func:`load_for_tuning`) on ``pairs`` and saves it to ``out_dir``.

    Stops after ``config.epochs`` epochs or ``config.max_minutes``, whichever comes first, checkpointing
    every ``checkpoint_every`` steps and at the end. ``ValueError`` for an unknown method, no pairs, or a
    resume with other pairs or options.
    """
    if config.method not in DIFFERENTIABLE_DISTANCES:
        raise ValueError(f"method {config.method!r} cannot be tuned; use one of: {', '.join(DIFFERENTIABLE_DISTANCES)}")
    if not pairs:
        raise ValueError("no pairs to tune on")
    targets, gold_range = gold_targets(pairs)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    batches = _PairBatches(loaded, config)
    optimizer = _optimizer(loaded.model, config)
    schedule = Schedule(
        len(pairs),
        config.batch_size,
        config.epochs,
        config.seed,
        config.bf16,
        config.max_minutes,
        checkpoint_every=config.checkpoint_every,
    )
    run = run_training_steps(
        loaded.model,
        loaded.tokenizer,
        optimizer,
        schedule,
        lambda chosen: batches.loss([pairs[i] for i in chosen], [targets[i] for i in chosen]),
        lambda step, total: _learning_rate(step, total, config),
        out_dir,
        tuning_fingerprint(pairs, config),
        resume,
        on_step,
    )
    loaded.model.eval()
    loaded.model.save_pretrained(out_dir)
    loaded.tokenizer.save_pretrained(out_dir)
    readable_as_umask(out_dir)
    steps_this_run = run.steps - run.first_step
    speed = steps_this_run * config.batch_size / max(run.seconds, 1e-9)
    report = TuneReport(
        run.steps, steps_this_run, run.seconds, speed, run.first_loss, run.last_loss, run.stopped_by, gold_range
    )
    (out_dir / "tune_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    (out_dir / "tune_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report
