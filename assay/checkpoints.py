"""Atomic, resumable checkpoints: ``checkpoints/step-000010/`` holds the model (safetensors),
the tokenizer and ``trainer_state.pt`` (optimizer, scheduler, step). A checkpoint is written to a
hidden temporary folder and renamed into place, so a crash never leaves a half checkpoint."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pickle
import re
import shutil
import sys
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
    if not (isinstance(keep, int) and keep >= 1):
        raise CheckpointError(f"keep must be a whole number >= 1 checkpoints, got {keep!r}.")
    target = checkpoint_path(run_dir, step)
    sweep_partial_checkpoints(run_dir)
    save_to(target, step, model, tokenizer, trainer_state, state_dict=state_dict)
    prune_checkpoints(run_dir, keep)
    return target


# The hidden names of a save in progress: ``save_to``'s temporary folders (``.step-000010-xyz``,
# ``.best-xyz``, ``.final-xyz``), the folder it moves aside (``.best-stale``) and
# ``runs.atomic_write``'s temporary files (``.summary.json-xyz``).
_PARTIAL = re.compile(r"^\.(?:(?:step|keep|best|final)-.+|[\w.]+\.(?:json|jsonl|yaml|png)-\w+)$")


def sweep_partial_checkpoints(run_dir: Path) -> list[Path]:
    """Remove what a kill during a save leaves behind in ``run_dir`` and its ``checkpoints/``
    (each up to a whole checkpoint), and put back a folder moved aside for a replacement that
    never arrived; returns what was removed."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        entries = folder.iterdir() if folder.is_dir() else ()
        for path in [p for p in entries if _PARTIAL.match(p.name)]:
            target = folder / path.name[1:].removesuffix("-stale")
            if path.name.endswith("-stale") and path.is_dir() and not target.exists():
                os.replace(path, target)  # killed between moving it aside and the rename in
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def save_to(
    target: Path,
    step: int,
    model,
    tokenizer,
    trainer_state: dict[str, Any],
    state_dict: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint to ``target`` atomically, replacing what was there."""
    tmp = partial_folder(target)
    try:
        write_checkpoint(tmp, step, model, tokenizer, trainer_state, state_dict)
        commit(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def partial_folder(target: Path) -> Path:
    """A new hidden folder next to ``target`` to write its checkpoint into (then
    :func:`commit` it); :func:`sweep_partial_checkpoints` removes it if the save is killed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))


def write_checkpoint(
    folder: Path, step: int, model, tokenizer, trainer_state, state_dict=None
) -> None:
    """The model (safetensors), the tokenizer and, last, the trainer state that marks a
    checkpoint complete."""
    # transformers empties the dict it is given as it writes; the trainer state may share it.
    model.save_pretrained(folder, state_dict=dict(state_dict) if state_dict is not None else None)
    tokenizer.save_pretrained(folder)
    torch.save({"step": step, **trainer_state}, folder / STATE_FILE)


def commit(tmp: Path, target: Path) -> None:
    """Move the finished checkpoint ``tmp`` to ``target``: an old one there is moved aside
    first and deleted after, never before."""
    stale = None
    if target.exists():
        stale = target.with_name(f".{target.name}-stale")
        shutil.rmtree(stale, ignore_errors=True)
        os.replace(target, stale)
    os.replace(tmp, target)
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """The optimizer/scheduler/step state saved next to the model weights."""
    path = checkpoint / STATE_FILE
    if not path.exists():
        raise CheckpointError(
            f"{checkpoint} is not a complete checkpoint ({STATE_FILE} is missing)."
        )
    # A run directory may come from anyone (a downloaded run, a shared folder): never unpickle
    # code from it. weights_only=True reads tensors, numbers, strings and containers only; the
    # low-rank optimizers' projector objects are allowed by name (their fields are tensors).
    try:
        return _load_weights_only(path, import_projectors=False)
    except pickle.UnpicklingError as err:
        culprit = _GLOBAL.search(str(err))
        if culprit and culprit[1].split(".")[0] in {m.split(".")[0] for m, _ in _PROJECTORS}:
            return _load_weights_only(path, import_projectors=True)
        raise CheckpointError(
            f"{path} holds more than tensors and numbers"
            f"{f' ({culprit[1]})' if culprit else ''}, so assay will not load it: it never "
            "unpickles code from a run directory. Resume only from runs that assay wrote."
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable trainer state: {err}") from err


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _load_weights_only(path: Path, import_projectors: bool) -> dict[str, Any]:
    try:
        with torch.serialization.safe_globals(_projector_classes(import_projectors)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable trainer state: {err}") from err


# Optimizer state objects of the low-rank methods (GaLore, Fira): plain classes holding tensors.
_PROJECTORS = (
    ("galore_torch.galore_projector", "GaLoreProjector"),
    ("fira.gradient_projection", "GradientProjector"),
)


def _projector_classes(import_missing: bool) -> list[type]:
    """The projector classes already imported (a run that used GaLore has), and with
    ``import_missing`` those of the installed optional extras."""
    found = []
    for module_name, class_name in _PROJECTORS:
        module = sys.modules.get(module_name)
        top = module_name.split(".")[0]
        if module is None and import_missing and importlib.util.find_spec(top) is not None:
            try:
                module = importlib.import_module(module_name)
            except Exception:  # an optional extra that fails to import is simply not allowed
                module = None
        if module is not None and hasattr(module, class_name):
            found.append(getattr(module, class_name))
    return found


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint of ``run_dir`` (a resume starts here, so the partial
    folders of a killed save are swept first); raises if there is none."""
    sweep_partial_checkpoints(run_dir)
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(
            f"Run {str(run_dir)!r} has no checkpoint to resume from; start it again without --resume."
        )
    return found[-1]
