"""Checkpoints that let a long training job stop at any moment and continue where it stopped.

One layout for every trainer (the linker's ``simlink train`` and the encoder's ``simlink tune``): a
``checkpoint/`` directory inside the output directory holds the weights, the tokenizer and
``trainer_state.pt`` (step, optimizer state, and a fingerprint of the data and options, so that a
resume with other data is refused instead of silently mixing two runs). It is written aside and
swapped in, so a kill at any moment leaves one complete checkpoint behind.
"""

from __future__ import annotations

import logging
import os
import shutil
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
