"""The one training loop of the project's trainers, and the checkpoints that let it stop at any moment
and continue where it stopped.

Both trainers (the linker's ``simlink train`` and the encoder's ``simlink tune``) run
:func:`run_training_steps`: shuffled batches epoch by epoch, a learning rate per step, bf16 autocast,
clipped AdamW steps, time and step budgets, and checkpoints. One layout serves both: a
``checkpoint/`` directory inside the output directory holds the weights, the tokenizer and
``trainer_state.pt`` (step, optimizer state, and a fingerprint of the data and options, so that a
resume with other data is refused instead of silently mixing two runs). It is written aside and
swapped in, so a kill at any moment leaves one complete checkpoint behind.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)
CHECKPOINT = "checkpoint"
STATE_FILE = "trainer_state.pt"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint under ``out_dir`` (also one left aside by a stop mid-swap), or None."""
    for candidate in (out_dir / CHECKPOINT, out_dir / f"{CHECKPOINT}.old"):
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


def save_checkpoint(
    out_dir: Path, network: Any, tokenizer: Any, optimizer: torch.optim.Optimizer, step: int, fingerprint: str
) -> None:
    """Writes aside, then swaps in: a stop at any moment leaves a complete checkpoint behind."""
    directory, staging, old = (out_dir / name for name in (CHECKPOINT, f"{CHECKPOINT}.tmp", f"{CHECKPOINT}.old"))
    for leftover in (staging, old):
        if leftover.exists() and latest_checkpoint(out_dir) != leftover:
            shutil.rmtree(leftover)
    network.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "fingerprint": fingerprint}, staging / STATE_FILE)
    if directory.exists():
        directory.rename(old)
    staging.rename(directory)
    if old.exists():
        shutil.rmtree(old)


def resume_step(out_dir: Path, optimizer: torch.optim.Optimizer, fingerprint: str) -> int:
    """Loads the optimizer state of the latest checkpoint and returns its step.

    ``ValueError`` when there is no checkpoint, or when it was made from other data or options.
    """
    checkpoint = latest_checkpoint(out_dir)
    if checkpoint is None:
        raise ValueError(f"nothing to resume: no checkpoint in {out_dir}")
    state = torch.load(checkpoint / STATE_FILE, weights_only=False)
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"the checkpoint in {checkpoint} was trained on other examples, batch size, seed or dev split; "
            "resume with the same data and options, or train into a new directory"
        )
    optimizer.load_state_dict(state["optimizer"])
    logger.info("resuming from step %d", state["step"])
    return int(state["step"])


def readable_as_umask(directory: Path) -> None:
    """Gives the files at the top of ``directory`` the permissions a plain new file gets (0666 less the
    umask). The weights file comes out owner-only, so that a server running as another user (the
    Docker image's) could not read a model trained on the host."""
    umask = os.umask(0)
    os.umask(umask)
    for path in directory.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


StepCallback = Callable[[int, int, float], None]
"""Told ``(step, total steps, loss)`` after every step."""


@dataclass(frozen=True)
class Schedule:
    """How many steps over how many items, and when to stop early or save."""

    items: int
    batch_size: int
    epochs: float
    seed: int = 0
    bf16: bool = True
    max_minutes: float | None = None
    max_steps: int | None = None  # stops early with the schedule of ``epochs``
    checkpoint_every: int = 200

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.items / self.batch_size)

    @property
    def total_steps(self) -> int:
        return max(1, int(self.epochs * self.steps_per_epoch))

    def batch(self, step: int) -> list[int]:
        """The item indices of ``step``: each epoch is its own seeded shuffle (a resumed run sees the same batches)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = list(range(self.items))
        random.Random(self.seed + epoch).shuffle(order)
        return order[position * self.batch_size : (position + 1) * self.batch_size]


@dataclass(frozen=True)
class StepsRun:
    """What :func:`run_training_steps` did: the step reached, where it started, time, losses, why it stopped."""

    steps: int
    first_step: int
    seconds: float
    first_loss: float
    last_loss: float
    stopped_by: str


def run_training_steps(
    network: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    loss_of: Callable[[Sequence[int]], torch.Tensor],
    learning_rate: Callable[[int, int], float],
    out_dir: Path,
    fingerprint: str,
    resume: bool = False,
    on_step: StepCallback | None = None,
) -> StepsRun:
    """Trains ``network`` with ``loss_of(batch item indices)`` until the schedule's epochs or a budget
    runs out, checkpointing every ``checkpoint_every`` steps and at the end (:func:`save_checkpoint`).

    ``learning_rate(step, total_steps)`` is set before each step; gradients are clipped to norm 1. With
    ``resume`` the step and optimizer state come from the checkpoint, which must carry ``fingerprint``.
    """
    step = first_step = resume_step(out_dir, optimizer, fingerprint) if resume else 0
    total = schedule.total_steps
    started = time.monotonic()
    first_loss = last_loss = math.nan
    stopped_by = "epochs"
    while step < total:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, total)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=schedule.bf16):
            loss = loss_of(schedule.batch(step))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        last_loss = loss.detach().item()
        first_loss = last_loss if math.isnan(first_loss) else first_loss
        if on_step is not None:
            on_step(step, total, last_loss)
        if schedule.max_minutes is not None and time.monotonic() - started > schedule.max_minutes * 60:
            stopped_by = "time budget"
            break
        if schedule.max_steps is not None and step >= schedule.max_steps:
            stopped_by = "step budget"
            break
        if step % schedule.checkpoint_every == 0:
            save_checkpoint(out_dir, network, tokenizer, optimizer, step, fingerprint)
    seconds = time.monotonic() - started
    save_checkpoint(out_dir, network, tokenizer, optimizer, step, fingerprint)
    return StepsRun(step, first_step, seconds, first_loss, last_loss, stopped_by)
