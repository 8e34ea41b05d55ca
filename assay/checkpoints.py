"""Atomic, resumable checkpoints: ``checkpoints/step-000010/`` holds the model (safetensors),
the tokenizer and ``trainer_state.pt`` (optimizer, scheduler, step). A checkpoint is written to a
hidden temporary folder and renamed into place, so a crash never leaves a half checkpoint."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from assay.errors import CheckpointError

STATE_FILE = "trainer_state.pt"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = [p for p in (run_dir / "checkpoints").glob("step-*") if (p / STATE_FILE).exists()]
    return sorted(found)


def save_checkpoint(
    run_dir: Path,
    step: int,
    model,
    tokenizer,
    trainer_state: dict[str, Any],
    keep: int = 1,
    state_dict: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of ``step`` atomically and prune all but the newest ``keep``
    (``state_dict``, when given, is what ``save_pretrained`` writes instead of the model's own)."""
    target = checkpoint_path(run_dir, step)
    save_to(target, step, model, tokenizer, trainer_state, state_dict=state_dict)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def save_to(
    target: Path,
    step: int,
    model,
    tokenizer,
    trainer_state: dict[str, Any],
    state_dict: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint to ``target`` atomically, replacing what was there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        torch.save({"step": step, **trainer_state}, tmp / STATE_FILE)
        stale = None
        if (
            target.exists()
        ):  # saving the same step again: move the old one aside, never delete first
            stale = target.with_name(f".{target.name}-stale")
            shutil.rmtree(stale, ignore_errors=True)
            os.replace(target, stale)
        os.replace(tmp, target)
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """The optimizer/scheduler/step state saved next to the model weights."""
    path = checkpoint / STATE_FILE
    if not path.exists():
        raise CheckpointError(
            f"{checkpoint} is not a complete checkpoint ({STATE_FILE} is missing)."
        )
    return torch.load(path, map_location="cpu", weights_only=False)


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint of ``run_dir``; raises if there is none."""
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(
            f"Run {str(run_dir)!r} has no checkpoint to resume from; start it again without --resume."
        )
    return found[-1]
