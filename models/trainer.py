"""Fine-tunes the seq2seq linker and saves a model directory the service and the index builder load.

The output directory holds the model and tokenizer (Hugging Face format), ``training_config.json``
and ``dev_metrics.json`` (dev loss and constrained exact match). A ``checkpoint/`` inside it
is written every few hundred steps and when the time budget runs out, so ``resume`` continues
where a run stopped (same examples, same order, same optimizer state).
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from index.trie import TokenTrie
from models.generation import constrained_beam_search
from models.seq2seq import Seq2SeqModel
from models.training_data import Example, target_ids

logger = logging.getLogger(__name__)
CHECKPOINT = "checkpoint"
STATE_FILE = "trainer_state.pt"


@dataclass
class TrainConfig:
    """How to train; saved beside the model as ``training_config.json``."""

    epochs: float = 3.0
    max_minutes: float | None = None
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup_steps: int = 50
    seed: int = 0
    dev_fraction: float = 0.05
    max_dev_examples: int = 200
    bf16: bool = True
    checkpoint_every: int = 200
    max_input_tokens: int = 128


@dataclass
class TrainReport:
    """What a run did: steps taken (in total, resumed ones included), losses and dev metrics."""

    steps: int
    examples_seen: int
    seconds: float
    first_loss: float
    last_loss: float
    dev: dict[str, float]
    stopped_by: str


StepCallback = Callable[[int, int, float], None]


def split_dev(
    examples: Sequence[Example], fraction: float, limit: int, seed: int
) -> tuple[list[Example], list[Example]]:
    """A deterministic (seeded) train/dev split."""
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    size = min(limit, int(len(shuffled) * fraction))
    return shuffled[size:], shuffled[:size]


class _Batches:
    """Tokenized training batches; targets are the exact trie sequences."""

    def __init__(self, model: Seq2SeqModel, max_input_tokens: int) -> None:
        self.model = model
        self.max_input_tokens = max_input_tokens
        self._encoded: dict[str, list[int]] = {}

    def _encode_targets(self, examples: Sequence[Example]) -> None:
        missing = list({text for e in examples for text in e.target_texts() if text not in self._encoded})
        if missing:
            self._encoded.update(zip(missing, self.model.encode_names(missing), strict=True))

    def targets(self, examples: Sequence[Example]) -> list[list[int]]:
        self._encode_targets(examples)
        special = self.model.special_tokens
        forced_bos = self.model.model.generation_config.forced_bos_token_id
        prefix = [forced_bos] if forced_bos is not None else []
        return [prefix + target_ids(example, self._encoded, special) for example in examples]

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        inputs = self.model.tokenizer(
            [e.source for e in examples],
            padding=True,
            truncation=True,
            max_length=self.max_input_tokens,
            return_tensors="pt",
        )
        targets = self.targets(examples)
        labels = torch.full((len(targets), max(map(len, targets))), -100, dtype=torch.long)
        for row, target in enumerate(targets):
            labels[row, : len(target)] = torch.tensor(target)
        return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "labels": labels}


def _learning_rate(step: int, config: TrainConfig) -> float:
    return config.learning_rate * min(1.0, (step + 1) / max(1, config.warmup_steps))


def _save_checkpoint(directory: Path, model: Seq2SeqModel, optimizer: torch.optim.Optimizer, step: int) -> None:
    staging = directory.with_name(directory.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    model.model.save_pretrained(staging)
    model.tokenizer.save_pretrained(staging)
    torch.save({"step": step, "optimizer": optimizer.state_dict()}, staging / STATE_FILE)
    if directory.exists():
        shutil.rmtree(directory)
    staging.rename(directory)


def _dev_metrics(model: Seq2SeqModel, batches: _Batches, dev: Sequence[Example], batch_size: int) -> dict[str, float]:
    """Dev loss and exact match of constrained beam search over a trie of every dev/train target."""
    if not dev:
        return {}
    model.model.eval()
    losses = []
    exact = 0
    targets = batches.targets(dev)
    prefix = model.decoder_prefix_length - 1  # a forced BOS, if the model has one
    trie = TokenTrie.build(target[prefix:] for target in targets)
    with torch.inference_mode():
        for start in range(0, len(dev), batch_size):
            chunk = dev[start : start + batch_size]
            losses.append(float(model.model(**batches(chunk)).loss) * len(chunk))
            found = constrained_beam_search(
                model,
                [e.source for e in chunk],
                [trie] * len(chunk),
                num_beams=3,
                max_new_tokens=max(map(len, targets)) + 1,
                max_input_tokens=batches.max_input_tokens,
            )
            for hypotheses, target in zip(found, targets[start : start + batch_size], strict=True):
                exact += bool(hypotheses) and list(hypotheses[0].tokens) == target[prefix:]
    return {"dev_examples": len(dev), "dev_loss": sum(losses) / len(dev), "dev_exact_match": exact / len(dev)}


def train(
    model: Seq2SeqModel,
    examples: Sequence[Example],
    out_dir: Path,
    config: TrainConfig,
    resume: bool = False,
    on_step: StepCallback | None = None,
) -> TrainReport:
    """Fine-tunes ``model`` on ``examples`` and saves it to ``out_dir``.

    Stops after ``config.epochs`` epochs or ``config.max_minutes``, whichever comes first.
    With ``resume`` the optimizer state and step count are read from ``out_dir/checkpoint``
    (load the model itself from that directory too).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    # EncoderDecoderModel warns on every labelled forward that old checkpoints computed the loss differently.
    warnings.filterwarnings("ignore", message="Version v4.12.0 introduces a better way", category=FutureWarning)
    train_set, dev_set = split_dev(examples, config.dev_fraction, config.max_dev_examples, config.seed)
    if not train_set:
        raise ValueError("no training examples")
    batches = _Batches(model, config.max_input_tokens)
    optimizer = torch.optim.AdamW(model.model.parameters(), lr=config.learning_rate)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = max(1, int(config.epochs * steps_per_epoch))
    step = 0
    checkpoint = out_dir / CHECKPOINT
    if resume and (checkpoint / STATE_FILE).is_file():
        state = torch.load(checkpoint / STATE_FILE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        logger.info("resuming from step %d", step)
    model.model.train()
    started = time.monotonic()
    first_loss = last_loss = math.nan
    stopped_by = "epochs"
    while step < total_steps:
        epoch, position = divmod(step, steps_per_epoch)
        order = list(range(len(train_set)))
        random.Random(config.seed + epoch).shuffle(order)
        chunk = [train_set[i] for i in order[position * config.batch_size : (position + 1) * config.batch_size]]
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss = model.model(**batches(chunk)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        last_loss = loss.detach().item()
        first_loss = last_loss if math.isnan(first_loss) else first_loss
        if on_step is not None:
            on_step(step, total_steps, last_loss)
        out_of_time = config.max_minutes is not None and time.monotonic() - started > config.max_minutes * 60
        if step % config.checkpoint_every == 0 or out_of_time:
            _save_checkpoint(checkpoint, model, optimizer, step)
        if out_of_time:
            stopped_by = "time budget"
            break
    seconds = time.monotonic() - started
    dev = _dev_metrics(model, batches, dev_set, config.batch_size)
    model.model.save_pretrained(out_dir)
    model.tokenizer.save_pretrained(out_dir)
    report = TrainReport(step, step * config.batch_size, seconds, first_loss, last_loss, dev, stopped_by)
    (out_dir / "training_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    (out_dir / "dev_metrics.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report
